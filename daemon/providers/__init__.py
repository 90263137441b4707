"""Storage providers behind one small interface (``base.Provider``), described as data (``kind.ProviderKind``)
and listed in ``registry``: a new store is a module, its kind, and one line there.

Holds: ``base`` (the interface, retries, outage waiting), ``kind`` (a provider described as data: fields,
checks), ``registry`` (the kinds and the pool of live providers), the stores (``local``; ``s3`` with
``s3_kind``, ``s3_wire`` for its lean PUT path, ``s3_body`` for the bodies it sends and ``s3_errors`` for what its
refusals mean; ``oss`` with
``oss_kind``; ``webdav`` with ``webdav_kind``; ``sftp`` with ``sftp_kind`` and ``sftp_login`` for host keys
and logins), and the plumbing they share: ``network`` (proxies, TLS trust and regions as botocore decides
them), ``dial`` (connecting: happy eyeballs, proxies), ``http1`` (pooled keep-alive connections), ``acked`` (a
body that counts what the store acknowledged), ``inflight`` (bytes in flight), ``multipart`` (a multipart
upload's saved state).
May import: core, errors, files, pixlift.
Used by: engine, intake, settings and the composition root; never a face, and never aiohttp's server side.
"""

from .base import Provider
from .multipart import MultipartState

__all__ = ["MultipartState", "Provider"]
