"""The network an S3 profile's requests cross, decided once per profile, by botocore, for both of its paths.

botocore decides two things for a client: the proxies (``Config(proxies=...)``, else ``HTTP_PROXY``,
``HTTPS_PROXY`` and ``NO_PROXY`` read against the endpoint) and the certificate authorities to trust (the
client's ``verify``, else ``AWS_CA_BUNDLE``, ``ca_bundle`` in the AWS config file for the AWS profile in use,
``REQUESTS_CA_BUNDLE``, certifi's bundle). pixlift does not decide them again: the profile's own ``proxy``,
``ca_bundle`` and ``verify`` keys go into the client as botocore's arguments, and the client's HTTP session
(``NetworkSession``, built by botocore with what it decided) hands its decisions to this module's
``Network``, which the lean path (``s3_wire.py``, ``http1.py``) then uses as they are. One TLS context, made
once, serves both paths, so a certificate the uploads refuse is refused by ``pixlift config check`` too.

aiobotocore's own session differs from botocore's in two ways that this session corrects: through a proxy it
turns certificate checking off, and its context (urllib3's, where urllib3 then matches the host name itself)
leaves host names unchecked. Here the context checks both, as botocore's requests do.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiobotocore.httpsession import AIOHTTPSession
from botocore.exceptions import SSLError
from botocore.httpsession import ProxyConfiguration, create_urllib3_context, get_cert_path, where

from .dial import Proxy
from .http1 import CertificateUntrusted

AWS = "https://s3.amazonaws.com"  # where a profile with no endpoint_url goes
# X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH: the certificate is valid, for other names
NAME_MISMATCH = frozenset({62, 64})


@dataclass
class Network:
    """What botocore decided for one profile's client, and the TLS context made from it."""

    profile: str
    proxies: dict[str, str]  # botocore's {scheme: proxy URL}, credentials included: never logged or shown
    verify: bool | str  # False, True (certifi's bundle) or a CA bundle file or folder
    trust: str  # which setting decided ``verify``, for messages
    tls: ssl.SSLContext | None  # None: certificates are not checked (verify = false)

    def proxy_url(self, url: str) -> str | None:
        """The proxy a request to ``url`` goes through (credentials included), as botocore picks it."""
        found = ProxyConfiguration(self.proxies).proxy_url_for(url)
        return str(found) if found else None

    def proxy_for(self, url: str) -> Proxy | None:
        """The lean path's proxy for ``url``, or None for a direct connection."""
        proxy_url = self.proxy_url(url)
        if not proxy_url:
            return None
        parts = urlsplit(proxy_url)
        headers = ProxyConfiguration(self.proxies).proxy_headers_for(proxy_url)
        return Proxy(scheme=parts.scheme, host=parts.hostname or "", port=parts.port or 80,
                     authorization=headers.get("Proxy-Authorization"), shown=shown(proxy_url))

    def describe_proxy(self, url: str) -> str:
        proxy_url = self.proxy_url(url)
        return f"through the proxy {shown(proxy_url)}" if proxy_url else "directly, with no proxy"

    def untrusted(self, host: str, exc: ssl.SSLCertVerificationError, url: str) -> str:
        """What to tell the user about a certificate the client refused."""
        name = self.profile
        how = f"reached {self.describe_proxy(url)}"
        why = str(exc.verify_message or exc.reason or exc).rstrip(".")
        if exc.verify_code in NAME_MISMATCH:
            return (f"The TLS certificate presented for {host} ({how}) names another host ({why}). Check "
                    f"endpoint_url in [profiles.{name}]; a proxy that inspects TLS presents certificates of its own.")
        return (f"The TLS certificate presented for {host} ({how}) is not trusted: {why}. Trust "
                f"for profile {name!r} comes from {self.trust}. If a company certificate authority signs it, "
                f"set ca_bundle in [profiles.{name}] (or AWS_CA_BUNDLE, or ca_bundle in the AWS config file) to "
                "that authority's PEM file; SSL_CERT_FILE is not read by AWS tools.")


def shown(proxy_url: str | None) -> str:
    """A proxy URL without its credentials: what logs and messages may say."""
    if not proxy_url:
        return ""
    parts = urlsplit(proxy_url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def client_args(profile: Any) -> tuple[dict[str, str] | None, bool | str | None]:
    """The profile's keys as botocore's client arguments: (``Config(proxies=...)``, the client's ``verify``);
    None leaves the decision to botocore (the environment, the AWS config file)."""
    proxy = getattr(profile, "proxy", None)
    proxies = None if proxy is None else ({"http": proxy, "https": proxy} if proxy else {})
    verify: bool | str | None = None
    if getattr(profile, "verify", True) is False:
        verify = False
    elif getattr(profile, "ca_bundle", None):
        verify = os.path.expanduser(profile.ca_bundle)
    return proxies, verify


def trust_of(profile: Any, verify: bool | str) -> str:
    """Which setting made botocore's ``verify`` what it is."""
    name = profile.name
    if verify is False:
        return f"verify = false in [profiles.{name}] (certificates are not checked)"
    if getattr(profile, "ca_bundle", None):
        return f"ca_bundle in [profiles.{name}] ({verify})"
    for var in ("AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE"):
        if os.environ.get(var) and os.environ[var] == verify:
            return f"{var} ({verify})"
    if verify is True:
        return f"certifi's bundle ({where()}), the default of AWS tools"
    return (f"ca_bundle in the AWS config file ({os.environ.get('AWS_CONFIG_FILE', '~/.aws/config')}, profile "
            f"{os.environ.get('AWS_PROFILE', 'default')!r}: {verify})")


def tls_context(verify: bool | str) -> ssl.SSLContext | None:
    """botocore's TLS context for ``verify``, with host names checked by the ssl module (urllib3 checks them
    itself for botocore; aiohttp and the lean path leave it to the context). Raises OSError for a bundle that
    cannot be read."""
    if verify is False:
        return None
    context: ssl.SSLContext = create_urllib3_context()
    context.check_hostname = True
    path = get_cert_path(verify)
    if os.path.isdir(path):
        context.load_verify_locations(capath=path)
    else:
        context.load_verify_locations(cafile=path)
    return context


class NetworkSession(AIOHTTPSession):  # type: ignore[misc]  # aiobotocore has no type hints
    """aiobotocore's HTTP session, built by botocore with the proxies and ``verify`` it decided: it reports them
    (``decided``) and uses the one context made from them for every connection, through a proxy too."""

    def __init__(self, *args: Any, decided: Callable[[dict[str, str], bool | str], ssl.SSLContext | None],
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        proxies = {k: v for k, v in (kwargs.get("proxies") or {}).items() if isinstance(v, str)}
        self._tls: ssl.SSLContext | None = decided(proxies, self._verify)

    def _create_connector(self, proxy_url: str | None) -> aiohttp.TCPConnector:
        return aiohttp.TCPConnector(limit=self._max_pool_connections, ssl=self._tls or False,
                                    **self._connector_args)


def certificate_failure(exc: BaseException) -> tuple[str | None, ssl.SSLCertVerificationError] | None:
    """(host, the verification error) when ``exc`` is a certificate refused on either path: the lean path's
    ``CertificateUntrusted``, aiohttp's ``ClientConnectorCertificateError`` inside botocore's ``SSLError``."""
    if isinstance(exc, CertificateUntrusted):
        return exc.host, exc.error
    inner = exc.kwargs.get("error") if isinstance(exc, SSLError) else exc
    error = getattr(inner, "certificate_error", inner)
    if isinstance(error, ssl.SSLCertVerificationError):
        return getattr(inner, "host", None), error
    return None
