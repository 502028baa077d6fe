"""Where a lake lives, for reading it: a local folder or an Azure Blob container, and the tables in it.

The writers reach storage through `shared.core.storage` (whole blobs, conditional writes). Readers want the opposite:
ranges of a few columns of many files, so they go through fsspec (adlfs on Azure), which DuckDB reads through
directly. DuckDB's own Azure extension is downloaded at run time and cannot be assumed.

A lake URL is one of
- a local folder (or file:// URL);
- the LAKE_URL form https://<account>.blob.core.windows.net/<container>[/<prefix>], or the emulator's
  path-style http://127.0.0.1:<port>/devstoreaccount1/<container>[/<prefix>];
- abfs[s]://<container>@<account>.dfs.core.windows.net[/<prefix>], or az:// / abfs:// <container>[/<prefix>]
  with the account from AZURE_STORAGE_ACCOUNT_NAME (or AZURE_STORAGE_CONNECTION_STRING), as adlfs reads them
  (passed in as a `LakeAccess`, read by the settings module).
Azure is reached with azure-identity's DefaultAzureCredential (a managed identity, `az login`, ...); the emulator
with its published development key.

A table is a top-level folder holding `year=YYYY/month=MM/day=DD/<file>.parquet`, whoever wrote it.
"""

from __future__ import annotations

import datetime as dt
import os
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import unquote, urlsplit

import fsspec
import fsspec.asyn

from shared.core.blob_url import (
    EMULATOR_KEY,
    BlobLocation,
    check_container_name,
    local_path,
    parse_blob_url,
    url_scheme,
)
from shared.core.errors import ConfigError, EndpointUnreachable, GraphlakeError, one_line
from shared.core.layout import parse_partition_file

if TYPE_CHECKING:
    from shared.core.settings import LakeAccess

_AZURE_SCHEMES = ("az", "abfs", "abfss")


@dataclass(frozen=True)
class ReachTimeouts:
    """How long the first request to a remote lake may take. The defaults are together well inside the 15 s a
    person waits for an answer; tests of a lake that never answers pass shorter ones."""

    connect_seconds: float = 4.0
    read_seconds: float = 5.0
    total_seconds: float = 10.0


class LakeUnauthorized(GraphlakeError):
    """The lake's storage refused the credential, or no credential could be had."""


def _credential_failure(exc: Exception) -> str:
    """DefaultAzureCredential's page-long failure as one line: each credential it tried and the first sentence of
    why it could not give a token."""
    lines = str(exc).splitlines()
    tried = [line.strip() for line in lines if line.startswith("\t") and ":" in line]
    if not tried:
        return one_line(exc)
    reasons = []
    for line in tried:
        name, _, why = line.partition(":")
        reasons.append(f"{name}: {why.strip().removeprefix(name).strip().split('. ')[0].rstrip('.')}")
    return one_line("no credential gave a token (" + "; ".join(reasons) + ")", limit=600)


@dataclass(frozen=True)
class LakeFile:
    table: str
    day: dt.date
    path: str  # as DuckDB opens it: a local path, or abfs://<container>/<name>
    size: int = -1  # bytes, as listed


