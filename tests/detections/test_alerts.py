"""Alerts with Panther's semantics and their delivery: one alert per rule + dedup per period, sent once Threshold
matches accumulated; counts never lost with two normalizer instances at once; a real local HTTP server receives
exactly the expected alerts; a destination that fails keeps its alerts queued until a later run delivers them."""

from __future__ import annotations

import hashlib
import hmac
import os
import signal
import time
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest
from azure.functions.timer import TimerRequest
from click.testing import CliRunner

import function_app
from detections.alerts import record_matches
from detections.delivery import count_waiting
from detections.destinations import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, parse_destinations
from detections.engine import Match, match_id
from detections.loader import load_rules
from detections.matches import TABLE as MATCHES
from detections.realtime import Detector, build_detector, detect_rows
from shared.core import health
from shared.cli import main
from shared.core.errors import ConfigError
from shared.core.settings import load_settings
from shared.land.lake_writer import read_table
from shared.land.normalize import InboundEvent, normalize_events
from shared.core.storage import open_store

GOLDEN = Path(__file__).resolve().parents[2] / "normalizers" / "golden"
T0 = datetime(2026, 6, 2, 10, 0, tzinfo=UTC)
SECRET = "hmac-test-key"


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 recording every POST; answers 503 while `failing`, and 400 (a body it will
    not take) to the next `poisoned` POSTs. Waits `delay` seconds before each answer (a slow destination); its
    `kill_at`-th POST SIGKILLs the process `victim` and is never answered (the sender dies waiting)."""

    url: str
    received: list[dict] = field(default_factory=list)  # accepted bodies
    refused: int = 0
    failing: bool = False
    poisoned: int = 0
    rejected: list[dict] = field(default_factory=list)  # bodies answered 400
    headers: list[dict] = field(default_factory=list)
    posts: list[str] = field(default_factory=list)  # the delivery id of every POST, answered or not
    delay: float = 0.0
    kill_at: int = 0
    victim: int | None = None


@contextmanager
def serving() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.posts.append(self.headers.get(DELIVERY_HEADER, ""))
            if len(state.posts) == state.kill_at and state.victim is not None:
                os.kill(state.victim, signal.SIGKILL)
                return
            time.sleep(state.delay)
            if state.failing:
                state.refused += 1
                self.send_response(503)
            elif state.poisoned:
                state.poisoned -= 1
                state.rejected.append(orjson.loads(body))
                self.send_response(400)
            else:
                state.received.append(orjson.loads(body))
                state.headers.append({**dict(self.headers), "_body": body})
                self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serving() as state:
        yield state


def golden(*providers: str) -> list[dict]:
    return [a for p in providers for a in orjson.loads((GOLDEN / f"{p}.input.json").read_bytes())]


def destinations(url: str, kind: str = "webhook", **extra) -> str:
    return json.dumps([{"type": kind, "name": "soc", "url": url, "backoff_seconds": 0, "attempts": 2, **extra}])


def use_detections(monkeypatch, lake: str, state: str, hooks: str, rules_dir: str = "") -> None:
    for name, value in {"LAKE_URL": lake, "STATE_URL": state, "RULES_ENABLED": "true", "RULES_DIR": rules_dir,
                        "ALERT_DESTINATIONS": hooks, "HOOK_SECRET": SECRET}.items():
        monkeypatch.setenv(name, value)


def land(alerts: list[dict], lake: str, state: str, detector: Detector | None = None) -> None:
    """Land as the Event Hub function does, with the rules the settings in the environment ask for."""
    normalize_events([InboundEvent(orjson.dumps(a)) for a in alerts], lake=open_store(lake), state=open_store(state),
                     detector=detector or build_detector(load_settings()))


def passthrough(received: list[dict]) -> list[dict]:
    return [a for a in received if a["rule_id"] == "Microsoft.Graph.Passthrough"]


def expected_passthrough(alerts: list[dict]) -> set[str]:
    return {a["id"] for a in alerts if a["status"] == "new" and a["severity"] != "informational"}


def test_a_webhook_receives_exactly_the_expected_alerts_once(tmp_path, monkeypatch, receiver):
    lake, state = str(tmp_path / "lake"), str(tmp_path / "state")
    use_detections(monkeypatch, lake, state, destinations(receiver.url, secret_setting="HOOK_SECRET"))
    alerts = golden("identity", "endpoint", "cloud_apps", "office365")
    land(alerts, lake, state)

    assert sorted(a["events"][0]["id"] for a in passthrough(receiver.received)) == sorted(expected_passthrough(alerts))
    assert {(a["match_count"], a["threshold"]) for a in receiver.received} == {(1, 1)}
    honeytoken = [a for a in receiver.received if a["rule_id"] == "Graphlake.Honeytoken.Activity"]
    assert [a["title"] for a in honeytoken] == [
        "Honeytoken svc-backup-legacy@corp.contoso.com was used: Honeytoken user attributes were queried"]
    for sent in receiver.headers:
        # The signature covers the timestamp with the body, so a captured delivery cannot be replayed later.
        stamp = sent[TIMESTAMP_HEADER]
        expected = "sha256=" + hmac.new(SECRET.encode(), f"{stamp}.".encode() + sent["_body"],
                                        hashlib.sha256).hexdigest()
        assert sent[SIGNATURE_HEADER] == expected and abs(time.time() - int(stamp)) < 300
        assert sent[DELIVERY_HEADER] == orjson.loads(sent["_body"])["delivery_id"]
    assert len({sent[DELIVERY_HEADER] for sent in receiver.headers}) == len(receiver.headers)
    matches = read_table(open_store(lake), MATCHES).to_pylist()
    assert {a["alert_id"] for a in receiver.received} == {m["p_alert_id"] for m in matches}

    # Redelivered, then a later version of one alert within the period: counted into its alert, nothing re-sent.
    land(alerts, lake, state)
    update = dict(next(a for a in alerts if a["id"] in expected_passthrough(alerts)))
    update["lastUpdateDateTime"] = "2026-06-02T09:50:00Z"
    land([update], lake, state)
    assert len(passthrough(receiver.received)) == len(expected_passthrough(alerts)) == len(receiver.received) - 1
    assert count_waiting(open_store(state)) == 0


THRESHOLD_PY = """\
def rule(event):
    return event.get("serviceSource") == "microsoftDefenderForIdentity"


