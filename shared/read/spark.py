"""graphlake's views and indicator search on Spark (Databricks, Synapse, Fabric, local pyspark), for those who read
the lake with the engine they already run:

    from shared.read.spark import register_views, search
    register_views(spark, "abfss://lake@<account>.dfs.core.windows.net/")
    search(spark, "abfss://lake@<account>.dfs.core.windows.net/", ip="203.0.113.7")

One source of truth: the SQL is the one `graphlake query` and `graphlake search` give DuckDB (shared.read.views,
shared.read.search), translated by sqlglot from DuckDB's dialect to Spark's. `spark_sql` adds what sqlglot does not
translate the way Spark needs (`_FIXES`); a construct it cannot translate fails loudly rather than reading otherwise.
The equivalence test (tests/read/test_spark.py) checks every view and a set of searches row for row against DuckDB.

Tables are found as DuckDB finds them: `<lake>/<table>/year=*/month=*/day=*/*.parquet`, read with Spark's own
partition discovery (year, month, day as integers) and schema merging (files written before a column was added read
with nulls there). Listing the lake goes through the session's Hadoop filesystem (abfss:// with the cluster's
credential); a Spark Connect session has none, so name the tables there (`tables=[...]`).

Not deployed (.funcignore): the Function App installs neither pyspark nor sqlglot, and pyspark is never imported here
(the session is the caller's).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from shared.core.errors import ConfigError
from shared.core.layout import INDEX_FOLDER, TABLE_NAME_RE, parse_index_file, parse_partition_file
from shared.read import views
from shared.read.search import (
    KINDS,
    NO_INDEX_ASKED,
    PIVOTS,
    SearchResult,
    Terms,
    add_hits,
    hits_sql,
    holds_versions,
    present_terms,
    table_terms,
    terms_for,
    utc_range,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from sqlglot import exp

    from shared.read.indicator_index import IndexUse

_UTC = dt.timezone.utc
_PARTITION_FILES = "year=*/month=*/day=*/*.parquet"
_FILES_VIEW = "graphlake_files__{}"  # a table's rows as the files hold them (the table's view deduplicates them)
_RANGE_VIEW = "graphlake_search__{}"  # the files of a table that a search reads
_RANK = "_graphlake_rank{}"
_ROW = "_graphlake_row"


# --- DuckDB's SQL in Spark's dialect ------------------------------------------------------------------------------

def spark_sql(duckdb_sql: str) -> str:
    """One statement of graphlake's DuckDB SQL in Spark's dialect."""
    import sqlglot

    tree = sqlglot.parse_one(duckdb_sql, read="duckdb")
    for fix in _FIXES:
        tree = fix(tree)
    return tree.sql(dialect="spark", unsupported_level=sqlglot.ErrorLevel.RAISE)


def _without_qualify(tree: exp.Expression) -> exp.Expression:
    """QUALIFY came to Apache Spark in 4.2 (Databricks has it, Synapse's and Fabric's Spark do not), and sqlglot's
    rewrite of it keeps its rank column in `SELECT *`. graphlake's QUALIFY is always over `SELECT *`, so the rows go
    through a struct: SELECT row.* FROM (SELECT struct(*) AS row, <windows> FROM ... WHERE ...) WHERE <condition>,
    which needs no QUALIFY and no knowledge of the table's columns."""
    from sqlglot import exp

    for select in reversed(list(tree.find_all(exp.Select))):  # the innermost first
        condition = select.args.get("qualify")
        if condition is None:
            continue
        if [type(p) for p in select.expressions] != [exp.Star]:
            raise ValueError(f"QUALIFY over named columns is not translated: {select.sql('duckdb')[:200]}")
        condition = condition.this.copy()
        windows = []
        for number, window in enumerate(list(condition.find_all(exp.Window))):
            name = _RANK.format(number)
            windows.append(exp.alias_(window.copy(), name))
            window.replace(exp.column(name))
        order, limit = select.args.get("order"), select.args.get("limit")
        inner = select.copy()
        for part in ("qualify", "order", "limit"):
            inner.set(part, None)
        inner.set("expressions", [exp.alias_(exp.Struct(expressions=[exp.Star()]), _ROW), *windows])
        outer = (exp.select(exp.Column(this=exp.Star(), table=exp.to_identifier(_ROW)))
                 .from_(inner.subquery(_ROW + "s")).where(condition))
        outer.set("order", order.copy() if order else None)
        outer.set("limit", limit.copy() if limit else None)
        if select is tree:
            tree = outer
        else:
            select.replace(outer)
    return tree


