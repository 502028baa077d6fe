"""Landing Azure Monitor records (shared/land with the LOGS family): every category to its table, a bad record
quarantined alone while the rest of its event lands, re-delivery idempotent, replay by family, the retry policy's
health records under normalize_logs, also for the in-process logs hub the demo streams to."""

from __future__ import annotations

import orjson
import pytest

from collections import Counter
from datetime import UTC, datetime

from normalizers.logs import TABLES, route
from shared.core import health
from shared.core.storage import open_store
from shared.land.lake_writer import read_table
from shared.land.local_sink import InProcessSink
from shared.land.normalize import LOGS, InboundEvent, normalize_events
from shared.land.requeue import replay
from shared.land.retries import Batch, normalize_delivery
from shared.ops.status import FAILING, LAGGING, OK, check
from shared.read.query import connect
from simulator import Tenant
from simulator.monitor_logs import MonitorLogs, event_hub_bodies, faulty_bodies, send_bodies
from tests.log_records import body, every_category, golden

BAD_CATEGORY = {"time": "2026-06-02T09:00:00Z", "category": "StorageRead", "properties": {}}


def quarantined_docs(state) -> list[dict]:
    return [orjson.loads(state.read(name).data) for name in sorted(state.list("quarantine/"))]


@pytest.mark.parametrize("kind", ["local", "azurite"])
def test_every_category_lands_in_its_table_and_a_bad_record_is_quarantined_alone(make_store_url, kind):
    lake, state = open_store(make_store_url(kind)), open_store(make_store_url(kind))
    records = every_category()
    event = InboundEvent(body([*records[:3], BAD_CATEGORY, 42, *records[3:]]),
                         metadata={"partition": "1", "sequence_number": 7, "enqueued_time": "2026-06-02T10:00:00Z"})
    result = normalize_events([event], lake=lake, state=state, family=LOGS)
    assert (result.rows, result.duplicates, len(result.quarantined)) == (len(records), 0, 2)
    for table in TABLES:
        landed = read_table(lake, table)
        assert sorted(landed.column("category").to_pylist()) == sorted(r["category"] for r in golden(table))
    bad, number = sorted(quarantined_docs(state), key=lambda doc: doc["metadata"]["record"])
    # Each bad record alone, as its own JSON, with its place in the event and the family replay needs.
    assert orjson.loads(bad["raw_utf8_preview"]) == BAD_CATEGORY
    assert bad["metadata"].items() >= {"record": 3, "family": "logs", "sequence_number": 7, "partition": "1"}.items()
    assert "record 3: NotARecord: category 'StorageRead' is not one graphlake lands" in bad["error"]
    assert number["raw_utf8_preview"] == "42" and "expected a JSON object" in number["error"]


@pytest.mark.parametrize(("raw", "reason"), [
    (b"not json {", "body is not JSON"),
    (b'{"records": {"category": "AuditLogs"}}', '"records" is not a list'),
    (b"[]", "body is a JSON list, not an object"),
])
def test_an_event_that_holds_no_records_is_quarantined_whole(tmp_path, raw, reason):
    lake, state = open_store(str(tmp_path / "lake")), open_store(str(tmp_path / "state"))
    good = InboundEvent(body(golden("entra_audit_logs")))
    result = normalize_events([InboundEvent(raw), good], lake=lake, state=state, family=LOGS)
    assert result.rows == 2
    (doc,) = quarantined_docs(state)
    assert reason in doc["error"] and doc["metadata"]["family"] == "logs"


def test_a_redelivered_event_and_a_record_sent_twice_are_one_row_each(tmp_path):
    lake, state = open_store(str(tmp_path / "lake")), open_store(str(tmp_path / "state"))
    records = golden("entra_signin_logs")
    first = normalize_events([InboundEvent(body(records))], lake=lake, state=state, family=LOGS)
    again = normalize_events([InboundEvent(body(records))], lake=lake, state=state, family=LOGS)
    assert first.files == again.files  # same rows, same file: the redelivery overwrote it
    # The same record in another event (and twice in one), with its keys in another order: one row still.
    reordered = {key: records[0][key] for key in reversed(list(records[0]))}
    other = normalize_events([InboundEvent(body([reordered, records[0], records[1]]))], lake=lake, state=state,
                             family=LOGS)
    assert (other.rows, other.duplicates) == (2, 1) and other.files != first.files
    rows = read_table(lake, "entra_signin_logs")
    assert rows.num_rows == len(records) + 2
    (count,) = connect(str(tmp_path / "lake")).execute("SELECT count(*) FROM entra_signin_logs").fetchone()
    assert count == len(records)  # the table's view keeps one row per p_row_id


def test_a_given_up_batch_of_records_is_replayed_into_its_tables(make_store_url, tmp_path):
    from tests.storage_faults import leased_blob

    records = golden("entra_risk_events")
    events = [InboundEvent(body(records[:2]), metadata={"partition": "0"}),
              InboundEvent(body(records[2:]), metadata={"partition": "0"})]
    lake_url, state = make_store_url("azurite"), open_store(str(tmp_path / "state"))
    scratch = normalize_events(events, lake=open_store(str(tmp_path / "scratch")), state=state, family=LOGS)
    leased_blob(lake_url, scratch.files[0])  # a permanent 4xx on every delivery
    lake, batch = open_store(lake_url), Batch("0", 40)
    with pytest.raises(Exception, match="412|LeaseIdMissing"):
        normalize_delivery(events, batch, lake=lake, state=state, max_attempts=2, family=LOGS)
    failing = health.load(state, "normalize_logs", "0")
    assert (failing["result"], failing["batch_attempts"]) == ("failed", 1)
    given_up = normalize_delivery(events, batch, lake=lake, state=state, max_attempts=2, family=LOGS)
    assert len(given_up.quarantined) == 2
    assert health.load(state, "normalize_logs", "0")["result"] == "gave_up"
    assert health.load(state, "normalize", "0") is None  # the alerts' records are not touched

    summary = replay(state, open_store(str(tmp_path / "fixed-lake")))
    assert (summary.landed, summary.rows, summary.stayed_total) == (2, len(records), 0)
    assert read_table(open_store(str(tmp_path / "fixed-lake")), "entra_risk_events").num_rows == len(records)
    assert list(state.list("quarantine/")) == []


