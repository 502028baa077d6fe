"""Health records (shared/core/health.py): the `graphlake.health` log line the alert rules read."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest

from shared.core import health
from shared.core.storage import open_store


def test_the_log_line_is_written_when_the_state_write_fails(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # A state store that cannot take the record (here a file where the health folder should be) is what a storage
    # outage looks like to the writer: the alert rules must still see the run's record, and that it was not stored.
    (tmp_path / "health").write_text("not a folder")
    state = open_store(str(tmp_path))
    with caplog.at_level(logging.INFO, logger="graphlake.health"), pytest.raises(OSError):
        health.record(state, "pull", "tenant", {"result": "ok", "sent": 3})
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("graphlake.health ")]
    logged = orjson.loads(line.removeprefix("graphlake.health "))
    assert logged["result"] == "ok" and logged["sent"] == 3
    assert logged["state_write"].startswith("failed: ")


def test_the_log_line_says_the_record_was_stored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = open_store(str(tmp_path))
    with caplog.at_level(logging.INFO, logger="graphlake.health"):
        health.record(state, "pull", "tenant", {"result": "ok"})
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("graphlake.health ")]
    assert orjson.loads(line.removeprefix("graphlake.health "))["state_write"] == "ok"
    assert health.load(state, "pull", "tenant")["result"] == "ok"


def test_a_writer_replaces_a_truncated_record_instead_of_failing(tmp_path: Path) -> None:
    state = open_store(str(tmp_path))
    state.write("health/pull/tenant.json", b'{"result": "fail')
    assert health.previous(state, "pull", "tenant") == {}
    health.record(state, "pull", "tenant", {"result": "ok"})
    assert health.load(state, "pull", "tenant")["result"] == "ok"