def dedup(event):
    return "one-bucket"
"""

THRESHOLD_YML = """\
AnalysisType: rule
Filename: burst.py
RuleID: Custom.Burst
DisplayName: Identity burst
LogTypes: [MicrosoftGraph.SecurityAlertV2]
Severity: High
Threshold: 3
DedupPeriodMinutes: 60
"""


def burst_rules(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "burst.py").write_text(THRESHOLD_PY)
    (folder / "burst.yml").write_text(THRESHOLD_YML)
    return folder


def identity_rows(count: int, start: int) -> list[dict]:
    return [{"id": f"alert-{i}", "p_row_id": f"row-{i}", "serviceSource": "microsoftDefenderForIdentity",
             "p_event_time": T0, "title": "x", "p_log_type": "MicrosoftGraph.SecurityAlertV2"}
            for i in range(start, start + count)]


def test_one_alert_per_dedup_and_period_sent_once_the_threshold_is_reached(tmp_path, receiver):
    rule_set = load_rules(burst_rules(tmp_path), with_pack=False)
    detector = Detector(rule_set, tuple(parse_destinations(destinations(receiver.url), {}.get)))
    lake, state = open_store(str(tmp_path / "lake")), open_store(str(tmp_path / "state"))

    def run(rows, minutes):
        return detect_rows(detector, rows, lake=lake, state=state, now=T0 + timedelta(minutes=minutes))

    run(identity_rows(2, 0), 0)
    assert receiver.received == []  # 2 of 3
    run(identity_rows(2, 2), 10)
    [first] = receiver.received
    assert (first["match_count"], first["threshold"], first["title"]) == (4, 3, "Identity burst")
    run(identity_rows(1, 4), 20)
    assert len(receiver.received) == 1  # counted into the same alert, not sent again
    run(identity_rows(3, 5), 70)  # the period ended at 60 minutes: a new alert
    assert [a["match_count"] for a in receiver.received] == [4, 3]
    by_alert: dict[str, int] = {}
    for m in read_table(lake, MATCHES).to_pylist():
        by_alert[m["p_alert_id"]] = by_alert.get(m["p_alert_id"], 0) + 1
    assert sorted(by_alert.values()) == [3, 5] and set(by_alert) == {a["alert_id"] for a in receiver.received}


class RacingStore:
    """A real store where another instance updates an alert doc between this instance's read and its write."""

    def __init__(self, inner, other) -> None:
        self.inner, self.other, self.url, self.raced = inner, other, inner.url, 0

    def read(self, name):
        return self.inner.read(name)

    def write(self, name, data, **conditions):
        if name.startswith("detections/alerts/") and self.other is not None:
            other, self.other = self.other, None
            other()  # the other instance's update lands first
            self.raced += 1
        return self.inner.write(name, data, **conditions)

    def list(self, prefix=""):
        return self.inner.list(prefix)

    def delete(self, name):
        self.inner.delete(name)


