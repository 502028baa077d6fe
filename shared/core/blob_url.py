"""Storage URLs: a local folder (a plain path or file://), or which account, container and prefix a Blob Storage
URL names. No Azure SDK here, so readers that only need to parse a URL (shared.read.lake_reader) do not pay for
importing it. The writers' stores (shared.core.storage) and the readers' lakes parse URLs here, so they agree."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from shared.core.errors import ConfigError

# Azurite's well-known development account key. Not a secret: Microsoft publishes it in the Azurite README
# and the storage emulator docs, and it only opens the local emulator account devstoreaccount1.
EMULATOR_ACCOUNT = "devstoreaccount1"
EMULATOR_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_CONTAINER_RE = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class BlobLocation:
    account: str
    account_url: str  # https://<account>.blob.core.windows.net, or the emulator's http://127.0.0.1:<port>/<account>
    container: str
    prefix: tuple[str, ...]

    @property
    def is_emulator(self) -> bool:
        return self.account == EMULATOR_ACCOUNT and is_loopback_host(urlsplit(self.account_url).hostname)


def is_loopback_host(host: str | None) -> bool:
    """Whether a parsed URL's host name is this machine, the only place plain http may go. The parsed host,
    never a prefix of the URL: http://localhost.attacker.example and http://localhost@evil.example are not."""
    return (host or "").lower() in _LOOPBACK_HOSTS


def url_scheme(url: str) -> str:
    """The URL's scheme in lower case; "" for a plain path."""
    return urlsplit(url).scheme.lower() if "://" in url else ""


def local_path(url: str) -> str:
    """The folder a plain path or a file:// URL names; ConfigError for a file:// URL on another host."""
    if not url_scheme(url):
        return url
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ConfigError(f"{url} names a remote host; file:// URLs must be local")
    return unquote(parts.path)


def parse_blob_url(url: str) -> BlobLocation:
    """Account, container and prefix of https://<account>.blob.core.windows.net/<container>[/<prefix>] (any
    cloud's blob suffix), or of the emulator's path-style http://127.0.0.1:<port>/devstoreaccount1/<container>."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    path = [unquote(p) for p in parts.path.split("/") if p]
    if parts.scheme == "http" and not is_loopback_host(host):
        raise ConfigError(f"storage URL {url} uses plain http; only the local emulator may (use https)")
    if is_loopback_host(host):
        # Emulator (path-style): the account is the first path segment.
        if len(path) < 2:
            raise ConfigError(f"storage URL {url} must be http://127.0.0.1:<port>/<account>/<container>")
        location = BlobLocation(path[0], f"{parts.scheme}://{parts.netloc}/{path[0]}", path[1], tuple(path[2:]))
    else:
        if not host or "." not in host or not path:
            raise ConfigError(f"storage URL {url} must be https://<account>.blob.core.windows.net/<container>")
        location = BlobLocation(host.split(".")[0], f"https://{parts.netloc}", path[0], tuple(path[1:]))
    check_container_name(url, location.container)
    return location


def check_container_name(url: str, container: str) -> None:
    if not _CONTAINER_RE.match(container):
        raise ConfigError(f"storage URL {url}: {container!r} is not a valid container name "
                          "(3-63 lowercase letters, digits and single hyphens)")
