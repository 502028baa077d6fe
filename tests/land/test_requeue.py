"""`graphlake replay`: quarantined events land once their cause is fixed, leave quarantine only then, and what stays
is said with its reason."""

from __future__ import annotations

import io

import orjson
import pyarrow.parquet as pq
from click.testing import CliRunner

from normalizers.names import TABLE
from shared.cli import main
from shared.core.event_format import CLAIM_CHECK_KEY
from shared.land.normalize import InboundEvent, normalize_events
from shared.land.retries import Batch, normalize_delivery
from shared.core.storage import open_store
from tests.storage_faults import alert_bodies, leased_blob


def lake_column(lake, column: str = "p_row_id") -> list[str]:
    return [value for name in lake.list(f"{TABLE}/")
            for value in pq.read_table(io.BytesIO(lake.read(name).data), columns=[column])[column].to_pylist()]


def replay(state: str, lake: str):
    return CliRunner().invoke(main, ["replay", "--state", state, "--lake", lake], catch_exceptions=False)


def test_replay_lands_what_was_fixed_removes_only_that_and_says_what_stays(make_store_url, tmp_path):
    lake_url, state_url = make_store_url("azurite"), make_store_url("local")
    lake, state = open_store(lake_url), open_store(state_url)
    # 1. A batch given up: its day file is held by a lease (a permanent 412), so every delivery failed.
    batch = alert_bodies(8)
    scratch = normalize_events([InboundEvent(b) for b in batch], lake=open_store(str(tmp_path / "scratch")),
                               state=open_store(str(tmp_path / "scratch-state")))
    lease = leased_blob(lake_url, scratch.files[0])
    gave_up = normalize_delivery([InboundEvent(b, {"source_id": "contoso"}, {"sequence_number": 40 + i})
                                  for i, b in enumerate(batch)], Batch("1", 40), lake=lake, state=state,
                                 max_attempts=1)
    assert len(gave_up.quarantined) == len(batch)
    # 2. An oversized alert whose claim check was not there yet, and 3. an event that can never be a row.
    parked = alert_bodies(9, seed=13)[-1]
    pointer = orjson.dumps({CLAIM_CHECK_KEY: "claimchecks/contoso/late.json"})
    normalize_events([InboundEvent(pointer), InboundEvent(b"not json {")], lake=lake, state=state)
    assert len(list(state.list("quarantine/"))) == len(batch) + 2
    expected = set(scratch_ids := lake_column(open_store(str(tmp_path / "scratch"))))
    assert len(scratch_ids) == len(batch)

    # A storage outage while replaying: nothing leaves quarantine.
    down = CliRunner().invoke(main, ["replay", "--state", state_url, "--lake",
                                     "http://127.0.0.1:9/devstoreaccount1/lake"])
    assert down.exit_code == 2 and "cannot reach blob storage" in down.output
    assert len(list(state.list("quarantine/"))) == len(batch) + 2

    # The fixes: the lease is released and the stale blob removed, the claim check is written.
    lease.release()
    lake.delete(scratch.files[0])
    state.write("claimchecks/contoso/late.json", parked)
    first = replay(state_url, lake_url)
    assert first.exit_code == 1, first.output
    lines = first.output.splitlines()
    assert lines[0] == f"{len(batch) + 2} quarantined events replayed: {len(batch) + 1} landed " \
                       f"({len(batch) + 1} rows) and left quarantine, 1 stays"
    assert lines[1].startswith("  1 stays: body is not JSON") and "(first: quarantine/" in lines[1]
    [left] = state.list("quarantine/")
    assert orjson.loads(state.read(left).data)["raw_base64"] == "bm90IGpzb24gew=="  # b"not json {"
    landed = lake_column(lake)
    assert expected <= set(landed) and len(set(landed)) == len(batch) + 1
    assert orjson.loads(parked)["id"] in lake_column(lake, "id")

    # Again: nothing more lands, the lake keeps its rows, the bad event still stays with its reason.
    again = replay(state_url, lake_url)
    assert again.exit_code == 1
    assert again.output.splitlines()[0] == "1 quarantined event replayed: 0 landed (0 rows) and left quarantine, " \
                                           "1 stays"
    assert set(lake_column(lake)) == set(landed)


def test_replay_of_an_empty_quarantine_exits_0(tmp_path):
    result = replay(str(tmp_path / "state"), str(tmp_path / "lake"))
    assert result.exit_code == 0
    assert result.output == "0 quarantined events replayed: 0 landed (0 rows) and left quarantine, 0 stay\n"


def test_replay_keeps_the_first_reason_and_a_document_can_be_dropped_for_good(tmp_path):
    from shared.land.quarantine import quarantine

    state_url, lake_url = str(tmp_path / "state"), str(tmp_path / "lake")
    state = open_store(state_url)
    name = quarantine(state, raw=b"not json {", error="claim check quarantine/x is gone", metadata={})
    first = replay(state_url, lake_url)
    assert first.exit_code == 1
    assert "(first quarantined for: claim check quarantine/x is gone)" in first.output
    [left] = state.list("quarantine/")
    doc = orjson.loads(state.read(left).data)
    assert doc["error"].startswith("body is not JSON") and doc["first_error"] == "claim check quarantine/x is gone"

    listed = CliRunner().invoke(main, ["replay", "--state", state_url, "--list"])
    assert listed.output == f"{left}: claim check quarantine/x is gone\n"
    status = CliRunner().invoke(main, ["status", "--state", state_url, "--format", "json"])
    assert status.exit_code == 1 and '"quarantine"' in status.stdout
    dropped = CliRunner().invoke(main, ["replay", "--state", state_url, "--drop", left])
    assert dropped.exit_code == 0 and dropped.output == "dropped 1 quarantined document\n"
    assert list(state.list("quarantine/")) == [] and name == left
    after = CliRunner().invoke(main, ["status", "--state", state_url, "--format", "json"])
    assert '"quarantine"' not in after.stdout
    unknown = CliRunner().invoke(main, ["replay", "--state", state_url, "--drop", left])
    assert unknown.exit_code == 2 and "not in the quarantine" in unknown.output