def burst_matches(rule, start: int, count: int) -> list[Match]:
    return [Match(rule, row, "Identity burst", "one-bucket", "High", {}, match_id(rule.rule_id, row))
            for row in identity_rows(count, start)]


@pytest.mark.parametrize("kind", ["local", "azurite"])
@pytest.mark.parametrize("first_doc", [False, True], ids=["race-to-create", "race-to-update"])
def test_two_instances_updating_one_alert_lose_no_count(tmp_path, make_store_url, kind, first_doc):
    rule = load_rules(burst_rules(tmp_path), with_pack=False).rules[0]
    store = open_store(make_store_url(kind))
    if first_doc:
        record_matches(store, burst_matches(rule, 0, 1), T0)
    queued: list = []
    racing = RacingStore(store, lambda: queued.extend(
        record_matches(store, burst_matches(rule, 10, 2), T0 + timedelta(minutes=1))))
    queued += record_matches(racing, burst_matches(rule, 20, 1), T0 + timedelta(minutes=1))
    assert racing.raced == 1
    [name] = list(store.list("detections/alerts/"))
    doc = orjson.loads(store.read(name).data)
    total = 4 if first_doc else 3
    assert doc["count"] == total and len(doc["match_ids"]) == total
    # Exactly one of the two instances queued the alert: the one whose write crossed the threshold of 3.
    assert doc["queued"] is not None and [q.alert["match_count"] for q in queued] == [3]


