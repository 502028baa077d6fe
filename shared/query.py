"""SQL over the lake with DuckDB: every table folder under the lake root becomes a view of the same name."""

from __future__ import annotations

from pathlib import Path

import duckdb

from shared.errors import ConfigError


def connect(lake: str) -> duckdb.DuckDBPyConnection:
    root = Path(lake.removeprefix("file://"))
    if "://" in lake and not lake.startswith("file://"):
        raise ConfigError(f"--lake {lake}: only local lakes can be queried so far")
    if not root.is_dir():
        raise ConfigError(f"--lake {lake}: no such folder (run `graphlake pull` or `graphlake demo` first)")
    con = duckdb.connect()
    for table in sorted(p for p in root.iterdir() if p.is_dir() and any(p.rglob("*.parquet"))):
        pattern = str(table / "**" / "*.parquet").replace("'", "''")
        con.execute(f'CREATE VIEW "{table.name}" AS SELECT * FROM read_parquet(\'{pattern}\', '
                    "hive_partitioning = true, union_by_name = true, "
                    "hive_types = {'year': INTEGER, 'month': INTEGER, 'day': INTEGER})")
    return con


def run(lake: str, sql: str) -> tuple[list[str], list[tuple]]:
    con = connect(lake)
    try:
        cursor = con.execute(sql)
    except duckdb.Error as exc:
        raise ConfigError(f"query failed: {str(exc).splitlines()[0]}") from None
    columns = [d[0] for d in cursor.description or []]
    return columns, cursor.fetchall()
