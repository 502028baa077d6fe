"""One small blob interface over a local folder and an Azure Blob container.

Watermarks, claim checks, quarantine documents and the parquet lake all go through `Store`, so the CLI and
the tests run on a folder while the Function App runs on Blob Storage, with the same semantics:

- `write(..., if_match=etag)` and `write(..., create_only=True)` are atomic compare-and-swap operations,
  also across processes. Two overlapping pull runs rely on this: only one of them can advance a watermark.
- A reader never sees half a blob, even if the writer is killed mid-write.
- Transient failures raise (callers depend on raising to get the Functions retry); only a lost race is
  turned into `PreconditionFailed`.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, NamedTuple, Protocol

from azure.core import MatchConditions
from azure.core.credentials import AzureNamedKeyCredential, TokenCredential
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.storage.blob import ContainerClient

from shared.core.blob_url import EMULATOR_ACCOUNT, EMULATOR_KEY, local_path, parse_blob_url, url_scheme
from shared.core.errors import ConfigError, EndpointUnreachable, PreconditionFailed, one_line


class Blob(NamedTuple):
    """One blob as read: its bytes and the etag of exactly those bytes (the condition for writing it back)."""

    data: bytes
    etag: str


class Store(Protocol):
    url: str

    def read(self, name: str) -> Blob | None:
        """The blob, or None if there is no such blob."""

    def write(self, name: str, data: bytes, *, if_match: str | None = None, create_only: bool = False) -> str:
        """Store data under name and return its new etag; PreconditionFailed if a condition does not hold."""

    def list(self, prefix: str = "") -> Iterator[str]:
        """Names starting with prefix (a plain string prefix, like Blob's), recursive, sorted."""

    def delete(self, name: str) -> None:
        """Remove name; a missing name is fine."""


def open_store(url: str) -> Store:
    """A Store for a local folder (plain path or file:// URL) or a Blob container URL."""
    if not url or not url.strip():
        raise ConfigError("storage URL is empty: give a local folder or https://<account>.blob.core.windows.net/"
                          "<container>")
    scheme = url_scheme(url)
    if scheme in ("http", "https"):
        return BlobStore(url)
    if scheme not in ("", "file"):
        raise ConfigError(f"storage URL {url} has unsupported scheme {scheme}://; use a local folder or "
                          "https://<account>.blob.core.windows.net/<container>")
    return LocalStore(local_path(url), url=url)


def _check_name(name: str) -> str:
    # The same rule on both backends, so a name that works in the tests works in Azure. Dot-segments are
    # refused because they escape the root on disk and because LocalStore keeps its temp and lock files
    # under dot-names, which must never collide with or be listed as real blobs.
    segments = name.split("/")
    if not name or any(not s or s.startswith(".") or "\\" in s or "\0" in s for s in segments):
        raise ValueError(f"invalid blob name {name!r}: use non-empty '/'-separated segments not starting with '.'")
    return name


def _check_prefix(prefix: str) -> str:
    # Only the folder part must be a valid name: a prefix may end mid-name ("a/x/1" matches "a/x/1.json").
    folder = prefix.rpartition("/")[0]
    if folder:
        _check_name(folder)
    return prefix


def _precondition_failed(name: str, *, if_match: str | None, create_only: bool) -> PreconditionFailed:
    wanted = "not to exist yet" if create_only else f"to still have etag {if_match}"
    return PreconditionFailed(f"conditional write of {name} lost a race: expected it {wanted}, but another "
                              "writer changed it first")


def _check_conditions(if_match: str | None, create_only: bool) -> None:
    if if_match is not None and create_only:
        raise ValueError("if_match and create_only contradict each other: pass one of them")


class LocalStore:
    """Blobs as files under a root folder.

    Every write goes to a temp file in the target's folder, is fsynced, then renamed over the target, so a
    reader (or a SIGKILL) never leaves or sees half a file. The condition check and the rename happen under
    an exclusive `flock` on the folder's lock file, which makes conditional writes atomic across processes.
    Unconditional writes and deletes take the same lock, or they could slip in between a check and its rename.

    The etag is inode + mtime_ns + content hash, computed from the same open file as the data:
    - files are only ever replaced, never changed in place, so the pair (data, etag) is always consistent;
    - consecutive versions always differ in inode (the new file exists before the old one is unlinked), so
      the etag changes on every write even when the clock's tick is coarser than the write rate;
    - an older etag can only come back if inode, mtime and content all repeat, and then the content is the
      same, so a compare-and-swap on it cannot lose an update.
    """

    _LOCK_NAME = ".graphlake.lock"

    def __init__(self, root: str | os.PathLike[str], *, url: str | None = None) -> None:
        self.root = Path(root).absolute()
        self.url = url if url is not None else str(root)
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"storage folder {self.root} exists but is not a folder")

    def _path(self, name: str) -> Path:
        return self.root.joinpath(*_check_name(name).split("/"))

    def read(self, name: str) -> Blob | None:
        try:
            with open(self._path(name), "rb") as f:
                return _read_with_etag(f)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def write(self, name: str, data: bytes, *, if_match: str | None = None, create_only: bool = False) -> str:
        _check_conditions(if_match, create_only)
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        # The slow part (writing and syncing the bytes) happens before the lock; only check + rename are inside.
        # Not mkstemp: its 0600 mode would make lake files unreadable to anyone else; 0666 honours the umask.
        tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
                etag = _etag(os.fstat(f.fileno()), data)
            with _dir_lock(path.parent / self._LOCK_NAME):
                if create_only and path.exists():
                    raise _precondition_failed(name, if_match=None, create_only=True)
                if if_match is not None:
                    current = self.read(name)
                    if current is None or current.etag != if_match:
                        raise _precondition_failed(name, if_match=if_match, create_only=False)
                os.replace(tmp, path)
                _fsync_dir(path.parent)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return etag

    def list(self, prefix: str = "") -> Iterator[str]:
        # Walk only the folder the prefix points into, then filter by string prefix like Blob does.
        base_dir = _check_prefix(prefix).rpartition("/")[0]
        start = self.root.joinpath(*base_dir.split("/")) if base_dir else self.root
        names: list[str] = []
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for filename in filenames:
                if filename.startswith("."):
                    continue
                name = filename if rel == "." else f"{rel}/{filename}"
                if name.startswith(prefix):
                    names.append(name)
        return iter(sorted(names))

    def delete(self, name: str) -> None:
        path = self._path(name)
        if not path.parent.is_dir():
            return
        with _dir_lock(path.parent / self._LOCK_NAME):
            path.unlink(missing_ok=True)


