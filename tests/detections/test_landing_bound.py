"""Landing never waits on a destination beyond ALERT_DELIVERY_BUDGET_SECONDS: a batch tries only the alerts it
queued, a destination that failed is left to the run_scheduled_rules timer for a while, and a batch writes one
outbox blob, whatever its size and however many alerts wait."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from azure.functions.timer import TimerRequest
from click.testing import CliRunner

import function_app
from detections.delivery import OUTBOX, count_waiting
from shared.cli import main
from shared.core import health
from shared.core.storage import LocalStore, open_store
from shared.land.normalize import InboundEvent, normalize_events
from detections.realtime import build_detector
from shared.core.settings import load_settings
from tests.detections.test_alerts import (destinations, expected_passthrough, golden, land,  # noqa: F401
                                          receiver, use_detections)

import orjson


@dataclass
class Hanging:
    """A real TCP server on 127.0.0.1 that accepts every connection and never answers."""

    url: str
    accepted: list[socket.socket] = field(default_factory=list)


@pytest.fixture
def hanging() -> Iterator[Hanging]:
    listener = socket.create_server(("127.0.0.1", 0))
    state = Hanging(url=f"http://127.0.0.1:{listener.getsockname()[1]}/hook")

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed at teardown
            state.accepted.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield state
    listener.close()
    for conn in state.accepted:
        conn.close()
    thread.join(timeout=5)


def waiting_alerts(count: int, prefix: str) -> list[dict]:
    template = next(a for a in golden("identity") if a["id"] in expected_passthrough(golden("identity")))
    return [{**template, "id": f"{prefix}-{i}"} for i in range(count)]


def test_a_hanging_destination_holds_a_batch_no_longer_than_the_budget_then_is_left_to_the_timer(
        tmp_path, monkeypatch, hanging):
    lake, state = str(tmp_path / "lake"), str(tmp_path / "state")
    hook = json.dumps([{"type": "webhook", "name": "soc", "url": hanging.url, "attempts": 3, "backoff_seconds": 0}])
    use_detections(monkeypatch, lake, state, hook)
    monkeypatch.setenv("ALERT_DELIVERY_BUDGET_SECONDS", "0.5")
    land(waiting_alerts(3, "first"), lake, state)

    # One connection, cut at the budget: no retries past it, no other alert of the batch tried.
    assert len(hanging.accepted) == 1
    assert count_waiting(open_store(state)) == 3
    # The next batches do not try it at all; their alerts wait for the timer, and status says so.
    land(waiting_alerts(2, "second"), lake, state)
    assert len(hanging.accepted) == 1
    assert count_waiting(open_store(state)) == 5
    status = CliRunner().invoke(main, ["status", "--state", state], catch_exceptions=False)
    assert "FAILING  detections/delivery: 5 alerts not delivered (soc " in status.output, status.output


class CountingStore(LocalStore):
    """A local store that counts the writes and deletes of outbox blobs."""

    outbox_writes = 0

    def write(self, name, data, **conditions):
        if name.startswith(OUTBOX):
            self.outbox_writes += 1
        return super().write(name, data, **conditions)

    def delete(self, name):
        if name.startswith(OUTBOX):
            self.outbox_writes += 1
        super().delete(name)


@pytest.mark.parametrize("waiting", [4, 40])
def test_a_batch_writes_one_outbox_blob_however_many_alerts_it_queues_or_wait(tmp_path, monkeypatch, receiver, waiting):
    lake, state = str(tmp_path / "lake"), str(tmp_path / "state")
    use_detections(monkeypatch, lake, state, destinations(receiver.url))
    receiver.failing = True
    land(waiting_alerts(waiting, "waiting"), lake, state)
    assert count_waiting(open_store(state)) == waiting

    counting = CountingStore(state)
    normalize_events([InboundEvent(orjson.dumps(a)) for a in waiting_alerts(5, "new")], lake=open_store(lake),
                     state=counting, detector=build_detector(load_settings()))
    # Its five alerts queued in one blob; the destination failed just now: left to the timer.
    assert counting.outbox_writes == 1
    assert health.load(open_store(state), "detections", "delivery")["undelivered"] == waiting + 5

    # The timer drains every alert waiting, and a destination that took them is tried by landing again at once.
    receiver.failing = False
    function_app.run_scheduled_rules(TimerRequest())
    assert len(receiver.received) == waiting + 5 and count_waiting(open_store(state)) == 0
    counting = CountingStore(state)
    normalize_events([InboundEvent(orjson.dumps(a)) for a in waiting_alerts(3, "later")], lake=open_store(lake),
                     state=counting, detector=build_detector(load_settings()))
    assert len(receiver.received) == waiting + 8 and count_waiting(open_store(state)) == 0
    assert counting.outbox_writes == 3  # queued, claimed, removed once delivered: per batch, not per alert


def test_a_command_that_lands_with_rules_sends_what_waits_at_its_end(tmp_path, monkeypatch, receiver):
    # No timer runs behind `graphlake normalize` or `pull` on a workstation: the command drains the outbox itself.
    lake, state = str(tmp_path / "lake"), str(tmp_path / "state")
    use_detections(monkeypatch, lake, state, destinations(receiver.url))
    receiver.failing = True
    land(waiting_alerts(3, "waiting"), lake, state)
    receiver.failing = False
    quiet = {**waiting_alerts(1, "quiet")[0], "severity": "informational"}  # matches no rule
    (tmp_path / "quiet.json").write_bytes(orjson.dumps(quiet))
    result = CliRunner().invoke(main, ["normalize", str(tmp_path / "quiet.json"), "--lake", lake, "--state", state],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert sorted(a["events"][0]["id"] for a in receiver.received) == [f"waiting-{i}" for i in range(3)]
    assert count_waiting(open_store(state)) == 0
