"""The two Azure Functions, invoked through the v2 app's function objects with the real azure-functions types."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime

import azure.functions as func
import orjson
import pyarrow.parquet as pq
import pytest
from azure.functions import meta
from azure.functions.timer import TimerRequest

import function_app
from normalizers.names import TABLE
from shared.core.errors import EndpointUnreachable
from shared.land.lake_writer import read_table
from shared.core.storage import open_store
from shared.ops.status import FAILING, OK, check
from shared.pull.watermark import WatermarkStore
from tests.conftest import REPO
from tests.doubles import RecordingSink
from tests.storage_faults import alert_bodies, leased_blob


# The app validates its functions once per process, so index them once.
FUNCTIONS = {f.get_function_name(): f for f in function_app.app.get_functions()}


def test_bindings_are_what_the_host_needs():
    pull = json.loads(FUNCTIONS["pull_alerts"].get_function_json())["bindings"][0]
    assert (pull["type"], pull["schedule"], pull["runOnStartup"]) == ("timerTrigger", "%PULL_SCHEDULE%", False)
    normalize = FUNCTIONS["normalize_alerts"]
    trigger = json.loads(normalize.get_function_json())["bindings"][0]
    assert trigger["type"] == "eventHubTrigger"
    assert (trigger["cardinality"], trigger["dataType"]) == ("MANY", "BINARY")
    assert trigger["connection"] == "EventHubConnection"
    assert trigger["eventHubName"] == "%EVENTHUB_NAME%"
    assert trigger["consumerGroup"] == "%EVENTHUB_CONSUMER_GROUP%"
    retry = normalize.get_settings_dict("retry_policy")
    assert retry["strategy"] == "exponential_backoff" and retry["max_retry_count"] == "-1"


def test_pull_alerts_sends_every_alert_and_advances_the_watermark(make_pipeline, monkeypatch):
    pipe = make_pipeline(alerts=200)
    for name, value in pipe.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("EventHubConnection__fullyQualifiedNamespace", "graphlake-test.servicebus.windows.net")
    sink = RecordingSink()
    monkeypatch.setattr(function_app, "open_sink", lambda settings, **_: sink)
    function_app.pull_alerts(TimerRequest(past_due=True))
    assert len({(e.properties["alert_id"], e.properties["last_update"]) for e in sink.events}) == 200
    mark = WatermarkStore(open_store(pipe.env["STATE_URL"]), pipe.tenant.tenant_id).load()
    assert mark.position is not None


def test_pull_alerts_without_event_hub_names_the_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("GRAPH_TENANT_ID", "t")
    monkeypatch.setenv("STATE_URL", str(tmp_path))
    monkeypatch.delenv("EventHubConnection__fullyQualifiedNamespace", raising=False)
    with pytest.raises(Exception, match="EventHubConnection__fullyQualifiedNamespace"):
        function_app.pull_alerts(TimerRequest())


def hub_events(bodies: list[bytes], properties: list[dict], *, partition: str = "3",
               first_sequence: int = 100) -> list[func.EventHubEvent]:
    # What the host passes with cardinality=many: one metadata mapping shared by the batch's events.
    shared_metadata = {"PropertiesArray": meta.Datum(json.dumps(properties), "json"),
                       "PartitionContext": meta.Datum(json.dumps({"PartitionId": partition,
                                                                  "EventHubName": "graph-alerts"}), "json")}
    return [func.EventHubEvent(body=body, trigger_metadata=shared_metadata, sequence_number=first_sequence + i,
                               offset=str(4096 * i), partition_key="microsoftDefenderForIdentity",
                               enqueued_time=datetime(2026, 11, 27, 12, 0, tzinfo=UTC))
            for i, body in enumerate(bodies)]


@pytest.mark.parametrize("kind", ["local", "azurite"])
def test_normalize_alerts_lands_good_events_and_quarantines_bad_ones(make_pipeline, make_store_url, monkeypatch,
                                                                     kind):
    pipe = make_pipeline(alerts=30)
    alerts = pipe.tenant.query(top=30, include_unknown_enum_members=True).alerts
    bodies = [orjson.dumps(a) for a in alerts[:10]] + [b"not json {", b'{"hello": "world"}']
    properties = [{"source_id": "contoso", "source_label": "Contoso SOC"}] * len(bodies)
    lake, state = make_store_url(kind), make_store_url(kind)
    monkeypatch.setenv("LAKE_URL", lake)
    monkeypatch.setenv("STATE_URL", state)
    function_app.normalize_alerts(hub_events(bodies, properties))
    table = read_table(open_store(lake), TABLE)
    assert sorted(table.column("id").to_pylist()) == sorted(a["id"] for a in alerts[:10])
    assert set(table.column("p_source_id").to_pylist()) == {"contoso"}
    assert set(table.column("p_source_label").to_pylist()) == {"Contoso SOC"}
    quarantined = [orjson.loads(open_store(state).read(name).data) for name in open_store(state).list("quarantine/")]
    assert len(quarantined) == 2
    errors = " | ".join(q["error"] for q in quarantined)
    assert "not JSON" in errors
    assert {q["metadata"]["sequence_number"] for q in quarantined} == {110, 111}


def test_normalize_alerts_raises_on_storage_outage_so_the_retry_policy_holds_the_checkpoint(monkeypatch, tmp_path):
    monkeypatch.setenv("LAKE_URL", "http://127.0.0.1:9/devstoreaccount1/lake")
    monkeypatch.setenv("STATE_URL", str(tmp_path))
    body = (REPO / "normalizers" / "golden" / "identity.input.json").read_bytes()
    alert = orjson.dumps(orjson.loads(body)[0])
    with pytest.raises(EndpointUnreachable):
        function_app.normalize_alerts(hub_events([alert], [{}]))
    assert list(open_store(str(tmp_path)).list("quarantine/")) == []


def test_a_batch_that_keeps_failing_is_quarantined_whole_after_the_attempts_and_the_partition_moves_on(
        make_store_url, tmp_path, monkeypatch):
    from azure.core.exceptions import HttpResponseError

    from shared.core import health
    from shared.land.normalize import InboundEvent, normalize_events

    bodies = [*alert_bodies(12), b"not json {"]
    lake, state = make_store_url("azurite"), make_store_url("local")
    # The batch's day file is held by a lease: a permanent 4xx, the same on every delivery of this batch.
    scratch = normalize_events([InboundEvent(b) for b in bodies], lake=open_store(str(tmp_path / "scratch")),
                               state=open_store(str(tmp_path / "scratch-state")))
    leased_blob(lake, scratch.files[0])
    monkeypatch.setenv("LAKE_URL", lake)
    monkeypatch.setenv("STATE_URL", state)
    monkeypatch.setenv("NORMALIZE_MAX_ATTEMPTS", "3")
    properties = [{"source_id": "contoso", "source_label": "Contoso SOC"}] * len(bodies)
    for attempt in (1, 2):
        with pytest.raises(HttpResponseError):
            function_app.normalize_alerts(hub_events(bodies, properties, partition="3", first_sequence=500))
        record = health.load(open_store(state), "normalize", "3")
        assert (record["result"], record["consecutive_failures"], record["batch_attempts"]) == \
            ("failed", attempt, attempt)
        assert "412" in record["error"] or "LeaseIdMissing" in record["error"]
    # The last attempt gives up: every event of the batch (the bad one too) is in quarantine with the reason.
    function_app.normalize_alerts(hub_events(bodies, properties, partition="3", first_sequence=500))
    store = open_store(state)
    docs = [orjson.loads(store.read(name).data) for name in store.list("quarantine/")]
    assert sorted(base64.b64decode(d["raw_base64"]) for d in docs) == sorted(bodies)
    given_up = [d for d in docs if d["raw_utf8_preview"] != "not json {"]
    assert all("after 3 attempts" in d["error"] and "LeaseIdMissing" in d["error"] for d in given_up), given_up[0]
    assert {d["metadata"]["partition"] for d in docs} == {"3"}
    assert {d["metadata"]["properties"]["source_id"] for d in docs} == {"contoso"}
    record = health.load(store, "normalize", "3")
    assert (record["result"], record["quarantined"], record["rows"]) == ("gave_up", len(bodies), 0)
    # The next batch of the partition lands, and the record says so.
    later = alert_bodies(5, seed=12)
    function_app.normalize_alerts(hub_events(later, properties[:5], partition="3", first_sequence=513))
    lake_store = open_store(lake)
    landed = [n for n in lake_store.list(f"{TABLE}/") if n != scratch.files[0]]
    assert sum(pq.read_metadata(io.BytesIO(lake_store.read(n).data)).num_rows for n in landed) == 5
    record = health.load(store, "normalize", "3")
    assert (record["result"], record["consecutive_failures"], record["rows"], record["error"]) == ("ok", 0, 5, None)


_DELIVER = """
import json, sys
from tests.test_functions import hub_events
import function_app
bodies = [line.encode() for line in open(sys.argv[1]).read().splitlines()]
function_app.normalize_alerts(hub_events(bodies, [{}] * len(bodies), partition="5", first_sequence=700))
"""


def _waits_for_a_lock(pid: int) -> bool:
    """True once the process waits for a file lock (the kernel lists blocked requests with '->' in /proc/locks)."""
    with open("/proc/locks") as locks:
        return any(parts[1] == "->" and parts[5] == str(pid) for parts in map(str.split, locks) if len(parts) > 5)


def test_a_batch_whose_deliveries_die_without_a_result_is_given_up_after_the_attempts(tmp_path, monkeypatch):
    import fcntl
    import os
    import signal

    from shared.core import health
    from shared.land.normalize import InboundEvent, normalize_events

    bodies = alert_bodies(6)
    (tmp_path / "batch.jsonl").write_bytes(b"\n".join(bodies))
    lake, state = tmp_path / "lake", tmp_path / "state"
    env = {**os.environ, "LAKE_URL": str(lake), "STATE_URL": str(state), "NORMALIZE_MAX_ATTEMPTS": "2",
           "PYTHONPATH": str(REPO)}
    # The lake's folder lock, held here: a delivery blocks writing the batch's file, so it is surely killed mid-way.
    first, *_ = normalize_events([InboundEvent(b) for b in bodies], lake=open_store(str(tmp_path / "scratch")),
                                 state=open_store(str(tmp_path / "scratch-state"))).files  # days are written in order
    folder = lake.joinpath(*first.split("/")[:-1])
    folder.mkdir(parents=True)
    lock = os.open(folder / ".graphlake.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(lock, fcntl.LOCK_EX)
    for attempts in (0, 1):
        delivery = subprocess.Popen([sys.executable, "-c", _DELIVER, str(tmp_path / "batch.jsonl")], cwd=REPO,
                                    env=env)
        while delivery.poll() is None and not _waits_for_a_lock(delivery.pid):
            time.sleep(0.01)
        assert delivery.poll() is None, "the delivery ended although the lake was locked"
        # Blocked writing the batch: it marked the batch in flight first, with the attempts of those before it.
        record = health.load(open_store(str(state)), "normalize", "5")
        assert record is not None and (record["in_flight"], record["batch_attempts"]) == (700, attempts)
        delivery.send_signal(signal.SIGKILL)
        delivery.wait()
    os.close(lock)
    # The third delivery finds the batch still in flight a second time: it gives the batch up without trying again.
    monkeypatch.setenv("LAKE_URL", str(lake))
    monkeypatch.setenv("STATE_URL", str(state))
    monkeypatch.setenv("NORMALIZE_MAX_ATTEMPTS", "2")
    function_app.normalize_alerts(hub_events(bodies, [{}] * len(bodies), partition="5", first_sequence=700))
    store = open_store(str(state))
    docs = [orjson.loads(store.read(n).data) for n in store.list("quarantine/")]
    assert sorted(base64.b64decode(d["raw_base64"]) for d in docs) == sorted(bodies)
    assert all("given up after 2 attempts: the last delivery of this batch stopped without a result" in d["error"]
               for d in docs)
    record = health.load(store, "normalize", "5")
    assert (record["result"], record["batch_attempts"], record["in_flight"], record["quarantined"]) == \
        ("gave_up", 2, None, len(bodies))
    assert not list(open_store(str(lake)).list("security_alerts/"))


def test_a_storage_outage_keeps_retrying_past_the_attempts_and_quarantines_nothing(monkeypatch, tmp_path):
    from shared.core import health

    monkeypatch.setenv("LAKE_URL", "http://127.0.0.1:9/devstoreaccount1/lake")
    monkeypatch.setenv("STATE_URL", str(tmp_path))
    monkeypatch.setenv("NORMALIZE_MAX_ATTEMPTS", "2")
    bodies = alert_bodies(3)
    for attempt in range(1, 5):
        with pytest.raises(EndpointUnreachable):
            function_app.normalize_alerts(hub_events(bodies, [{}] * 3, partition="0"))
        record = health.load(open_store(str(tmp_path)), "normalize", "0")
        assert (record["result"], record["consecutive_failures"], record["batch_attempts"]) == \
            ("failed", attempt, 0)
    assert list(open_store(str(tmp_path)).list("quarantine/")) == []


def test_the_normalize_path_does_not_load_the_graph_sdk():
    probe = ("import sys, function_app; "
             "print(sorted({m.split('.')[0] for m in sys.modules if m.startswith(('msgraph', 'kiota'))}))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- compact_lake ------------------------------------------------------------------------------------------------

def test_compact_lake_is_a_timer_with_the_singleton_lock_and_no_retry():
    binding = json.loads(FUNCTIONS["compact_lake"].get_function_json())["bindings"][0]
    assert (binding["type"], binding["schedule"], binding["runOnStartup"], binding["useMonitor"]) == \
        ("timerTrigger", "%COMPACT_SCHEDULE%", False, True)
    assert FUNCTIONS["compact_lake"].get_settings_dict("retry_policy") is None


def _small_files(store, day, values=([0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11])):
    import pyarrow as pa

    from shared.land.lake_writer import write_table

    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    for f, value in enumerate(values):
        ids = [f"{day:%m%d}-{f}-{i}" for i in range(len(value))]
        write_table(store, pa.table({"p_row_id": ids, "p_event_time": [start] * len(ids), "value": value}),
                    table_name="okta_events")


@pytest.mark.parametrize("kind", ["local", "azurite"])
def test_compact_lake_merges_closed_partitions_with_the_app_settings(make_store_url, monkeypatch, kind):
    lake = make_store_url(kind)
    store = open_store(lake)
    # The function compacts with the real clock: days far on either side of it are closed or open on any date.
    old, recent = date(2020, 1, 5), date(2999, 1, 5)
    _small_files(store, old)
    _small_files(store, recent)
    monkeypatch.setenv("LAKE_URL", lake)
    monkeypatch.setenv("STATE_URL", make_store_url(kind))
    monkeypatch.setenv("COMPACT_GRACE_DAYS", "3")
    function_app.compact_lake(TimerRequest(past_due=False))
    by_day = {}
    for name in store.list("okta_events/"):
        by_day.setdefault(name.rsplit("/", 1)[0], []).append(name.rsplit("/", 1)[1])
    assert sorted(len(files) for files in by_day.values()) == [1, 3]
    [compacted] = by_day[f"okta_events/year={old.year}/month={old.month:02d}/day={old.day:02d}"]
    assert compacted.startswith("compacted-")
    assert read_table(store, "okta_events").num_rows == 24
    state = open_store(os.environ["STATE_URL"])
    [finding] = check(state, datetime.now(UTC), 900)
    assert (finding.component, finding.key, finding.state) == ("compact", "lake", OK)
    assert finding.reason == ("last run: 1 partitions compacted; indexes: 1 written with their partitions, "
                              "0 found missing or stale and written again"), finding.reason


def test_compact_lake_raises_when_a_partition_cannot_be_merged(monkeypatch, tmp_path):
    from shared.ops.compact import CompactFailed

    store = open_store(str(tmp_path))
    _small_files(store, date(2020, 1, 4), values=([1, 2], ["one", "two"]))
    monkeypatch.setenv("LAKE_URL", str(tmp_path))
    monkeypatch.setenv("STATE_URL", str(tmp_path / "state"))
    with pytest.raises(CompactFailed, match="not compacted"):
        function_app.compact_lake(TimerRequest())
    assert len(list(store.list("okta_events/"))) == 2
    [finding] = check(open_store(str(tmp_path / "state")), datetime.now(UTC), 900)
    assert finding.state == FAILING and finding.reason.startswith("1 partitions not compacted, first: okta_events/")


def test_a_compact_run_that_raises_is_recorded_and_status_is_not_ok(monkeypatch, tmp_path):
    # A storage refusal is not the data's fault, so it raises out of the run; the last good run's record must not
    # keep status OK meanwhile.
    from tests.storage_faults import WriteOutage

    lake, state = tmp_path / "lake", tmp_path / "state"
    store = open_store(str(lake))
    _small_files(store, date(2020, 1, 4))
    monkeypatch.setenv("LAKE_URL", str(lake))
    monkeypatch.setenv("STATE_URL", str(state))
    function_app.compact_lake(TimerRequest())
    assert [f.state for f in check(open_store(str(state)), datetime.now(UTC), 900)] == [OK]
    _small_files(store, date(2020, 1, 5))
    outage = WriteOutage(str(lake), "okta_events/year=2020/month=01/day=05/any.parquet")
    outage.begin()
    try:
        for runs in (1, 2):
            with pytest.raises(OSError):
                function_app.compact_lake(TimerRequest())
            [finding] = check(open_store(str(state)), datetime.now(UTC), 900)
            assert finding.state == FAILING and "failed: " in finding.reason, finding.reason
            assert finding.reason.startswith("2 runs in a row failed" if runs == 2 else "last run failed"), \
                finding.reason
    finally:
        outage.end()
    function_app.compact_lake(TimerRequest())
    [finding] = check(open_store(str(state)), datetime.now(UTC), 900)
    assert finding.state == OK and finding.reason.startswith("last run: 1 partitions compacted"), finding.reason


def test_the_compact_path_does_not_load_the_graph_sdk(tmp_path):
    probe = ("import sys, function_app; from azure.functions.timer import TimerRequest; "
             "function_app.compact_lake(TimerRequest()); "
             "print(sorted({m.split('.')[0] for m in sys.modules if m.startswith(('msgraph', 'kiota'))}))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "LAKE_URL": str(tmp_path), "STATE_URL": str(tmp_path)})
    assert out.stdout.strip() == "[]"


def test_normalize_logs_is_bound_to_its_own_hub_and_consumer_group_with_the_alerts_retry_policy():
    normalize = FUNCTIONS["normalize_logs"]
    trigger = json.loads(normalize.get_function_json())["bindings"][0]
    assert (trigger["type"], trigger["cardinality"], trigger["dataType"]) == ("eventHubTrigger", "MANY", "BINARY")
    assert trigger["connection"] == "EventHubConnection"
    assert (trigger["eventHubName"], trigger["consumerGroup"]) == \
        ("%LOGS_EVENTHUB_NAME%", "%LOGS_EVENTHUB_CONSUMER_GROUP%")
    assert normalize.get_settings_dict("retry_policy") == FUNCTIONS["normalize_alerts"].get_settings_dict(
        "retry_policy")


@pytest.mark.parametrize("kind", ["local", "azurite"])
def test_normalize_logs_lands_every_category_quarantines_bad_records_and_is_ok_in_status(make_store_url, monkeypatch,
                                                                                          kind):
    from click.testing import CliRunner

    from normalizers.logs import TABLES
    from shared.cli import main
    from shared.core import health
    from tests.log_records import body, every_category

    records = every_category()
    # As diagnostic settings send them: several records an event; one event not JSON, one with a bad record.
    bodies = [body(records[:6]), body(records[6:12]), b"not json {",
              body([*records[12:], {"category": "SignInLogs", "time": "never"}])]
    lake, state = make_store_url(kind), make_store_url(kind)
    monkeypatch.setenv("LAKE_URL", lake)
    monkeypatch.setenv("STATE_URL", state)
    for _ in range(2):  # delivered twice: at least once
        function_app.normalize_logs(hub_events(bodies, [{}] * len(bodies), partition="2", first_sequence=900))
    landed = sum(read_table(open_store(lake), table).num_rows for table in TABLES)
    assert landed == len(records)
    quarantined = [orjson.loads(open_store(state).read(n).data) for n in open_store(state).list("quarantine/")]
    assert sorted(q["metadata"]["sequence_number"] for q in quarantined) == [902, 903]
    assert any("no readable time" in q["error"] for q in quarantined)
    record = health.load(open_store(state), "normalize_logs", "2")
    assert (record["result"], record["rows"], record["duplicates"], record["quarantined"]) == \
        ("ok", len(records), 0, 2)
    result = CliRunner().invoke(main, ["status", "--state", state, "--format", "json"],
                                env={"GRAPH_SOURCES": "", "GRAPH_TENANT_ID": ""})
    findings = [orjson.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert ("normalize_logs", "2", "OK") in [(f["component"], f["key"], f["state"]) for f in findings]
    assert ("quarantine", "state", "LAGGING") in [(f["component"], f["key"], f["state"]) for f in findings]


def test_normalize_logs_raises_on_storage_outage_and_quarantines_nothing(monkeypatch, tmp_path):
    from tests.log_records import body, golden

    monkeypatch.setenv("LAKE_URL", "http://127.0.0.1:9/devstoreaccount1/lake")
    monkeypatch.setenv("STATE_URL", str(tmp_path))
    with pytest.raises(EndpointUnreachable):
        function_app.normalize_logs(hub_events([body(golden("entra_audit_logs"))], [{}]))
    assert list(open_store(str(tmp_path)).list("quarantine/")) == []
