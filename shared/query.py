"""SQL over the lake with DuckDB: every table folder is a view of the same name, plus the alert views.

The views are in `shared.views`; `LakeConnection.definitions` keeps the SQL that created them, for `--explain`.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field

import duckdb

from shared import views
from shared.errors import ConfigError, GraphlakeError, one_line
from shared.lake_reader import Lake, LakeFile, open_lake


@dataclass
class LakeConnection:
    lake: Lake
    con: duckdb.DuckDBPyConnection
    files: dict[str, list[LakeFile]]
    columns: dict[str, set[str]] = field(default_factory=dict)  # per table, union over its files
    definitions: list[str] = field(default_factory=list)
    _scratch: tempfile.TemporaryDirectory | None = None

    def readable(self, files: list[LakeFile]) -> list[str]:
        """Paths DuckDB reads natively for these files (copies of a remote lake's, in a folder removed with this)."""
        if self._scratch is None and not self.lake.is_local:
            self._scratch = tempfile.TemporaryDirectory(prefix="graphlake-")
        return self.lake.readable_copies(files, self._scratch.name if self._scratch else "")

    def execute(self, sql: str, parameters: list | None = None) -> duckdb.DuckDBPyConnection:
        try:
            return self.con.execute(sql, parameters)
        except duckdb.Error as exc:
            raise ConfigError(f"query failed: {one_line(exc)}") from None

    def columns_of(self, source: str) -> set[str]:
        """Column names of a FROM-able source (a read_parquet(...) call, a view), without reading rows."""
        return {d[0] for d in self.execute(f"SELECT * FROM {source} LIMIT 0").description}


def connect(lake_url: str, *, with_views: bool = True) -> LakeConnection:
    """DuckDB on the lake. Without views nothing is read but the file listing (a search reads only its days)."""
    lake = open_lake(lake_url)
    con = duckdb.connect()
    if not lake.is_local:
        con.register_filesystem(lake.filesystem)
    connection = LakeConnection(lake, con, lake.files())
    if with_views:
        _create_views(connection)
    return connection


def _create_views(connection: LakeConnection) -> None:
    for table in sorted(connection.files):
        source = views.read_parquet(connection.lake.table_glob(table))
        connection.columns[table] = connection.columns_of(source)
        connection.definitions.append(views.table_view(table, source, connection.columns[table]))
    if views.ALERTS_TABLE in connection.files:
        connection.definitions += [views.LATEST_VIEW_SQL, views.EVIDENCE_VIEW_SQL]
    for definition in connection.definitions:
        try:
            connection.con.execute(definition)
        except duckdb.Error as exc:
            raise GraphlakeError(f"cannot open the lake at {connection.lake.url}: {one_line(exc)}") from None