def test_two_instances_at_once_count_every_match_and_queue_one_alert(tmp_path, azurite):
    rule = load_rules(burst_rules(tmp_path), with_pack=False).rules[0]
    url = azurite.container_url()
    queued: list = []

    def instance(offset: int) -> None:
        store = open_store(url)  # each instance its own client, as two Function hosts
        for i in range(15):
            queued.extend(record_matches(store, burst_matches(rule, offset + i, 1), T0 + timedelta(seconds=i)))

    threads = [threading.Thread(target=instance, args=(offset,)) for offset in (0, 1000)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store = open_store(url)
    [name] = list(store.list("detections/alerts/"))
    doc = orjson.loads(store.read(name).data)
    assert doc["count"] == 30 and len(set(doc["match_ids"])) == 30
    assert len(queued) == 1


def test_a_failing_destination_keeps_its_alerts_until_a_later_run_delivers_them(tmp_path, monkeypatch, receiver):
    lake, state = str(tmp_path / "lake"), str(tmp_path / "state")
    use_detections(monkeypatch, lake, state, destinations(receiver.url))
    alerts = golden("identity")
    receiver.failing = True
    land(alerts, lake, state)
    expected = expected_passthrough(alerts) | {"aa7d8e9f00-1122-4334-8556-778899aabbcc"}  # and the honeytoken
    assert receiver.received == [] and receiver.refused == 2  # two attempts, then the rest of the run skips it
    assert count_waiting(open_store(state)) == len(expected)
    record = health.load(open_store(state), "detections", "delivery")
    assert record["undelivered"] == len(expected) and "HTTP 503" in record["error"]
    status = CliRunner().invoke(main, ["status", "--state", state], catch_exceptions=False)
    assert status.exit_code == 1
    assert f"FAILING  detections/delivery: {len(expected)} alerts not delivered (soc answered HTTP 503" in status.output

    receiver.failing = False
    function_app.run_scheduled_rules(TimerRequest())
    assert sorted(a["events"][0]["id"] for a in receiver.received) == sorted(expected)
    assert count_waiting(open_store(state)) == 0
    assert health.load(open_store(state), "detections", "delivery")["undelivered"] == 0
    function_app.run_scheduled_rules(TimerRequest())
    assert len(receiver.received) == len(expected), "delivered alerts are never sent again"


@pytest.mark.parametrize("kind", ["teams", "slack"])
def test_teams_and_slack_get_their_message_shapes(tmp_path, monkeypatch, receiver, kind):
    lake, state = str(tmp_path / "lake"), str(tmp_path / "state")
    use_detections(monkeypatch, lake, state, destinations(receiver.url, kind))
    land([golden("identity")[0]], lake, state)
    [message] = receiver.received
    if kind == "teams":
        [attachment] = message["attachments"]
        assert message["type"] == "message"
        assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
        card = attachment["content"]
        assert card["type"] == "AdaptiveCard" and "pass-the-hash" in card["body"][0]["text"]
        assert card["actions"][0]["url"].startswith("https://security.microsoft.com/alerts/")
    else:
        assert "pass-the-hash" in message["text"] and message["blocks"][0]["type"] == "header"


@pytest.mark.parametrize(("text", "expected"), [
    ("{not json", "ALERT_DESTINATIONS is not a JSON list of destinations"),
    ('[{"type": "pager", "url": "https://x.example"}]', "type: Input should be"),
    ('[{"type": "webhook", "url": "http://hooks.example/x"}]', "url must be https (plain http only for localhost)"),
    ('[{"type": "teams", "url_setting": "UNSET_SETTING"}]', "no url (give url, or url_setting"),
    ('[{"type": "webhook", "url": "https://x.example", "secret_setting": "UNSET_SECRET"}]',
     "setting UNSET_SECRET (its HMAC key) is empty"),
])
def test_bad_destinations_are_one_line(text, expected):
    with pytest.raises(ConfigError, match=None) as caught:
        parse_destinations(text, {}.get)
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_a_destination_url_from_a_setting(monkeypatch):
    [destination] = parse_destinations('[{"type": "slack", "url_setting": "SLACK_URL"}]',
                                       {"SLACK_URL": "https://hooks.slack.example/services/T/B/x"}.get)
    assert (destination.name, destination.url) == ("slack-1", "https://hooks.slack.example/services/T/B/x")


def test_unusable_destinations_never_stop_the_lake_and_their_alerts_wait(tmp_path, monkeypatch, receiver):
    lake, state = str(tmp_path / "lake"), str(tmp_path / "state")
    use_detections(monkeypatch, lake, state, json.dumps([{"type": "teams", "url_setting": "TEAMS_URL_UNSET"}]))
    alerts = golden("identity")
    land(alerts, lake, state)
    assert len(read_table(open_store(lake), "security_alerts")) == len(alerts)
    queued = count_waiting(open_store(state))
    assert queued == len(expected_passthrough(alerts)) + 1  # and the honeytoken
    status = CliRunner().invoke(main, ["status", "--state", state], catch_exceptions=False)
    assert f"FAILING  detections/delivery: {queued} alerts not delivered (ALERT_DESTINATIONS teams-1: no url" \
        in status.output

    monkeypatch.setenv("ALERT_DESTINATIONS", destinations(receiver.url))  # fixed
    function_app.run_scheduled_rules(TimerRequest())
    assert len(receiver.received) == queued and count_waiting(open_store(state)) == 0


def test_two_normalizer_instances_at_once_send_one_alert_with_every_match_counted(tmp_path, monkeypatch, azurite,
                                                                                  receiver):
    lake, state = azurite.container_url(), azurite.container_url()
    use_detections(monkeypatch, lake, state, destinations(receiver.url), str(burst_rules(tmp_path)))
    template = golden("identity")[0]
    batches = [[{**template, "id": f"burst-{instance}-{batch}-{i}"} for i in range(2)]
               for instance in range(2) for batch in range(5)]

    detector = build_detector(load_settings())

    def instance(mine: list[list[dict]]) -> None:
        for alerts in mine:  # each instance its own stores, as two Function hosts
            land(alerts, lake, state, detector)

    threads = [threading.Thread(target=instance, args=(batches[k::2],)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    burst = [a for a in receiver.received if a["rule_id"] == "Custom.Burst"]
    assert len(burst) == 1 and burst[0]["match_count"] >= 3
    [name] = [n for n in open_store(state).list("detections/alerts/Custom.Burst/")]
    doc = orjson.loads(open_store(state).read(name).data)
    assert doc["count"] == 20 and len(set(doc["match_ids"])) == 20
    matches = read_table(open_store(lake), MATCHES).to_pylist()
    assert {m["p_alert_id"] for m in matches if m["p_rule_id"] == "Custom.Burst"} == {burst[0]["alert_id"]}


def test_a_receiver_check_refuses_replays_and_tampering() -> None:
    from detections.destinations import Destination, verify_signature

    hook = Destination("soar", "webhook", "https://soar.example/hook", SECRET.encode())
    body, headers = hook.request({"alert_id": "a1", "title": "t"}, now=1_800_000_000)
    assert verify_signature(SECRET.encode(), headers, body, now=1_800_000_000 + 60)
    assert not verify_signature(SECRET.encode(), headers, body, now=1_800_000_000 + 301)  # replayed later
    assert not verify_signature(SECRET.encode(), headers, body.replace(b"t", b"x"), now=1_800_000_000)
    assert not verify_signature(b"other key", headers, body, now=1_800_000_000)
    assert orjson.loads(body)["delivery_id"] == headers[DELIVERY_HEADER] == "a1"
