"""The WebDAV profile (Nextcloud, ownCloud, a Synology or QNAP NAS, Apache or nginx with WebDAV): its settings,
how config.toml's table becomes one, and the settings page's form.

Kept apart from the provider (webdav.py), as every kind is: reading the settings builds no connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..core.config import Checker, ProfileBase, secret_field
from .base import Provider
from .kind import BuildContext, FormField, ProviderKind


@dataclass(frozen=True)
class WebDavProfile(ProfileBase):
    provider: str = "webdav"
    url: str = ""  # the folder uploads go into
    username: str | None = None
    password: str | None = secret_field()


def parse(check: Checker, where: str, common: dict[str, Any], t: dict[str, Any]) -> WebDavProfile:
    url = check.url(f"{where}.url", t["url"]) or ""
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise check.fail(f"{where}.url", "holds a login", "Write the login as username and password, and the URL "
                         "without it.")
    if parts.query or parts.fragment:
        raise check.fail(f"{where}.url", "has a query or a fragment", "Write the folder's address alone, e.g. "
                         '"https://cloud.example.com/remote.php/dav/files/me/photos".')
    if ("password" in t) and not t.get("username"):
        raise check.fail(where, "has a password but no username", 'Add: username = "..."')
    return WebDavProfile(**common, url=url, username=t.get("username") or None, password=t.get("password"))


def summary(p: WebDavProfile, files_root: Path) -> str:
    login = f"as {p.username}" if p.username else "without a login"
    links = "public links" if p.public_base_url else "links need the WebDAV login to open (set public_base_url)"
    return f"WebDAV folder {p.url} · {login} · {links}"


def build(p: WebDavProfile, ctx: BuildContext) -> Provider:
    from .webdav import WebDavProvider

    return WebDavProvider(p, ctx.transfers, in_flight=ctx.in_flight)


KIND = ProviderKind(
    name="webdav", label="WebDAV (Nextcloud, ownCloud, NAS…)", legend="WebDAV", profile_type=WebDavProfile,
    keys={"url": (str, True), "username": (str, False), "password": (str, False)},
    parse=parse, build=build, summary=summary,
    form=(FormField("url", "Folder URL", "url", "https://cloud.example.com/remote.php/dav/files/me/photos"),
          FormField("username", "Username"),
          FormField("password", "Password", "password")),
)
