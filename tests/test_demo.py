"""`graphlake demo` never deletes what it did not make: it works in its own folders, and refuses someone else's. It
ends with a cross-source search that finds a pass-the-hash alert's IP in the logs the tenant streamed."""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from normalizers.logs import route
from shared.cli import main
from shared.land.lake_writer import read_table
from shared.core.storage import LocalStore
from shared.read.query import connect
from simulator.monitor_logs import SIGN_IN_CATEGORIES, MonitorLogs, pass_the_hash, pivots
from simulator.tenant import Tenant
from tests.detections.test_alerts import receiver  # noqa: F401 - the fixture


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """The demo runs in tmp_path, and the settings it puts in the environment go away afterwards."""
    monkeypatch.chdir(tmp_path)
    saved = dict(os.environ)
    yield tmp_path
    os.environ.clear()
    os.environ.update(saved)


def users_lake(root: Path) -> Path:
    """Alerts a user normalized into the lake that normalize, query and search use by default."""
    part = root / "security_alerts" / "year=2026" / "month=11" / "day=27"
    part.mkdir(parents=True)
    (part / "part-0123456789abcdef0123.parquet").write_bytes(b"PAR1 the user's alerts PAR1")
    return part / "part-0123456789abcdef0123.parquet"


def demo(*args: str):
    return CliRunner().invoke(main, ["demo", "--alerts", "60", *args], catch_exceptions=False)


def test_the_demo_leaves_the_default_lake_alone_and_repeats_in_its_own(in_tmp):
    kept = users_lake(in_tmp / "lake")
    first = demo()
    assert first.exit_code == 0, first.output
    assert kept.read_bytes() == b"PAR1 the user's alerts PAR1"
    assert sorted(p.name for p in (in_tmp / "lake").rglob("*") if p.is_file()) == [kept.name]
    demo_lake = in_tmp / ".demo" / "lake"
    rows = read_table(LocalStore(demo_lake), "security_alerts").num_rows
    assert rows >= 60 and "--lake .demo/lake" in first.output
    # Run again: it starts from nothing in its own folder, so the figures repeat.
    again = demo()
    assert again.exit_code == 0, again.output
    assert read_table(LocalStore(demo_lake), "security_alerts").num_rows == rows


@pytest.mark.parametrize("option", ["--lake", "--state"])
def test_the_demo_refuses_a_folder_with_files_it_did_not_make(in_tmp, option):
    kept = users_lake(in_tmp / "mine")
    refused = CliRunner().invoke(main, ["demo", "--alerts", "60", option, "mine"])
    assert refused.exit_code == 2
    assert refused.output.count("\n") == 1 and "mine" in refused.output and "did not make" in refused.output
    assert kept.read_bytes() == b"PAR1 the user's alerts PAR1"


def test_the_demo_runs_the_starter_pack_and_sends_to_no_destination_of_the_shell(in_tmp, receiver,
                                                                                  monkeypatch):  # noqa: F811
    # A shell set up for production: rules on and a webhook. The demo's simulated alerts must not reach it.
    monkeypatch.setenv("RULES_ENABLED", "true")
    monkeypatch.setenv("ALERT_DESTINATIONS", f'[{{"type": "webhook", "url": "{receiver.url}"}}]')
    result = demo("--alerts", "200")
    assert result.exit_code == 0, result.output
    assert receiver.received == []
    matches = read_table(LocalStore(in_tmp / ".demo" / "lake"), "rule_matches")
    assert matches.num_rows > 0  # the starter pack ran: its matches are in the demo's own lake
    assert "sends no alert anywhere" in result.output


@pytest.mark.parametrize("target", ["missing", "a folder"])
def test_a_symbolic_link_as_the_demo_lake_is_one_line(in_tmp, target):
    if target == "a folder":
        (in_tmp / "real").mkdir()
    (in_tmp / "link").symlink_to(in_tmp / ("real" if target == "a folder" else "nowhere"))
    result = CliRunner().invoke(main, ["demo", "--alerts", "10", "--lake", "link"])
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and "is a symbolic link" in result.output


def search_sections(output: str) -> dict[str, str]:
    """The demo's closing search, its text per table ("<table>: N hits" opens each)."""
    search = output.split("$ graphlake search", 1)[1]
    parts = re.split(r"^(\w+): \d+ hits?$", search, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_the_demo_streams_the_tenants_logs_and_its_search_finds_the_alerts_ip_in_the_sign_ins(in_tmp):
    result = demo()
    assert result.exit_code == 0, result.output
    # What the simulated tenant streams, and the alert its investigation starts from, asked of the simulator.
    tenant = Tenant(seed=7, alerts=60, days=7.0)
    found = pivots(tenant)
    records = MonitorLogs(tenant).records(found)
    pivot = pass_the_hash(found)
    assert pivot is not None, "the demo's tenant has no pass-the-hash alert: the search would be tested on nothing"
    lake = LocalStore(in_tmp / ".demo" / "lake")
    streamed = Counter(route(record["category"]).TABLE for record in records)
    assert {table: read_table(lake, table).num_rows for table in streamed} == dict(streamed)
    assert f"graphlake search --lake .demo/lake --ip {pivot.ip}" in result.output
    # The alert and every sign-in from its address, each in its table's part of one search.
    sections = search_sections(result.output)
    assert pivot.alert_id in sections["security_alerts"]
    sign_ins = [r for r in records if r["category"] in SIGN_IN_CATEGORIES and r["properties"]["ipAddress"] == pivot.ip]
    assert any(r["properties"]["userPrincipalName"] == pivot.upn for r in sign_ins)
    # The records' own ids are drawn in the order Graph lists the alerts, which this test's tenant (its clock a
    # little later) may break a tie of differently: the lake's rows from the address are the ones to find.
    landed = connect(str(in_tmp / ".demo" / "lake")).execute(
        "SELECT correlationId, json_extract_string(properties, '$.userPrincipalName') FROM entra_signin_logs "
        "WHERE list_has(p_any_ip_addresses, ?)", [pivot.ip]).fetchall()
    assert len(landed) == len(sign_ins) and pivot.upn in {upn for _, upn in landed}
    assert all(correlation in sections["entra_signin_logs"] for correlation, _ in landed)
    # Nothing compacted yet, so no day of any table is indexed: one index line for all of them, not one a table.
    [index_line] = [line for line in result.output.splitlines() if line.startswith("index: ")]
    searched = re.search(r"hits in \d+ of (\d+) tables searched", result.output).group(1)
    assert re.match(rf"index: {searched} tables 0 of \d+ days narrowed by the indicator index", index_line)
    # The summary counts the log tables.
    for table, rows in streamed.items():
        assert re.search(rf"^{table} +{rows} ", result.output, flags=re.M), table
    # The logs' deliveries kept normalize_logs's health records in the demo's state, and status reads them as OK.
    status = CliRunner().invoke(main, ["status", "--state", ".demo/state"])
    assert status.exit_code == 0, status.output
    assert re.search(r"^OK +normalize_logs/local: last batch: \d+ rows, 0 quarantined", status.output, flags=re.M)