def _positions_exploded(tree: exp.Expression) -> exp.Expression:
    """DuckDB unnests a list and its positions side by side (`unnest(range(len(l))), unnest(l)`); Spark allows one
    generator per SELECT: posexplode(l) AS (position, item)."""
    from sqlglot import exp

    for select in tree.find_all(exp.Select):
        exploded = [p for p in select.expressions if isinstance(p, exp.Alias) and isinstance(p.this, exp.Explode)]
        positions = [p for p in exploded if isinstance(p.this.this, exp.GenerateSeries)]
        for position in positions:
            series = position.this.this
            listed = series.args["end"].this if isinstance(series.args.get("end"), exp.Length) else None
            items = [p for p in exploded if p is not position and p.this.this == listed]
            if listed is None or len(items) != 1:
                raise ValueError(f"an unnest of positions without its list: {select.sql('duckdb')[:200]}")
            both = exp.Aliases(this=exp.Posexplode(this=listed.copy()),
                               expressions=[position.args["alias"].copy(), items[0].args["alias"].copy()])
            position.replace(both)
            items[0].pop()
    return tree


def _functions(tree: exp.Expression) -> exp.Expression:
    """Functions and casts whose Spark form sqlglot does not write."""
    from sqlglot import exp

    def fix(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.ArrayOverlaps):  # sqlglot writes DuckDB's `&&`
            return exp.func("ARRAYS_OVERLAP", node.this, node.expression)
        if isinstance(node, exp.Anonymous) and node.name.lower() == "list_intersect":
            return exp.func("ARRAY_INTERSECT", *node.expressions)
        if isinstance(node, exp.Cast) and node.to.is_type("array") and node.to.expressions and \
                node.to.expressions[0].is_type("json"):
            # Spark has no JSON type: the items of a JSON array as their JSON text, as DuckDB's JSON[] holds them.
            return exp.func("FROM_JSON", node.this, exp.Literal.string("array<string>"))
        return node

    return tree.transform(fix)


_FIXES = (_functions, _positions_exploded, _without_qualify)


# --- The lake's tables and views ------------------------------------------------------------------------------------

def _root(lake_path: str) -> str:
    if not lake_path or not lake_path.strip():
        raise ConfigError("the lake path is empty: give abfss://<container>@<account>.dfs.core.windows.net/[prefix] "
                          "or a folder")
    return lake_path.strip().rstrip("/")


def lake_tables(spark: SparkSession, lake_path: str) -> list[str]:
    """The tables of the lake (folders holding year=/month=/day=/*.parquet), through the session's Hadoop filesystem."""
    root = _root(lake_path)
    jvm = getattr(spark, "_jvm", None)
    if jvm is None:
        raise ConfigError("this Spark session cannot list the lake (Spark Connect has no Hadoop filesystem): name "
                          "the tables, e.g. register_views(spark, lake, tables=['security_alerts'])")
    hadoop = jvm.org.apache.hadoop.fs
    path = hadoop.Path(root)
    filesystem = path.getFileSystem(spark._jsc.hadoopConfiguration())
    if not filesystem.exists(path):
        raise ConfigError(f"the lake at {root} does not exist")
    tables = []
    for status in filesystem.listStatus(path):
        name = status.getPath().getName()
        if status.isDirectory() and TABLE_NAME_RE.match(name) and \
                filesystem.globStatus(hadoop.Path(f"{root}/{name}/{_PARTITION_FILES}")):
            tables.append(name)
    return sorted(tables)


def _table_files(spark: SparkSession, root: str, table: str) -> DataFrame:
    """A table's rows as its files hold them, with year/month/day from the partition folders."""
    from pyspark.errors import AnalysisException

    try:
        return (spark.read.option("mergeSchema", "true").option("basePath", f"{root}/{table}")
                .parquet(f"{root}/{table}/{_PARTITION_FILES}"))
    except AnalysisException as exc:
        if getattr(exc, "getCondition", lambda: None)() == "PATH_NOT_FOUND" or "Path does not exist" in str(exc):
            raise ConfigError(f"the lake at {root} has no table {table} ({table}/{_PARTITION_FILES})") from None
        raise


