"""Where a lake lives, for reading it: a local folder or an Azure Blob container, and the tables in it.

The writers reach storage through `shared.storage` (whole blobs, conditional writes). Readers want the opposite:
ranges of a few columns of many files, so they go through fsspec (adlfs on Azure), which DuckDB reads through
directly. DuckDB's own Azure extension is downloaded at run time and cannot be assumed.

A lake URL is one of
- a local folder (or file:// URL);
- the LAKE_URL form https://<account>.blob.core.windows.net/<container>[/<prefix>], or the emulator's
  path-style http://127.0.0.1:<port>/devstoreaccount1/<container>[/<prefix>];
- abfs[s]://<container>@<account>.dfs.core.windows.net[/<prefix>], or az:// / abfs:// <container>[/<prefix>]
  with the account from AZURE_STORAGE_ACCOUNT_NAME (or AZURE_STORAGE_CONNECTION_STRING), as adlfs reads them.
Azure is reached with azure-identity's DefaultAzureCredential (a managed identity, `az login`, ...); the emulator
with its published development key.

A table is a top-level folder holding `year=YYYY/month=MM/day=DD/<file>.parquet`, whoever wrote it.
"""

from __future__ import annotations

import datetime as dt
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import fsspec

from shared.blob_url import (
    EMULATOR_KEY,
    BlobLocation,
    check_container_name,
    local_path,
    parse_blob_url,
    url_scheme,
)
from shared.errors import ConfigError, EndpointUnreachable, one_line
from shared.layout import parse_partition_file

_AZURE_SCHEMES = ("az", "abfs", "abfss")


@dataclass(frozen=True)
class LakeFile:
    table: str
    day: dt.date
    path: str  # as DuckDB opens it: a local path, or abfs://<container>/<name>


@dataclass
class Lake:
    url: str
    root: str  # where table folders start, in the filesystem's own terms (no protocol)
    filesystem: fsspec.AbstractFileSystem
    protocol: str  # "" for local paths; else the prefix DuckDB sees, e.g. "abfs://"

    @property
    def is_local(self) -> bool:
        return not self.protocol

    def files(self) -> dict[str, list[LakeFile]]:
        """Every table's partition files, by table name, sorted by day then name."""
        try:
            names = self.filesystem.find(self.root) if self.filesystem.exists(self.root) else []
        except OSError as exc:
            raise EndpointUnreachable(f"cannot list the lake at {self.url}: {one_line(exc)}") from None
        tables: dict[str, list[LakeFile]] = defaultdict(list)
        prefix = self.root.rstrip("/") + "/"
        for name in sorted(names):
            found = parse_partition_file(name[len(prefix):] if name.startswith(prefix) else name)
            if found is not None:
                tables[found.table].append(LakeFile(found.table, found.day, f"{self.protocol}{name}"))
        return dict(tables)

    def readable_copies(self, files: list[LakeFile], folder: str) -> list[str]:
        """Paths of `files` that DuckDB reads natively: the files themselves in a local lake; in a remote one,
        copies downloaded concurrently into `folder`, keeping the partition folders (their keys are columns).

        DuckDB reads a remote parquet file through fsspec in many small range requests, one after another, each
        through Python: a search of 40,000 compacted alerts on Azurite takes 1.25 s that way, and 0.20 s as
        one concurrent download of the whole files (bench/bench_lake_reads.py). Names are never reused for other rows, so a copy is exact."""
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


def open_lake(url: str) -> Lake:
    """The lake at `url` (see the module docstring), ready to list and to register with DuckDB."""
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
        return _blob_url_lake(url)
    if scheme in _AZURE_SCHEMES:
        return _adlfs_url_lake(url)
    raise ConfigError(f"--lake {url}: unsupported scheme {scheme}://; use a local folder, "
                      "https://<account>.blob.core.windows.net/<container> or az://<container>")


def _blob_url_lake(url: str) -> Lake:
    location = parse_blob_url(url)
    if location.is_emulator:
        return _lake(url, location, _adlfs(connection_string=(
            f"DefaultEndpointsProtocol=http;AccountName={location.account};AccountKey={EMULATOR_KEY};"
            f"BlobEndpoint={location.account_url};")))
    return _lake(url, location, _adlfs(account_name=location.account,
                                       account_host=urlsplit(location.account_url).netloc))


def _adlfs_url_lake(url: str) -> Lake:
    parts = urlsplit(url)
    container, _, host = unquote(parts.netloc).partition("@")
    prefix = tuple(unquote(p) for p in parts.path.split("/") if p)
    if host:  # <container>@<account>.dfs.core.windows.net: the same account's blob endpoint
        account, _, suffix = host.partition(".")
        location = BlobLocation(account, f"https://{account}.{suffix.replace('dfs.', 'blob.', 1)}", container, prefix)
        check_container_name(url, container)
        return _lake(url, location, _adlfs(account_name=account, account_host=urlsplit(location.account_url).netloc))
    check_container_name(url, container)
    location = BlobLocation(os.environ.get("AZURE_STORAGE_ACCOUNT_NAME", ""), "", container, prefix)
    if location.account:
        return _lake(url, location, _adlfs(account_name=location.account))
    if os.environ.get("AZURE_STORAGE_CONNECTION_STRING"):
        return _lake(url, location, _adlfs(connection_string=os.environ["AZURE_STORAGE_CONNECTION_STRING"]))
    raise ConfigError(f"--lake {url} does not say which storage account: use abfs://<container>@<account>"
                      ".dfs.core.windows.net/..., https://<account>.blob.core.windows.net/<container>, or set "
                      "AZURE_STORAGE_ACCOUNT_NAME")


def _adlfs(**options: str) -> fsspec.AbstractFileSystem:
    # Imported here: adlfs pulls in aiohttp and the async Azure SDK, which local lakes never need.
    import adlfs

    if "connection_string" not in options:
        from azure.identity.aio import DefaultAzureCredential

        # Honours AZURE_CLIENT_ID (a user-assigned managed identity), like the writers' credential.
        options["credential"] = DefaultAzureCredential()
    return adlfs.AzureBlobFileSystem(**options)


def _lake(url: str, location: BlobLocation, filesystem: fsspec.AbstractFileSystem) -> Lake:
    return Lake(url, "/".join([location.container, *location.prefix]), filesystem, "abfs://")
