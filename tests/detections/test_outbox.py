"""The outbox holds a landed batch's alerts in one blob, and that changes none of delivery's promises: a drain
SIGKILLed halfway through a batch leaves the next drain to send the rest exactly once; an alert a destination
refuses for what it holds waits alone, with the answer, while the others of its batch go out; a destination that
took an alert another has not is never sent it again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from azure.functions.timer import TimerRequest
from click.testing import CliRunner

import function_app
from detections import delivery
from detections.delivery import CLAIM, OUTBOX, count_waiting, deliver_pending
from detections.destinations import parse_destinations
from shared.cli import main
from shared.core import health
from shared.core.storage import open_store
from tests.detections.test_alerts import (Receiver, destinations, land, receiver,  # noqa: F401
                                          serving, use_detections)
from tests.detections.test_landing_bound import waiting_alerts

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def second() -> Iterator[Receiver]:
    """Another receiver, beside the `receiver` fixture's."""
    with serving() as state:
        yield state


@pytest.mark.kill
def test_a_drain_killed_halfway_through_a_batch_leaves_the_rest_to_be_sent_exactly_once(tmp_path, monkeypatch,
                                                                                     receiver, second):
    lake, state = str(tmp_path / "lake"), str(tmp_path / "state")
    use_detections(monkeypatch, lake, state, destinations(receiver.url))
    receiver.failing = True
    land(waiting_alerts(8, "waiting"), lake, state)
    assert count_waiting(open_store(state)) == 8 and len(list(open_store(state).list(OUTBOX))) == 1

    # `graphlake normalize` drains the outbox at its end; it dies waiting for the answer to its fourth POST.
    hook = destinations(second.url)
    quiet = {**waiting_alerts(1, "quiet")[0], "severity": "informational"}  # matches no rule: nothing of its own
    (tmp_path / "quiet.json").write_bytes(orjson.dumps(quiet))
    second.kill_at = 4
    proc = subprocess.Popen([sys.executable, "-m", "shared.cli", "normalize", str(tmp_path / "quiet.json"),
                             "--lake", lake, "--state", state], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO), "ALERT_DESTINATIONS": hook},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    second.victim = proc.pid
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert len(second.received) == 3 and count_waiting(open_store(state)) == 8  # the blob is as the claim left it

    # The next drain, once the dead run's claim has expired: the five left, each once; the three taken, never again.
    later = datetime.now(UTC) + CLAIM + timedelta(minutes=1)
    report = deliver_pending(open_store(state), parse_destinations(hook, {}.get), later)
    assert (report.delivered, report.undelivered) == (5, 0)
    taken = [a["delivery_id"] for a in second.received]
    assert len(taken) == len(set(taken)) == 8
    # The one cut mid-request goes again, under the same delivery id, for the receiver to drop if it kept it.
    assert second.posts.count(second.posts[3]) == 2 and len(second.posts) == 9
    assert count_waiting(open_store(state)) == 0 and list(open_store(state).list(OUTBOX)) == []


def test_an_alert_a_destination_refuses_waits_alone_while_the_rest_of_its_batch_goes_out(tmp_path, monkeypatch,
                                                                                       receiver):
    lake, state = str(tmp_path / "lake"), str(tmp_path / "state")
    use_detections(monkeypatch, lake, state, destinations(receiver.url))
    receiver.poisoned = 1  # the first alert the batch sends is answered 400
    land(waiting_alerts(6, "batch"), lake, state)

    [poison] = receiver.rejected
    assert len(receiver.received) == 5 and poison["alert_id"] not in {a["alert_id"] for a in receiver.received}
    assert count_waiting(open_store(state)) == 1
    record = health.load(open_store(state), "detections", "delivery")
    assert record["undelivered"] == 1 and f"refused alert {poison['alert_id']} with HTTP 400" in record["error"]
    status = CliRunner().invoke(main, ["status", "--state", state], catch_exceptions=False)
    assert status.exit_code == 1 and "FAILING  detections/delivery: 1 alerts not delivered (soc refused alert" \
        in status.output, status.output

    # The destination itself works: no breaker, so the next batch sends at once; the refused alert is not in it.
    land(waiting_alerts(2, "next"), lake, state)
    assert len(receiver.received) == 7 and count_waiting(open_store(state)) == 1
    # Once the receiver takes it (the receiver fixed), the timer sends it, once, and status is OK again.
    function_app.run_scheduled_rules(TimerRequest())
    assert [a["alert_id"] for a in receiver.received].count(poison["alert_id"]) == 1 and len(receiver.received) == 8
    assert count_waiting(open_store(state)) == 0
    status = CliRunner().invoke(main, ["status", "--state", state], catch_exceptions=False)
    assert "OK       detections/delivery" in status.output, status.output