def register_views(spark: SparkSession, lake_path: str, tables: Iterable[str] | None = None) -> dict[str, str]:
    """Every table of the lake as a temporary view of its own name, deduplicated on p_row_id, plus the views derived
    from them (views.derived_views: security_alerts_latest and security_alert_evidence when the alerts table is
    there): the views `graphlake query` has. Returns each view's Spark SQL by name. `tables`: the ones to register
    (default: every table listed)."""
    root = _root(lake_path)
    names = sorted(tables) if tables is not None else lake_tables(spark, root)
    definitions: dict[str, str] = {}
    columns: dict[str, set[str]] = {}
    for table in names:
        if not TABLE_NAME_RE.match(table):
            raise ConfigError(f"invalid table name {table!r}: use letters, digits, '_' and '-'")
        files = _table_files(spark, root, table)
        files.createOrReplaceTempView(_spark_name(_FILES_VIEW.format(table)))
        columns[table] = set(files.columns)
        definitions[table] = _create(spark, table, views.deduplicated(views.quote_identifier(_FILES_VIEW.format(table)),
                                                                      columns[table]))
    for name, select in views.derived_views(columns).items():
        definitions[name] = _create(spark, name, select)
    return definitions


def _create(spark: SparkSession, name: str, duckdb_select: str) -> str:
    sql = spark_sql(duckdb_select)
    spark.sql(sql).createOrReplaceTempView(_spark_name(name))
    return sql


def _spark_name(name: str) -> str:
    # A view name as Spark parses it: table names may hold '-'.
    return "`" + name.replace("`", "``") + "`"


# --- Indicator search -----------------------------------------------------------------------------------------------

def search(spark: SparkSession, lake_path: str, *, since: dt.datetime | None = None, until: dt.datetime | None = None,
           limit: int = 50, all_versions: bool = False, tables: Iterable[str] | None = None, use_index: bool = True,
           **values: str | Iterable[str]) -> SearchResult:
    """`graphlake search` on Spark: `search(spark, lake, ip="203.0.113.7", file_name=["a.exe", "b.dll"])`, with the
    options of the command as keywords (ip, domain, user, email, hash, url, actor, file_name, command_line,
    message_id, cloud_app, app_id, resource_id, any). Default range: the 30 days before `until` (default now).

    The result is graphlake search's, field for field: per table its hit count, at most `limit` rows
    (search.HIT_COLUMNS, newest first; an alert's latest matching version unless `all_versions`) and `pivot_sql`, here
    Spark SQL over the views `register_views` makes (which this calls, so the pivots run as they are). As in DuckDB,
    only the files of the range's days are read, and a table takes part with the columns those files have. Closed days
    with a trustworthy indicator index are read only in the files it names for the values (`use_index=False` reads
    them all, to compare); `result.index` says per table how the index served and why days were read whole."""
    unknown = sorted(set(values) - set(KINDS) - set(PIVOTS))
    if unknown:
        raise ConfigError(f"unknown search kind {', '.join(unknown)}: use {', '.join([*KINDS, *PIVOTS])}")
    terms = terms_for({kind: [given] if isinstance(given, str) else list(given) for kind, given in values.items()
                       if given})
    until = until or dt.datetime.now(_UTC)
    since, until = utc_range(since or until - dt.timedelta(days=30), until)
    root = _root(lake_path)
    names = sorted(tables) if tables is not None else lake_tables(spark, root)
    register_views(spark, root, names)
    files = {table: _partition_files(spark.table(_spark_name(_FILES_VIEW.format(table))).inputFiles(), table)
             for table in names}
    days = [day for found in files.values() for day, _ in found]
    if not days:
        raise ConfigError(f"the lake at {root} holds no tables (<table>/year=/month=/day=/*.parquet)")
    result = SearchResult(terms, since, until, lake_days=(min(days), max(days)))
    days_read: list[dt.date] = []
    for table in names:
        in_range = [(day, path) for day, path in files[table] if since.date() <= day <= until.date()]
        if not in_range:
            continue
        result.in_range.append(table)
        to_read, result.index[table], indexed_columns = _files_to_read(root, table, in_range, terms, use_index)
        source = _RANGE_VIEW.format(table)
        columns: set[str] = set()
        if to_read:
            range_files = (spark.read.option("mergeSchema", "true").option("basePath", f"{root}/{table}")
                           .parquet(*to_read))
            range_files.createOrReplaceTempView(_spark_name(source))
            columns = set(range_files.columns)
        # Whether the table takes part: from the columns of every file of the range, those not read included.
        if table_terms(result, table, columns | indexed_columns) is None:
            continue
        days_read += [day for day, _ in in_range]
        present = present_terms(terms, table, columns)
        if not to_read or "p_event_time" not in columns or not (present.indicators or present.evidence):
            continue  # no file the index left to read can hold a hit
        latest = not all_versions and holds_versions(columns)
        sql = hits_sql(table, views.quote_identifier(source), columns, present, since, until, limit, latest)
        rows = [tuple(_aware(value) for value in row) for row in spark.sql(spark_sql(sql)).collect()]
        add_hits(result, table, columns, present, latest, rows)
        if result.tables and result.tables[-1].table == table:
            result.tables[-1].pivot_sql = spark_sql(result.tables[-1].pivot_sql)
    result.days_read = (min(days_read), max(days_read)) if days_read else None
    return result


