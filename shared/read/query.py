"""SQL over the lake with DuckDB: every table folder is a view of the same name, plus the alert views.

The views are in `shared.read.views`; `LakeConnection.definitions` keeps the SQL that created them, for `--explain`.

The connection reads the lake and nothing else, unless opened with `allow_local_files`: DuckDB's own sandbox
(`allowed_directories` is the lake, plus the scratch folder of a remote lake's copies; `enable_external_access`
off; `lock_configuration` on, so no SQL can undo it) refuses every other file, URL and extension, and `run` takes
one statement that only reads (a SELECT or CALL, a reporting PRAGMA, an EXPLAIN of one of those), so COPY, EXPORT
and ATTACH cannot write inside the lake either, however they are wrapped. Scheduled rules' SQL goes through `run`
too.
"""

from __future__ import annotations

import datetime as dt
import re
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import duckdb

from shared.read import views
from shared.core.errors import ConfigError, GraphlakeError, one_line
from shared.read.indicator_index import index_files
from shared.read.lake_reader import Lake, LakeFile, open_lake

if TYPE_CHECKING:
    from shared.core.settings import LakeAccess


@dataclass
class LakeConnection:
    lake: Lake
    con: duckdb.DuckDBPyConnection
    files: dict[str, list[LakeFile]]
    # The indicator indexes of closed partitions, by (table, day) (shared/read/indicator_index.py).
    indexes: dict[tuple[str, dt.date], list[LakeFile]] = field(default_factory=dict)
    columns: dict[str, set[str]] = field(default_factory=dict)  # per table, union over its files
    definitions: list[str] = field(default_factory=list)
    _scratch: tempfile.TemporaryDirectory | None = None

    def readable(self, files: list[LakeFile]) -> list[str]:
        """Paths DuckDB reads natively for these files (copies of a remote lake's, in a folder removed with this)."""
        if self._scratch is None and not self.lake.is_local:
            self._scratch = tempfile.TemporaryDirectory(prefix="graphlake-")
        return self.lake.readable_copies(files, self._scratch.name if self._scratch else "")

    sandboxed: bool = True

    def execute(self, sql: str, parameters: list | None = None) -> duckdb.DuckDBPyConnection:
        try:
            return self.con.execute(sql, parameters)
        except duckdb.PermissionException as exc:
            raise ConfigError(f"query refused: {one_line(exc)}; graphlake query reads the lake and nothing else "
                              "(--allow-local-files lifts this)") from None
        except duckdb.Error as exc:
            raise ConfigError(f"query failed: {one_line(exc)}") from None

    def run(self, sql: str, parameters: list | dict | None = None) -> duckdb.DuckDBPyConnection:
        """SQL someone wrote (a person's query, a scheduled rule's): exactly one statement, and in the sandbox one
        that only reads, however it is wrapped."""
        statement = self._one_statement(sql)
        if self.sandboxed:
            refusal = _writes(self.con, statement)
            if refusal:
                raise ConfigError(f"query refused: {refusal}; graphlake query reads the lake and nothing else "
                                  "(--allow-local-files lifts this)")
        return self.execute(sql, parameters)

    def _one_statement(self, sql: str):
        try:
            statements = self.con.extract_statements(sql)
        except duckdb.Error as exc:
            raise ConfigError(f"query failed: {one_line(exc)}") from None
        if not statements:
            raise ConfigError("no SQL statement to run: give one, e.g. \"SELECT * FROM security_alerts_latest "
                              "LIMIT 5\"")
        if len(statements) > 1:
            raise ConfigError(f"{len(statements)} SQL statements: give one at a time")
        return statements[0]

    def columns_of(self, source: str) -> set[str]:
        """Column names of a FROM-able source (a read_parquet(...) call, a view), without reading rows."""
        return {d[0] for d in self.execute(f"SELECT * FROM {source} LIMIT 0").description}


# The allowed directories (the lake) are writable to DuckDB, so the sandbox alone would let COPY write into the lake:
# only statements that read get that far. EXPLAIN ANALYZE runs what it explains, so an EXPLAIN is judged by the
# statement inside it; what cannot be taken apart is refused.
_READING = {duckdb.StatementType.SELECT, duckdb.StatementType.CALL}
_EXPLAIN_HEAD = re.compile(r"\s*EXPLAIN\s+(?:ANALY[SZ]E\s+)?(?:\((?:[^()]|\([^()]*\))*\)\s*)?", re.IGNORECASE)
# PRAGMAs that only report; the rest set options (a profile written to a file, say).
_READING_PRAGMAS = {"table_info", "show", "show_tables", "show_tables_expanded", "show_databases", "database_size",
                    "database_list", "version", "platform", "functions", "collations", "storage_info",
                    "metadata_info", "user_agent"}
_PRAGMA_NAME = re.compile(r"\s*PRAGMA\s+(\w+)", re.IGNORECASE)


def _writes(con: duckdb.DuckDBPyConnection, statement) -> str | None:
    """Why the statement may do more than read, or None when it only reads."""
    kind = statement.type
    if kind in _READING:
        return None
    if kind == duckdb.StatementType.PRAGMA:
        name = _PRAGMA_NAME.match(statement.query)
        if name and name.group(1).lower() in _READING_PRAGMAS:
            return None
        return f"PRAGMA {name.group(1) if name else ''} sets an option".replace("  ", " ")
    if kind == duckdb.StatementType.EXPLAIN:
        head = _EXPLAIN_HEAD.match(statement.query)
        try:
            inner = con.extract_statements(statement.query[head.end():]) if head else []
        except duckdb.Error:
            inner = []
        if len(inner) != 1:
            return "an EXPLAIN whose statement cannot be told apart"
        why = _writes(con, inner[0])
        return f"EXPLAIN of {why}" if why else None
    return f"a {kind.name} statement"


def connect(lake_url: str, *, with_views: bool = True, allow_local_files: bool = False,
            access: LakeAccess | None = None) -> LakeConnection:
    """DuckDB on the lake, sandboxed to it unless `allow_local_files`. Without views nothing is read but the file
    listing (a search reads only its days). `access`: see `open_lake`."""
    lake = open_lake(lake_url, access)
    con = duckdb.connect()
    if not lake.is_local:
        con.register_filesystem(lake.filesystem)
    tables, others = lake.listing()
    connection = LakeConnection(lake, con, tables, index_files(others), sandboxed=not allow_local_files)
    if not allow_local_files:
        _sandbox(connection)
    if with_views:
        _create_views(connection)
    return connection


def _sandbox(connection: LakeConnection) -> None:
    allowed = [f"{connection.lake.protocol}{connection.lake.root.rstrip('/')}/"]
    if not connection.lake.is_local:  # where a search's copies of remote files go, made before the lock
        connection._scratch = tempfile.TemporaryDirectory(prefix="graphlake-")
        allowed.append(connection._scratch.name.rstrip("/") + "/")
    connection.con.execute("SET allowed_directories = ?", [allowed])
    connection.con.execute("SET enable_external_access = false")
    connection.con.execute("SET lock_configuration = true")


def _create_views(connection: LakeConnection) -> None:
    for table in sorted(connection.files):
        source = views.read_parquet(connection.lake.table_glob(table))
        connection.columns[table] = connection.columns_of(source)
        connection.definitions.append(views.table_view(table, source, connection.columns[table]))
    connection.definitions += [views.derived_view(name, select)
                               for name, select in views.derived_views(connection.columns).items()]
    for definition in connection.definitions:
        try:
            connection.con.execute(definition)
        except duckdb.Error as exc:
            raise GraphlakeError(f"cannot open the lake at {connection.lake.url}: {one_line(exc)}") from None