@dataclass
class Lake:
    url: str
    root: str  # where table folders start, in the filesystem's own terms (no protocol)
    filesystem: fsspec.AbstractFileSystem
    protocol: str  # "" for local paths; else the prefix DuckDB sees, e.g. "abfs://"

    account: str = ""  # the storage account of a remote lake
    credential: str = ""  # what a remote lake is opened with, as an error message names it
    timeouts: ReachTimeouts = ReachTimeouts()

    @property
    def is_local(self) -> bool:
        return not self.protocol

    def open_file(self, path: str) -> BinaryIO:
        """A file of the lake by its path as listed (LakeFile.path), opened for reading."""
        if self.is_local:
            import pyarrow as pa  # its own file: no Python call per read

            return pa.OSFile(path)
        return self.filesystem.open(path, "rb")

    def files(self) -> dict[str, list[LakeFile]]:
        """Every table's partition files, by table name, sorted by day then name."""
        return self.listing()[0]

    def listing(self) -> tuple[dict[str, list[LakeFile]], list[tuple[str, str]]]:
        """One listing of the lake: every table's partition files (as `files`), and every other name as (name
        relative to the lake root, path as DuckDB opens it), where the indicator indexes are."""
        if not self.is_local:
            self._check_reachable()
        try:
            if self.is_local:
                found = _local_sizes(self.root)
            else:
                found = self.filesystem.find(self.root, detail=True) if self.filesystem.exists(self.root) else {}
        except OSError as exc:
            raise EndpointUnreachable(f"cannot list the lake at {self.url}: {one_line(exc)}") from None
        tables: dict[str, list[LakeFile]] = defaultdict(list)
        others: list[tuple[str, str]] = []
        prefix = self.root.rstrip("/") + "/"
        for name in sorted(found):
            relative = name[len(prefix):] if name.startswith(prefix) else name
            parsed = parse_partition_file(relative)
            if parsed is not None:
                tables[parsed.table].append(LakeFile(parsed.table, parsed.day, f"{self.protocol}{name}",
                                                     int(found[name].get("size") or 0)))
            else:
                others.append((relative, f"{self.protocol}{name}"))
        return dict(tables), others

    def _check_reachable(self) -> None:
        """Ask for one blob of the lake, without the SDK's retries (minutes of backoff against an address that
        does not answer), so that a lake that cannot be reached or authorized fails in seconds, naming the account
        and the credential. A container that does not exist is not an error here: it is an empty lake."""
        from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError

        container, _, prefix = self.root.partition("/")
        where = f"storage account {self.account or '?'} (lake {self.url}, credential: {self.credential})"

        async def first_blob() -> None:
            client = self.filesystem.service_client.get_container_client(container)
            pages = client.list_blobs(name_starts_with=f"{prefix}/" if prefix else None, results_per_page=1,
                                      retry_total=0, connection_timeout=self.timeouts.connect_seconds,
                                      read_timeout=self.timeouts.read_seconds).by_page()
            async for _ in pages:
                return

        try:
            fsspec.asyn.sync(self.filesystem.loop, first_blob, timeout=self.timeouts.total_seconds)
        except ResourceNotFoundError:
            return
        except ClientAuthenticationError as exc:
            raise LakeUnauthorized(f"cannot authenticate to {where}: {_credential_failure(exc)}") from exc
        except HttpResponseError as exc:
            if exc.status_code in (401, 403):
                code = getattr(exc.error_code, "value", exc.error_code) or exc.reason
                fix = ("the identity needs Storage Blob Data Reader on the container"
                       if self.credential.startswith("DefaultAzureCredential") else "the key is wrong or expired")
                raise LakeUnauthorized(f"{where} refused access ({exc.status_code} {code}): {fix}") from exc
            raise EndpointUnreachable(f"cannot read {where}: {one_line(exc)}") from exc
        except fsspec.asyn.FSTimeoutError as exc:
            raise EndpointUnreachable(f"no answer within {self.timeouts.total_seconds:g} s from {where}") from exc
        except Exception as exc:  # noqa: BLE001 - aiohttp, DNS and SDK transport errors have no common base
            raise EndpointUnreachable(f"cannot reach {where}: {one_line(exc)}") from exc

    def readable_copies(self, files: list[LakeFile], folder: str) -> list[str]:
        """Paths of `files` that DuckDB reads natively: the files themselves in a local lake; in a remote one,
        copies downloaded concurrently into `folder`, keeping the partition folders (their keys are columns).

        DuckDB reads a remote parquet file through fsspec in many small range requests, one after another, each
        through Python; one concurrent download of the whole files is several times faster (bench/bench_lake_reads.py
        measures both). Names are never reused for other rows, so a copy is exact."""
        if self.is_local:
            return [f.path for f in files]
        prefix = f"{self.protocol}{self.root.rstrip('/')}/"
        local = [f"{folder}/{f.path.removeprefix(prefix)}" for f in files]
        try:
            self.filesystem.get([f.path.removeprefix(self.protocol) for f in files], local)
        except OSError as exc:
            raise EndpointUnreachable(f"cannot read the lake at {self.url}: {one_line(exc)}") from None
        return local

    def table_glob(self, table: str) -> str:
        """The glob DuckDB expands to every partition file of `table`."""
        return f"{self.protocol}{self.root.rstrip('/')}/{table}/year=*/month=*/day=*/*.parquet"


def _local_sizes(root: str) -> dict[str, dict]:
    """Every file under a local folder with its size, as fsspec's find(detail=True) gives them: os.walk and one
    stat a file, several times faster than fsspec's walk over a year of partitions (bench/bench_index.py)."""
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = f"{folder}/{name}"
            found[path] = {"size": os.stat(path).st_size}
    return found