def _partition_files(paths: Iterable[str], table: str) -> list[tuple[dt.date, str]]:
    """(day, path) of each of a table's files as Spark names them (file:/..., abfss://...), by the layout's rule."""
    found = []
    for path in paths:
        at = path.rfind(f"/{table}/year=")
        partition = parse_partition_file(path[at + 1:]) if at >= 0 else None
        if partition is not None and partition.table == table:
            found.append((partition.day, path))
    return sorted(found)


def _files_to_read(root: str, table: str, in_range: list[tuple[dt.date, str]], terms: Terms,
                   use_index: bool) -> tuple[list[str], IndexUse, set[str]]:
    """The files of the range's days a search reads (as Spark names them), how the indicator index served, and the
    columns of the files it left unread. A day's index is used by the rule DuckDB's search follows
    (shared.read.indicator_index.read_day: its footer against its name, its manifest against the day's listing with
    sizes, each page read against its checksum), read with pyarrow through fsspec (adlfs for abfss://, with the
    driver's credential); where that cannot be done (not installed, no access) every day is read whole, and the
    reason says why. Files are read whole (Spark has no row-number filter that skips row groups)."""
    from shared.read import indicator_index
    from shared.read.lake_reader import LakeFile

    paths = [path for _, path in in_range]
    days = len({day for day, _ in in_range})
    if not use_index:
        return paths, _whole(days, len(paths), NO_INDEX_ASKED), set()
    if terms.evidence and table == views.ALERTS_TABLE:
        return paths, _whole(days, len(paths), indicator_index.NOT_INDEXED_KIND), set()
    try:
        import fsspec
        import pyarrow  # noqa: F401  (the index's reader)
    except ImportError as exc:  # a cluster without them
        return paths, _whole(days, len(paths), f"index not read: {exc.name} is not installed"), set()
    try:
        filesystem, base = fsspec.core.url_to_fs(root)
        base = base.rstrip("/")
        listing = filesystem.find(f"{base}/{table}", detail=True)
        folder = f"{base}/{INDEX_FOLDER}/{table}"
        indexes = filesystem.find(folder, detail=True) if filesystem.exists(folder) else {}
    except Exception as exc:  # any failure to reach the lake this way leaves Spark's own reading as it is
        return paths, _whole(days, len(paths), f"index not read: {type(exc).__name__}: {exc}"[:200]), set()
    sizes = {name[len(base) + 1:]: int(info.get("size") or 0) for name, info in listing.items()}
    found: dict[dt.date, list] = {}
    for name in indexes:
        parsed = parse_index_file(name[len(base) + 1:])
        if parsed is not None and parsed.table == table:
            found.setdefault(parsed.day, []).append(LakeFile(table, parsed.day, name))
    by_day: dict[dt.date, list[str]] = {}
    for day, path in in_range:
        by_day.setdefault(day, []).append(path)
    use = indicator_index.IndexUse(days=len(by_day), files_in_range=len(paths))
    to_read: list[str] = []
    columns: set[str] = set()
    for day, day_paths in sorted(by_day.items()):
        relative = {path: path[path.rfind(f"/{table}/year=") + 1:] for path in day_paths}
        if any(name not in sizes for name in relative.values()):
            served = indicator_index.STALE  # Spark lists a file fsspec does not: the day is not what was indexed
        else:
            listed = {name.rsplit("/", 1)[1]: sizes[name] for name in relative.values()}
            served = indicator_index.read_day(filesystem.open, found.get(day, []), listed, terms.indicators)
        if isinstance(served, str):
            use.scanned[served] += 1
            to_read += day_paths
            continue
        manifest, held = served
        use.from_index += 1
        columns.update(manifest.columns)
        to_read += [path for path, name in relative.items()
                    if name.rsplit("/", 1)[1] not in manifest.files or name.rsplit("/", 1)[1] in held]
    use.files_read = len(to_read)
    return to_read, use, columns


def _whole(days: int, files: int, reason: str) -> IndexUse:
    from collections import Counter

    from shared.read.indicator_index import IndexUse

    return IndexUse(days=days, scanned=Counter({reason: days}), files_in_range=files, files_read=files)


def _aware(value: Any) -> Any:
    # pyspark gives a timestamp as a naive datetime in this process's local time; DuckDB an aware one.
    return value.astimezone(_UTC) if isinstance(value, dt.datetime) and value.tzinfo is None else value