def test_replay_keeps_a_record_of_an_unknown_category_with_its_reason(tmp_path):
    lake, state = open_store(str(tmp_path / "lake")), open_store(str(tmp_path / "state"))
    normalize_events([InboundEvent(body([BAD_CATEGORY, *golden("entra_audit_logs")]))], lake=lake, state=state,
                     family=LOGS)
    summary = replay(state, lake)
    assert (summary.landed, summary.stayed_total) == (0, 1)
    (reason,) = summary.stayed
    assert "category 'StorageRead'" in reason
    assert read_table(lake, "entra_audit_logs").num_rows == 2


def test_replay_of_an_event_whose_bad_record_stays_says_it_stays(tmp_path):
    # An event quarantined whole (its batch given up), one bad record among good ones: on replay the good ones land,
    # the bad one is quarantined alone under a name of its own. It stays, and the summary (and exit code) say so.
    from shared.land.normalize import quarantine_event

    lake, state = open_store(str(tmp_path / "lake")), open_store(str(tmp_path / "state"))
    event = InboundEvent(body([*golden("entra_audit_logs"), BAD_CATEGORY]), metadata={"partition": "0"})
    whole = quarantine_event(state, event, "batch of 1 events given up after 5 attempts: boom", LOGS)
    summary = replay(state, lake)
    assert read_table(lake, "entra_audit_logs").num_rows == 2
    [left] = list(state.list("quarantine/"))
    assert left != whole and "category 'StorageRead'" in orjson.loads(state.read(left).data)["error"]
    assert (summary.examined, summary.rows, summary.stayed_total) == (1, 2, 1)
    [(reason, count)] = summary.stayed.items()
    assert count == 1
    assert "category 'StorageRead'" in reason and "boom" in reason  # and what the event was first quarantined for
    assert summary.first_stayed[reason] == left


LOGS_HUB = "azure-monitor-logs"


def test_the_in_process_logs_hub_lands_each_batch_as_normalize_logs_does(tmp_path):
    """The demo's seam: the simulated tenant's bodies, good and bad, sent to the logs hub of the in-process sink land
    in their tables, the bad ones quarantined, and each batch keeps normalize_logs's health record, which status
    judges."""
    lake, state = open_store(str(tmp_path / "lake")), open_store(str(tmp_path / "state"))
    records = MonitorLogs(Tenant(seed=7, alerts=40, days=2.0), days=0.25).records()
    faulty = faulty_bodies(records)
    sink = InProcessSink(lake, state, logs_hub=LOGS_HUB, max_attempts=3)
    batches = send_bodies(sink, LOGS_HUB, [*event_hub_bodies(records, max_bytes=64 * 1024),
                                           *(raw for _, raw, _ in faulty)])
    sink.close()
    assert batches > 1  # several deliveries, so the sequence numbers below are tested on more than one
    con = connect(str(tmp_path / "lake"))
    landed = {table: con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in con.files}
    assert landed == dict(Counter(route(record["category"]).TABLE for record in records))
    docs = quarantined_docs(state)
    # One quarantined document for each body that holds no records and for each bad record beside good ones.
    assert len(docs) == len(faulty) and len(sink.logs_result.quarantined) == len(faulty)
    assert {doc["metadata"]["family"] for doc in docs} == {"logs"}
    assert {doc["metadata"]["partition"] for doc in docs} == {"local"}
    assert len({doc["metadata"]["sequence_number"] for doc in docs}) == len(faulty)
    record = health.load(state, "normalize_logs", "local")
    assert record["result"] == "ok" and record["batch_first_sequence"] > 0 and record["in_flight"] is None
    assert health.load(state, "normalize", "local") is None and sink.result.rows == 0  # the alerts' path untouched
    findings = {(f.component, f.key): f for f in check(state, datetime.now(UTC), 900)}
    assert findings["normalize_logs", "local"].state == OK
    assert findings["quarantine", "state"].state == LAGGING  # the bad records wait for graphlake replay


def test_an_in_process_logs_batch_that_cannot_land_is_given_up_and_status_says_so(make_store_url, tmp_path):
    from tests.storage_faults import leased_blob

    records = golden("entra_audit_logs")
    lake_url, state = make_store_url("azurite"), open_store(str(tmp_path / "state"))
    scratch = normalize_events([InboundEvent(body(records))], lake=open_store(str(tmp_path / "scratch")),
                               state=state, family=LOGS)
    leased_blob(lake_url, scratch.files[0])  # a permanent 4xx: the batch's file cannot be written
    sink = InProcessSink(open_store(lake_url), state, logs_hub=LOGS_HUB, max_attempts=1)
    send_bodies(sink, LOGS_HUB, [body(records)])
    sink.close()
    assert len(sink.logs_result.quarantined) == 1 and sink.logs_result.rows == 0
    findings = {(f.component, f.key): f for f in check(state, datetime.now(UTC), 900)}
    assert findings["normalize_logs", "local"].state == FAILING
    assert "gave a batch up" in findings["normalize_logs", "local"].reason
