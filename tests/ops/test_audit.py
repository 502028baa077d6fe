"""Completeness against Graph itself: `graphlake audit` and the reconcile_alerts timer, against the simulator over
HTTP through the real msgraph-sdk, with the lake on a local folder and on Azurite."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from azure.functions.timer import TimerRequest
from click.testing import CliRunner

import function_app
from normalizers.core import legacy_row_id, row_id
from normalizers.names import TABLE
from shared.core import health
from shared.cli import main
from shared.land.local_sink import InProcessSink
from shared.core.storage import open_store



def run(pipe, *args: str):
    return CliRunner().invoke(main, list(args), env=pipe.env, catch_exceptions=False)


def audit(pipe, *args: str) -> tuple[int, dict]:
    result = run(pipe, "audit", "--since", "3d", "--format", "json", *args)
    [report] = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    return result.exit_code, report


def latest_row_ids(pipe) -> dict[str, str]:
    """alert id -> p_row_id of the version Graph shows now."""
    return {alert_id: row_id(pipe.tenant.tenant_id, alert_id, last_update, pipe.tenant.service_source(alert_id))
            for alert_id, last_update in pipe.current_pairs()}


def lake_files(pipe) -> dict[str, list[tuple[str, str]]]:
    store = open_store(pipe.env["LAKE_URL"])
    out = {}
    for name in store.list(f"{TABLE}/"):
        table = pq.read_table(io.BytesIO(store.read(name).data), columns=["id", "p_row_id"])
        out[name] = list(zip(table.column("id").to_pylist(), table.column("p_row_id").to_pylist()))
    return out


@pytest.mark.parametrize("kind", ["local", "azurite"])
def test_audit_passes_fails_on_a_removed_file_naming_what_is_missing_and_repair_makes_it_pass(make_pipeline, kind):
    pipe = make_pipeline(kind, alerts=300, days=2)
    assert run(pipe, "pull", "--once").exit_code == 0

    code, report = audit(pipe)
    assert code == 0, report
    assert (report["alerts"], report["missing"], report["confirmed"]) == (300, 0, True)
    assert sum(p["complete"] for p in report["providers"].values()) == 300
    assert len(report["providers"]) > 3  # counted per serviceSource

    # Remove one file that holds the latest version of some alerts.
    latest = latest_row_ids(pipe)
    files = lake_files(pipe)
    name, rows = next((n, rows) for n, rows in sorted(files.items()) if any(latest[a] == r for a, r in rows))
    open_store(pipe.env["LAKE_URL"]).delete(name)
    lost = {a for a, r in rows if latest[a] == r}
    elsewhere = {a for n, other in files.items() if n != name for a, _ in other}

    code, report = audit(pipe)
    assert code == 1
    assert {f["alert_id"] for f in report["findings"]} == lost
    assert {f["alert_id"] for f in report["findings"] if f["kind"] == "behind"} == lost & elsewhere
    assert report["missing"] == len(lost) and report["late_found"] == len(lost)  # the pull is past them for good
    table = run(pipe, "audit", "--since", "3d", "--limit", "1000")
    assert table.exit_code == 1
    assert all(alert_id in table.output for alert_id in lost)

    code, report = audit(pipe, "--repair")
    assert code == 0 and report["repaired"] == len(lost), report
    code, report = audit(pipe)
    assert code == 0 and report["missing"] == 0, report
    assert set(latest.values()) <= {r for rows in lake_files(pipe).values() for _, r in rows}


def test_audit_tells_twins_apart_and_still_knows_the_row_ids_of_a_lake_written_before(make_pipeline):
    """An alert is (id, serviceSource). A lake written before serviceSource was part of p_row_id holds one id's
    twins under one old row id (the second deduplicated away): the first still counts as complete, the second
    as missing, and a repair lands it."""
    pipe = make_pipeline(alerts=40, days=1)
    assert run(pipe, "pull", "--once").exit_code == 0
    [first] = pipe.tenant.mutate(new_alerts=1)
    pipe.tenant.add_twin(first.alert_id)
    twin = pipe.tenant.versions()[-1]
    pipe.settle()
    assert run(pipe, "pull", "--once").exit_code == 0
    code, report = audit(pipe)
    assert (code, report["alerts"], report["missing"]) == (0, 42, 0), report

    # The lake as the pull before this change left it: old row ids, and the twin never landed.
    tenant = pipe.tenant.tenant_id
    old = {row_id(tenant, v.alert_id, v.last_update, v.service_source):
           legacy_row_id(tenant, v.alert_id, v.last_update) for v in pipe.tenant.versions()}
    lake = open_store(pipe.env["LAKE_URL"])
    for name in lake.list(f"{TABLE}/"):
        table = pq.read_table(io.BytesIO(lake.read(name).data))
        is_twin = pc.and_(pc.equal(table["id"], twin.alert_id), pc.equal(table["serviceSource"], twin.service_source))
        table = table.filter(pc.invert(pc.fill_null(is_twin, False)))
        column = table.schema.get_field_index("p_row_id")
        table = table.set_column(column, "p_row_id", pa.array([old[r] for r in table["p_row_id"].to_pylist()]))
        out = io.BytesIO()
        pq.write_table(table, out)
        lake.write(name, out.getvalue())

    code, report = audit(pipe)
    assert code == 1 and report["alerts"] == 42, report
    assert [(f["alert_id"], f["service_source"], f["kind"]) for f in report["findings"]] == [
        (twin.alert_id, twin.service_source, "missing")]
    code, report = audit(pipe, "--repair")
    assert code == 0 and report["repaired"] == 1, report
    code, report = audit(pipe)
    assert (code, report["missing"]) == (0, 0), report


def test_audit_stops_at_the_watermark_and_counts_a_never_pulled_tenant_as_missing(make_pipeline):
    pipe = make_pipeline(alerts=40, days=1)
    code, report = audit(pipe)
    assert code == 1 and report["watermark"] is None
    assert report["missing"] == 40 and report["late_found"] == 0  # no pull yet: nothing is late, all is missing
    assert run(pipe, "pull", "--once").exit_code == 0
    # Alerts updated after the watermark are the next pull's work, not missing.
    updated = {v.alert_id for v in pipe.tenant.mutate(updates=5)}
    code, report = audit(pipe)
    assert code == 0 and report["alerts"] == 40 - len(updated) and updated, report


def test_the_reconcile_timer_is_wired_like_the_other_timers():
    # Built from the app's builders: app.get_functions() may run once per process (tests/test_functions.py does).
    app = function_app.app
    [function] = [f for f in (b.build(app.auth_level) for b in app._function_builders)  # noqa: SLF001
                  if f.get_function_name() == "reconcile_alerts"]
    binding = json.loads(function.get_function_json())["bindings"][0]
    assert (binding["type"], binding["schedule"], binding["runOnStartup"], binding["useMonitor"]) == (
        "timerTrigger", "%RECONCILE_SCHEDULE%", False, True)


@pytest.mark.parametrize("kind", ["local", "azurite"])
def test_reconcile_alerts_repairs_alerts_later_than_the_overlap_and_reports_them(make_pipeline, monkeypatch, kind):
    pipe = make_pipeline(kind, alerts=150, days=1, RECONCILE_LOOKBACK_HOURS="48")
    for name, value in pipe.env.items():
        monkeypatch.setenv(name, value)
    lake, state = open_store(pipe.env["LAKE_URL"]), open_store(pipe.env["STATE_URL"])
    sinks = []
    monkeypatch.setattr(function_app, "open_sink",
                        lambda settings, **_: sinks.append(InProcessSink(lake, state)) or sinks[-1])
    assert run(pipe, "pull", "--once").exit_code == 0
    first_mark = _watermark(state, pipe)

    # Versions Graph shows now, stamped up to an hour ago (before the watermark minus the overlap), and on time.
    before = len(pipe.tenant.versions())
    pipe.tenant.mutate(new_alerts=6, updates=6, max_lateness_seconds=3600)
    pipe.tenant.mutate(new_alerts=3)
    made = pipe.tenant.versions()[before:]
    pipe.settle()
    assert run(pipe, "pull", "--once").exit_code == 0
    overlap = float(pipe.env["PULL_OVERLAP_SECONDS"])
    late = {row_id(pipe.tenant.tenant_id, v.alert_id, v.last_update, v.service_source) for v in made
            if _seconds(first_mark, v.last_update) > overlap}
    assert 0 < len(late) < len(made)
    landed = {r for rows in lake_files(pipe).values() for _, r in rows}
    assert not late & landed, "the pull read versions older than its overlap: nothing here would be late"

    # In Azure the repair goes to Event Hubs; here the in-process normalizer stands on that seam.
    monkeypatch.setenv("EventHubConnection__fullyQualifiedNamespace", "graphlake-test.servicebus.windows.net")
    function_app.reconcile_alerts(TimerRequest(past_due=False))

    doc = health.load(state, "reconcile", pipe.tenant.tenant_id)
    assert (doc["result"], doc["error"]) == ("ok", None)
    assert doc["late_found"] == doc["missing"] == doc["repaired"] == len(late)
    landed = {r for rows in lake_files(pipe).values() for _, r in rows}
    assert late <= landed
    assert set(latest_row_ids(pipe).values()) <= landed
    # The next run finds nothing.
    function_app.reconcile_alerts(TimerRequest(past_due=False))
    doc = health.load(state, "reconcile", pipe.tenant.tenant_id)
    assert (doc["missing"], doc["late_found"], doc["alerts"]) == (0, 0, 150 + 6 + 3)


def _watermark(state, pipe):
    from shared.pull.watermark import WatermarkStore

    return WatermarkStore(state, pipe.tenant.tenant_id).load().position


def _seconds(mark, stamp: str) -> float:
    from shared.core.timestamps import parse_graph_time

    return (mark - parse_graph_time(stamp)).total_seconds()


def test_audit_confirms_a_window_of_more_than_a_page_while_alerts_change_between_its_page_requests(make_pipeline):
    pipe = make_pipeline(alerts=2600, days=2, PULL_PAGE_SIZE="2000")
    assert run(pipe, "pull", "--once").exit_code == 0
    pipe.sim.set_faults(page_updates=3)
    code, report = audit(pipe)
    assert (code, report["confirmed"], report["missing"], report["alerts"]) == (0, True, 0, 2600), report
    # The window was cut into parts that each fit one response, so no second page was ever asked for: the
    # simulator updates alerts before each one, and would have torn the read.
    assert report["graph"]["splits"] > 0 and pipe.sim.counters.page_updates == 0


def test_an_audit_that_could_not_read_every_alert_never_prints_complete(capsys) -> None:
    from shared.cli.render import print_audit
    from shared.ops.audit import AuditReport

    report = AuditReport("tenant", confirmed=False)
    print_audit(report, limit=5)
    out = capsys.readouterr().out
    assert "not every alert of the window could be read" in out and "complete:" not in out
    print_audit(AuditReport("tenant"), limit=5)
    assert "complete:" in capsys.readouterr().out
