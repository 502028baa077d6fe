"""The views and the indicator search on Spark (shared/read/spark.py) give the rows DuckDB gives, on a demo lake.

The lake is the demo's (the simulator's tenant pulled through the real msgraph-sdk, normalized, with the starter
pack's rule_matches), compacted where its days are closed, with what a reader must cope with beside it: a copy of an
alerts file (a redelivered batch: the same row versions twice) and a table of another producer, sign-in-shaped,
whose older file lacks a column. pyspark runs in local mode, one session for the module.

Under CI (CI=true) a missing Java or pyspark fails the test: `make test` installs both, and a skip there would hide
that the Spark module went untested.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from shared.cli.demo import run_demo
from shared.core.storage import LocalStore
from shared.land.lake_writer import write_table
from shared.ops.compact import compact
from shared.read import views
from shared.read.query import connect
from shared.read.search import search as duckdb_search
from shared.read.search import terms_for

UTC = dt.UTC
LOGS = "entra_signin_logs"


def _needs(what: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} is missing under CI: `make test` installs it (see the Makefile)")
    pytest.skip(f"{what} is missing: `make test` installs it")


@pytest.fixture(scope="module")
def spark():
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        _needs("Java 17 or later (Debian's default-jre-headless)")
    try:
        from pyspark import SparkContext
        from pyspark.sql import SparkSession
    except ImportError:
        _needs("pyspark (requirements-dev.txt)")
    session = (SparkSession.builder.master("local[2]").appName("graphlake-test")
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.default.parallelism", "2")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               # Short queries on a small lake: the JIT's first tier starts faster and is enough, and interpreting
               # the plans beats compiling them (together they halve the module's time).
               .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
               .config("spark.sql.codegen.wholeStage", "false")
               .config("spark.sql.codegen.factoryMode", "NO_CODEGEN")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    gateway = session.sparkContext._gateway
    session.stop()
    # pyspark keeps its JVM until this process ends and never waits for it: end it (it stops when its stdin closes)
    # and reap it with the module, so no JVM outlives the test.
    gateway.shutdown()
    gateway.proc.stdin.close()
    gateway.proc.wait(timeout=60)
    SparkContext._gateway = SparkContext._jvm = None


def _signins(rows: list[dict], columns: list[str]) -> pa.Table:
    types = {"id": pa.string(), "userPrincipalName": pa.string(), "ipAddress": pa.string(),
             "p_row_id": pa.string(), "p_log_type": pa.string(), "p_event_time": pa.timestamp("us", tz="UTC"),
             "p_parse_time": pa.timestamp("us", tz="UTC"), "p_any_ip_addresses": pa.list_(pa.string()),
             "p_any_usernames": pa.list_(pa.string())}
    return pa.table({c: pa.array([r[c] for r in rows], types[c]) for c in columns})


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("spark")
    lake_dir, state_dir = root / "lake", root / "state"
    pivot = run_demo(str(lake_dir), str(state_dir), alerts=120, seed=21, show=lambda *_: None, say=lambda _: None)
    assert pivot is not None and pivot.ip, "the demo tenant has no pass-the-hash alert to take an IP from"
    pivot_ip = pivot.ip
    store = LocalStore(lake_dir)
    compact(store, grace_days=0)
    # A redelivered batch: the same row versions in a second file of their partition.
    first = sorted((lake_dir / views.ALERTS_TABLE).rglob("*.parquet"))[-1]
    shutil.copy(first, first.with_name("part-redelivered.parquet"))
    now = dt.datetime.now(UTC).replace(microsecond=0)
    older = {"id": "s-1", "userPrincipalName": "a.user@contoso.com", "ipAddress": pivot_ip, "p_row_id": "r-1",
             "p_log_type": "Entra.SignIn", "p_event_time": now - dt.timedelta(days=2), "p_parse_time": now,
             "p_any_ip_addresses": [pivot_ip], "p_any_usernames": ["a.user@contoso.com"]}
    newer = {**older, "id": "s-2", "p_row_id": "r-2", "p_event_time": now - dt.timedelta(hours=1),
             "p_any_ip_addresses": [pivot_ip, "198.51.100.9"]}
    # The older file predates p_any_usernames: both engines read it with nulls there.
    write_table(store, _signins([older], [c for c in older if c != "p_any_usernames"]), table_name=LOGS)
    write_table(store, _signins([newer], list(newer)), table_name=LOGS)
    con = connect(str(lake_dir))

    def one(sql: str) -> str:
        found = con.execute(sql).fetchone()
        assert found and found[0], f"the demo lake has none of: {sql}"
        return found[0]

    values = {
        "ip": pivot_ip,
        "user": one("SELECT u FROM security_alerts, unnest(p_any_usernames) AS t(u) ORDER BY u LIMIT 1"),
        "domain": one("SELECT d FROM security_alerts, unnest(p_any_domain_names) AS t(d) ORDER BY d LIMIT 1"),
        "email": one("SELECT e FROM security_alerts, unnest(p_any_emails) AS t(e) ORDER BY e LIMIT 1"),
        # Spelled otherwise than Graph sent it: both engines fold it the same way.
        "file_name": one("SELECT upper(file_name) FROM security_alert_evidence WHERE file_name IS NOT NULL "
                         "ORDER BY 1 LIMIT 1"),
    }
    return {"path": str(lake_dir), "values": values, "until": now + dt.timedelta(days=1)}


def _rows(rows) -> list[tuple]:
    """Rows as comparable values, sorted: timestamps as UTC instants, lists as tuples."""
    def value(v):
        if isinstance(v, dt.datetime):
            return (v if v.tzinfo else v.astimezone(UTC)).astimezone(UTC)
        if isinstance(v, list):
            return tuple(value(x) for x in v)
        return v
    return sorted((tuple(value(v) for v in row) for row in rows), key=repr)


def test_every_view_gives_duckdbs_rows(spark, lake):
    from shared.read.spark import register_views

    con = connect(lake["path"])
    duck_views = sorted(con.files) + [views.LATEST_VIEW, views.EVIDENCE_VIEW]
    registered = register_views(spark, lake["path"])
    assert sorted(registered) == sorted(duck_views)
    assert {views.ALERTS_TABLE, "rule_matches", LOGS} <= set(registered)
    for name in duck_views:
        cursor = con.execute(f"SELECT * FROM {views.quote_identifier(name)}")
        columns = sorted(d[0] for d in cursor.description)
        duck = _rows([dict(zip([d[0] for d in cursor.description], row)) [c] for c in columns]
                     for row in cursor.fetchall())
        assert duck, f"{name} is empty in the demo lake: the comparison would prove nothing"
        frame = spark.table(name)
        assert sorted(frame.columns) == columns, name
        ours = _rows([row[c] for c in columns] for row in frame.select(*columns).collect())
        assert len(ours) == len(duck) and ours == duck, name
    # The redelivered copy is read once, and the latest view holds one version per alert.
    assert spark.table(views.ALERTS_TABLE).count() == spark.table(views.ALERTS_TABLE).select("p_row_id") \
        .distinct().count()


SEARCHES = {
    "ip": lambda v: {"ip": [v["ip"]]},
    "user": lambda v: {"user": [v["user"].upper()]},
    "domain": lambda v: {"domain": [v["domain"]]},
    "any": lambda v: {"any": [v["email"], v["ip"]]},
    "file_name": lambda v: {"file_name": [v["file_name"]]},
    "file_name_or_ip": lambda v: {"file_name": [v["file_name"]], "ip": [v["ip"]]},
}


@pytest.mark.parametrize(("kind", "all_versions", "days"), [(kind, False, 30) for kind in SEARCHES] +
                         [("ip", True, 30), ("file_name", True, 30), ("any", False, 2)])
def test_a_search_gives_duckdbs_hits(spark, lake, kind, all_versions, days):
    from shared.read.spark import search as spark_search

    options = SEARCHES[kind](lake["values"])
    since = lake["until"] - dt.timedelta(days=days)  # 2 days: the lake's older days are not read
    duck = duckdb_search(connect(lake["path"], with_views=False), terms_for(options), since, lake["until"],
                         limit=1000, all_versions=all_versions)
    ours = spark_search(spark, lake["path"], since=since, until=lake["until"], limit=1000,
                        all_versions=all_versions, **options)
    assert duck.tables, f"{options} finds nothing in the demo lake: the comparison would prove nothing"
    assert (ours.searched, ours.in_range, ours.without_evidence, ours.lake_days, ours.days_read) == \
        (duck.searched, duck.in_range, duck.without_evidence, duck.lake_days, duck.days_read)
    assert [(t.table, t.count) for t in ours.tables] == [(t.table, t.count) for t in duck.tables]
    for mine, theirs in zip(ours.tables, duck.tables):
        assert _rows(mine.rows) == _rows(theirs.rows), mine.table
        # The pivot SQL, run on Spark over the registered views, returns the hits' rows.
        assert spark.sql(mine.pivot_sql).count() == mine.count, mine.pivot_sql
    if days == 2:
        assert duck.days_read[0] > duck.lake_days[0], "the short range should leave days of the lake unread"
    if kind in ("ip", "any"):
        assert LOGS in [t.table for t in ours.tables]


def test_spark_sql_refuses_what_it_does_not_translate():
    from shared.read.spark import spark_sql

    with pytest.raises(ValueError, match="QUALIFY over named columns"):
        spark_sql("SELECT id FROM t QUALIFY row_number() OVER (PARTITION BY id) = 1")
    assert "ARRAYS_OVERLAP(a, ARRAY('x'))" in spark_sql("SELECT * FROM t WHERE list_has_any(a, ['x'])")


def test_search_refuses_an_unknown_kind(spark, lake):
    from shared.core.errors import ConfigError
    from shared.read.spark import search as spark_search

    with pytest.raises(ConfigError, match="unknown search kind ipaddress"):
        spark_search(spark, lake["path"], ipaddress="10.0.0.1")
    with pytest.raises(ConfigError, match="is not an IPv4 or IPv6 address"):
        spark_search(spark, lake["path"], ip="not-an-ip")


def test_the_lake_path_must_hold_the_lake(spark, tmp_path):
    from shared.core.errors import ConfigError
    from shared.read.spark import register_views

    with pytest.raises(ConfigError, match="does not exist"):
        register_views(spark, str(Path(tmp_path) / "nowhere"))
    with pytest.raises(ConfigError, match="has no table nosuch"):
        register_views(spark, str(tmp_path), tables=["nosuch"])


def test_a_spark_cluster_needs_neither_duckdb_nor_pyarrow():
    """What a cluster installs: the graphlake wheel and sqlglot; pyspark is its own."""
    code = ("import sys, shared.read.spark; print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'duckdb', 'pyarrow', 'fsspec', 'adlfs', 'azure', 'pyspark', 'sqlglot', 'pydantic_settings'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.stdout.strip() == "[]"


def test_named_tables_are_the_ones_registered_and_searched(spark, lake):
    """A Spark Connect session cannot list the lake: the tables named are read, and only they."""
    from shared.read.spark import register_views
    from shared.read.spark import search as spark_search

    assert list(register_views(spark, lake["path"], tables=[LOGS])) == [LOGS]
    found = spark_search(spark, lake["path"], tables=[LOGS], ip=lake["values"]["ip"], until=lake["until"])
    # The demo's own sign-ins from that address and the two written here: DuckDB's count of the same table.
    duck = duckdb_search(connect(lake["path"], with_views=False), terms_for({"ip": [lake["values"]["ip"]]}),
                         lake["until"] - dt.timedelta(days=30), lake["until"])
    expected = [(t.table, t.count) for t in duck.tables if t.table == LOGS]
    assert expected and expected[0][1] >= 2
    assert found.searched == [LOGS] and [(t.table, t.count) for t in found.tables] == expected


def _index_hits(result) -> list:
    return [(t.table, t.count, _rows(t.rows)) for t in result.tables]


def test_the_index_narrows_the_files_and_gives_the_same_hits(spark, lake):
    from shared.read.spark import search as spark_search

    ip = lake["values"]["ip"]
    since = lake["until"] - dt.timedelta(days=30)
    with_index = spark_search(spark, lake["path"], since=since, until=lake["until"], limit=1000, ip=ip)
    without = spark_search(spark, lake["path"], since=since, until=lake["until"], limit=1000, ip=ip, use_index=False)
    assert with_index.tables and _index_hits(with_index) == _index_hits(without)
    duck = duckdb_search(connect(lake["path"], with_views=False), terms_for({"ip": [ip]}), since, lake["until"],
                         limit=1000)
    for table, use in with_index.index.items():
        # The days DuckDB's search reads through the index, and the files; Spark reads none in part.
        assert (use.days, use.from_index, use.scanned, use.files_in_range, use.files_read) == \
            (duck.index[table].days, duck.index[table].from_index, duck.index[table].scanned,
             duck.index[table].files_in_range, duck.index[table].files_read), table
    alerts = with_index.index[views.ALERTS_TABLE]
    assert alerts.from_index and alerts.files_read < alerts.files_in_range, alerts
    assert without.index[views.ALERTS_TABLE].files_read == alerts.files_in_range


def test_a_stale_index_is_not_trusted(spark, lake, tmp_path):
    """A file rewritten under its name after its day was indexed (another size): the day is read whole, and the
    row only that file holds is found."""
    import pyarrow.parquet as pq

    from shared.read import indicator_index
    from shared.read.spark import search as spark_search

    copy = tmp_path / "lake"
    shutil.copytree(lake["path"], copy)
    day_file = sorted((copy / views.ALERTS_TABLE).rglob("*.parquet"))[0]
    table = pq.read_table(day_file)
    extra = table.slice(0, 1)
    extra = extra.set_column(extra.schema.get_field_index("p_row_id"), "p_row_id", pa.array(["stale-row"]))
    extra = extra.set_column(extra.schema.get_field_index("p_any_ip_addresses"), "p_any_ip_addresses",
                             pa.array([["45.155.205.99"]], extra.schema.field("p_any_ip_addresses").type))
    pq.write_table(pa.concat_tables([table, extra.cast(table.schema)]), day_file)
    found = spark_search(spark, str(copy), since=lake["until"] - dt.timedelta(days=400), until=lake["until"],
                         all_versions=True, ip="45.155.205.99")
    assert [(t.table, t.count) for t in found.tables] == [(views.ALERTS_TABLE, 1)]
    use = found.index[views.ALERTS_TABLE]
    assert use.scanned[indicator_index.STALE] == 1 and use.from_index == use.days - sum(use.scanned.values()) > 0