def _etag(st: os.stat_result, data: bytes) -> str:
    return f"{st.st_ino:x}-{st.st_mtime_ns:x}-{hashlib.sha256(data).hexdigest()[:32]}"


def _read_with_etag(f: BinaryIO) -> Blob:
    st = os.fstat(f.fileno())
    data = f.read()
    return Blob(data, _etag(st, data))


@contextmanager
def _dir_lock(path: Path) -> Iterator[None]:
    # flock (not a lock-by-existence file) is released by the kernel when the holder dies, so a SIGKILLed
    # writer cannot leave the folder locked.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable; without it a power loss can bring back the old file.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_LOST_RACE_CODES = ("ConditionNotMet", "BlobAlreadyExists")


class BlobStore:
    """Blobs in one Azure Blob container, optionally under a prefix.

    URL forms: https://<account>.blob.core.windows.net/<container>[/<prefix>] (any cloud's blob suffix), or
    the emulator's path-style http://127.0.0.1:<port>/devstoreaccount1/<container>[/<prefix>].
    """

    def __init__(self, url: str) -> None:
        self.url = url
        location = parse_blob_url(url)
        self._prefix = "".join(f"{p}/" for p in location.prefix)
        # One client per store: it holds the HTTP session, so connections are pooled across calls.
        self._container = ContainerClient(location.account_url, location.container,
                                          credential=_credential(location.account))
        self._contacted = False

    def _name(self, name: str) -> str:
        return self._prefix + _check_name(name)

    def _first_contact(self) -> None:
        """Create the container if missing; turn a DNS or connection failure into one actionable error."""
        if self._contacted:
            return
        try:
            # No connect retries here: the SDK's backoff would take a minute to report a mistyped account,
            # and a transient blip still raises, so the Functions retry runs the invocation again.
            self._container.create_container(retry_connect=0)
        except ResourceExistsError:
            pass
        except ServiceRequestError as exc:
            raise EndpointUnreachable(f"cannot reach blob storage at {self.url}: {one_line(exc)}") from None
        except HttpResponseError as exc:
            # An identity whose role is scoped to the container (not the account) may not create containers;
            # the container then already exists, and real permission problems surface on the data calls.
            if exc.status_code != 403:
                raise
        self._contacted = True

    def read(self, name: str) -> Blob | None:
        self._first_contact()
        try:
            downloader = self._container.download_blob(self._name(name))
            # The downloader pins later range requests to the first response's etag, so data and etag agree.
            return Blob(downloader.readall(), downloader.properties.etag)
        except ResourceNotFoundError as exc:
            # A missing container is not "no such blob": reading on would restart watermarks from scratch.
            if _error_code(exc) != "BlobNotFound":
                raise
            return None

    def write(self, name: str, data: bytes, *, if_match: str | None = None, create_only: bool = False) -> str:
        _check_conditions(if_match, create_only)
        self._first_contact()
        # get_blob_client shares the container client's pipeline and HTTP session; ContainerClient.upload_blob
        # would hide the etag we must return.
        blob = self._container.get_blob_client(self._name(name))
        try:
            if if_match is None:
                # create_only is overwrite=False (If-None-Match: *). No etag keyword here, not even None: the SDK
                # then forwards it to the HTTP transport, which fails with a TypeError.
                result = blob.upload_blob(data, overwrite=not create_only)
            else:
                result = blob.upload_blob(data, overwrite=True, etag=if_match,
                                          match_condition=MatchConditions.IfNotModified)
        except HttpResponseError as exc:
            # Only a lost race becomes PreconditionFailed; a lease conflict or a 5xx is a different problem
            # and must propagate as itself. If-Match on a missing blob is 412 ConditionNotMet on Azurite;
            # BlobNotFound is accepted too so the meaning does not hinge on the service version.
            code = _error_code(exc)
            if code in _LOST_RACE_CODES or (if_match is not None and code == "BlobNotFound"):
                raise _precondition_failed(name, if_match=if_match, create_only=create_only) from None
            raise
        return str(result["etag"])

    def list(self, prefix: str = "") -> Iterator[str]:
        full_prefix = self._prefix + _check_prefix(prefix)
        self._first_contact()
        # Blob Storage returns names in lexicographic order, which is the sorted order the contract promises.
        names = self._container.list_blob_names(name_starts_with=full_prefix)
        return (name[len(self._prefix):] for name in names)

    def delete(self, name: str) -> None:
        self._first_contact()
        try:
            self._container.delete_blob(self._name(name))
        except ResourceNotFoundError as exc:
            if _error_code(exc) != "BlobNotFound":
                raise


def _credential(account: str) -> AzureNamedKeyCredential | TokenCredential:
    if account == EMULATOR_ACCOUNT:
        return AzureNamedKeyCredential(EMULATOR_ACCOUNT, EMULATOR_KEY)
    return _default_credential()


@functools.cache
def _default_credential() -> TokenCredential:
    """One credential per process, so the state and lake stores share one token and its refreshes."""
    # Imported here because azure.identity is slow to import and the local and emulator paths never need it.
    from azure.identity import DefaultAzureCredential

    # Honours AZURE_CLIENT_ID, which selects the Function App's user-assigned managed identity.
    return DefaultAzureCredential()


def _error_code(exc: HttpResponseError) -> str | None:
    # The storage SDK attaches the service's error code (e.g. ConditionNotMet) to the exception it raises.
    return getattr(exc, "error_code", None)