def test_a_destination_that_took_an_alert_is_not_sent_it_again_while_another_catches_up(tmp_path, monkeypatch,
                                                                                      receiver, second):
    lake, state = str(tmp_path / "lake"), str(tmp_path / "state")
    both = json.dumps([{"type": "webhook", "name": name, "url": url, "backoff_seconds": 0, "attempts": 1}
                       for name, url in (("soc", second.url), ("soar", receiver.url))])
    use_detections(monkeypatch, lake, state, both)
    receiver.failing = True  # soar is down; soc takes every alert
    land(waiting_alerts(4, "both"), lake, state)
    assert len(second.received) == 4 and count_waiting(open_store(state)) == 4

    receiver.failing = False
    later = datetime.now(UTC) + timedelta(minutes=6)  # past soar's breaker
    report = deliver_pending(open_store(state), parse_destinations(both, {}.get), later)
    assert (report.delivered, report.undelivered) == (4, 0)
    assert len(receiver.received) == 4 and len(second.posts) == 4  # soc got nothing twice


def test_a_long_drain_keeps_its_claim_so_a_second_one_sends_nothing_twice(tmp_path, monkeypatch, receiver, second):
    lake, state = str(tmp_path / "lake"), str(tmp_path / "state")
    use_detections(monkeypatch, lake, state, destinations(receiver.url))
    receiver.failing = True
    land(waiting_alerts(12, "slow"), lake, state)
    assert count_waiting(open_store(state)) == 12

    # A destination taking half a second an alert, and claims of 4 s: the drain outlives its first claim.
    monkeypatch.setattr(delivery, "CLAIM", timedelta(seconds=4))
    second.delay = 0.5
    hook = parse_destinations(destinations(second.url), {}.get)
    reports = []
    first = threading.Thread(target=lambda: reports.append(
        deliver_pending(open_store(state), hook, datetime.now(UTC))))
    first.start()
    while len(second.received) < 9 and first.is_alive():  # 4.5 s into the first drain
        time.sleep(0.01)
    again = deliver_pending(open_store(state), hook, datetime.now(UTC))
    first.join(timeout=60)
    # Held by the first: left alone, counted as waiting (as the blob stood at the first's last renewal).
    assert again.delivered == 0 and 3 <= again.undelivered <= 12
    assert (reports[0].delivered, reports[0].undelivered) == (12, 0)
    assert len(second.posts) == len(set(second.posts)) == 12 and count_waiting(open_store(state)) == 0


def test_alerts_the_per_alert_outbox_left_are_sent_after_an_upgrade(tmp_path, monkeypatch, receiver):
    # A deployment upgraded with alerts waiting in the earlier layout: one blob per alert, the alert at the top.
    lake, state = str(tmp_path / "lake"), str(tmp_path / "state")
    use_detections(monkeypatch, lake, state, destinations(receiver.url))
    for alert_id in ("old-1", "old-2"):
        alert = {"alert_id": alert_id, "rule_id": "Microsoft.Graph.Passthrough", "title": "t", "severity": "High"}
        open_store(state).write(f"{OUTBOX}{alert_id}.json", orjson.dumps(
            {"alert": alert, "delivered": [], "attempts": 2, "last_error": "soc answered HTTP 503",
             "claimed_until": None}))
    assert count_waiting(open_store(state)) == 2
    function_app.run_scheduled_rules(TimerRequest())
    assert sorted(a["alert_id"] for a in receiver.received) == ["old-1", "old-2"]
    assert count_waiting(open_store(state)) == 0
