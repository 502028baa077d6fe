"""A version a rule already matched never makes a second alert nor a second rule_matches row, however late it
comes back (a lost watermark, `graphlake replay`, normalize run again, the reconciliation re-sending): past the
rule's dedup period, on another day, in batches cut differently. Deliveries carry a stable idempotency key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from detections.delivery import count_waiting
from detections.destinations import DELIVERY_HEADER, Destination
from detections.matched import PREFIX as MATCHED_PREFIX
from detections.matches import TABLE as MATCHES
from detections.realtime import build_detector
from normalizers.names import TABLE
from shared.core.settings import load_settings
from shared.core.storage import LocalStore, open_store
from shared.land.lake_writer import read_table
from shared.land.normalize import InboundEvent, normalize_events
from tests.detections.test_alerts import (destinations, expected_passthrough, golden, land, passthrough,  # noqa: F401
                                          receiver, use_detections)


@pytest.mark.parametrize("kind", ["local", "azurite"])
def test_a_version_matched_before_makes_no_second_alert_past_the_dedup_period(make_store_url, monkeypatch,
                                                                              receiver, kind):  # noqa: F811
    lake, state = make_store_url(kind), make_store_url(kind)
    use_detections(monkeypatch, lake, state, destinations(receiver.url))
    alerts = golden("identity", "endpoint")
    land(alerts, lake, state)
    first = sorted(a["alert_id"] for a in receiver.received)
    assert len(passthrough(receiver.received)) == len(expected_passthrough(alerts))
    matched = read_table(open_store(lake), MATCHES).to_pylist()

    # The same versions land again, as a re-delivery would, days later (each rule's period long over) and in
    # batches cut otherwise than the first, so their rule_matches files would have other names.
    detector = build_detector(load_settings())
    table = read_table(open_store(lake), TABLE)
    half = table.num_rows // 2
    for days, part in ((2, table.slice(0, half)), (3, table.slice(half)), (9, table)):
        detector.detect([part], lake=open_store(lake), state=open_store(state),
                        now=datetime.now(UTC) + timedelta(days=days))

    assert sorted(a["alert_id"] for a in receiver.received) == first
    rows = read_table(open_store(lake), MATCHES).to_pylist()
    keys = [(m["p_rule_id"], m["p_matched_row_id"]) for m in rows]
    assert len(keys) == len(set(keys)) == len(matched)
    assert {(m["p_row_id"], m["p_alert_id"]) for m in rows} == {(m["p_row_id"], m["p_alert_id"]) for m in matched}

    # A new version of an alert is a new match: it lands, and counts into its alert (whose period is still open).
    update = dict(next(a for a in alerts if a["id"] in expected_passthrough(alerts)))
    update["lastUpdateDateTime"] = "2026-06-02T09:50:00Z"
    land([update], lake, state)
    rows = read_table(open_store(lake), MATCHES).to_pylist()
    assert len(rows) == len(matched) + 1 and sorted(a["alert_id"] for a in receiver.received) == first


def test_the_idempotency_key_is_the_alert_id_on_every_kind_and_every_try() -> None:
    alert = {"alert_id": "a1", "rule_id": "r", "title": "t", "severity": "High"}
    for kind in ("webhook", "teams", "slack"):
        hook = Destination("d", kind, "https://d.example/hook")
        sent = [hook.request(alert, now=now) for now in (1_800_000_000, 1_800_009_000)]
        assert {headers[DELIVERY_HEADER] for _, headers in sent} == {"a1"}, kind
        assert all(b'"a1"' in body or b"\\na1" in body for body, _ in sent), kind  # the payload names it too



class MarkersRefused(LocalStore):
    """A local store whose disk refuses the matched markers: a crash between queueing alerts and marking them."""

    def write(self, name, data, **conditions):
        if name.startswith(MATCHED_PREFIX):
            raise OSError(28, "No space left on device", name)
        return super().write(name, data, **conditions)


def test_a_batch_that_failed_before_its_matches_were_marked_alerts_once_when_it_comes_back_late(tmp_path, monkeypatch,
                                                                                               receiver):  # noqa: F811
    lake, state = str(tmp_path / "lake"), str(tmp_path / "state")
    use_detections(monkeypatch, lake, state, destinations(receiver.url))
    alerts = golden("identity")
    detector = build_detector(load_settings())
    with pytest.raises(OSError):
        normalize_events([InboundEvent(orjson.dumps(a)) for a in alerts], lake=open_store(lake),
                         state=MarkersRefused(state), detector=detector)
    assert receiver.received == [] and count_waiting(open_store(state)) > 0

    # Delivered again only after the alerts' dedup period: the matches counted before keep their alert, sent once.
    detector.detect([read_table(open_store(lake), TABLE)], lake=open_store(lake), state=open_store(state),
                    now=datetime.now(UTC) + timedelta(hours=3))
    sent = sorted(a["events"][0]["id"] for a in passthrough(receiver.received))
    assert sent == sorted(expected_passthrough(alerts))
    rows = read_table(open_store(lake), MATCHES).to_pylist()
    assert len({m["p_alert_id"] for m in rows}) == len(receiver.received)
