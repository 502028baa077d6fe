"""`graphlake demo` never deletes what it did not make: it works in its own folders, and refuses someone else's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from shared.cli import main
from shared.land.lake_writer import read_table
from shared.core.storage import LocalStore
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