def open_lake(url: str, access: LakeAccess | None = None, timeouts: ReachTimeouts = ReachTimeouts()) -> Lake:
    """The lake at `url` (see the module docstring), ready to list and to register with DuckDB. `access`: the
    account (or connection string) of an az:// URL that names none, and the identity errors name; None: none.
    `timeouts` bound the first request to a remote one."""
    if not url or not url.strip():
        raise ConfigError("--lake is empty: give a local folder, https://<account>.blob.core.windows.net/<container>"
                          " or az://<container>")
    scheme = url_scheme(url)
    if scheme in ("", "file"):
        root = Path(local_path(url)).absolute()
        if not root.is_dir():
            raise ConfigError(f"--lake {url}: no such folder (run `graphlake pull` or `graphlake demo` first)")
        return Lake(url, root.as_posix(), fsspec.filesystem("file"), "")
    if scheme in ("http", "https"):
        return replace(_blob_url_lake(url, access), timeouts=timeouts)
    if scheme in _AZURE_SCHEMES:
        return replace(_adlfs_url_lake(url, access), timeouts=timeouts)
    raise ConfigError(f"--lake {url}: unsupported scheme {scheme}://; use a local folder, "
                      "https://<account>.blob.core.windows.net/<container> or az://<container>")


def _blob_url_lake(url: str, access: LakeAccess | None) -> Lake:
    location = parse_blob_url(url)
    if location.is_emulator:
        return _lake(url, location, access, "the emulator's development key", connection_string=(
            f"DefaultEndpointsProtocol=http;AccountName={location.account};AccountKey={EMULATOR_KEY};"
            f"BlobEndpoint={location.account_url};"))
    return _lake(url, location, access, account_name=location.account,
                 account_host=urlsplit(location.account_url).netloc)


def _adlfs_url_lake(url: str, access: LakeAccess | None) -> Lake:
    parts = urlsplit(url)
    container, _, host = unquote(parts.netloc).partition("@")
    prefix = tuple(unquote(p) for p in parts.path.split("/") if p)
    if host:  # <container>@<account>.dfs.core.windows.net: the same account's blob endpoint
        account, _, suffix = host.partition(".")
        location = BlobLocation(account, f"https://{account}.{suffix.replace('dfs.', 'blob.', 1)}", container, prefix)
        check_container_name(url, container)
        return _lake(url, location, access, account_name=account,
                     account_host=urlsplit(location.account_url).netloc)
    check_container_name(url, container)
    location = BlobLocation(access.account_name if access else "", "", container, prefix)
    if location.account:
        return _lake(url, location, access, account_name=location.account)
    connection_string = access.connection_string if access else ""
    if connection_string:
        fields = dict(part.partition("=")[::2] for part in connection_string.split(";") if part)
        location = BlobLocation(fields.get("AccountName", ""), "", container, prefix)
        return _lake(url, location, access, "AZURE_STORAGE_CONNECTION_STRING", connection_string=connection_string)
    raise ConfigError(f"--lake {url} does not say which storage account: use abfs://<container>@<account>"
                      ".dfs.core.windows.net/..., https://<account>.blob.core.windows.net/<container>, or set "
                      "AZURE_STORAGE_ACCOUNT_NAME")


def _lake(url: str, location: BlobLocation, access: LakeAccess | None, credential: str = "", **options: str) -> Lake:
    """A remote lake through adlfs: with `options["connection_string"]` (whose key `credential` names), else with
    azure-identity's DefaultAzureCredential."""
    # Imported here: adlfs pulls in aiohttp and the async Azure SDK, which local lakes never need.
    import adlfs

    if "connection_string" not in options:
        from azure.identity.aio import DefaultAzureCredential

        # Honours AZURE_CLIENT_ID (a user-assigned managed identity), like the writers' credential.
        options["credential"] = DefaultAzureCredential()
        client_id = access.client_id if access else ""
        credential = "DefaultAzureCredential" + (f" (AZURE_CLIENT_ID {client_id})" if client_id else
                                                 " (managed identity, environment, az login, ...)")
    return Lake(url, "/".join([location.container, *location.prefix]), adlfs.AzureBlobFileSystem(**options),
                "abfs://", account=location.account, credential=credential)
