"""The reconciliation tells re-sent from landed: a normalizer that consumes nothing (the Event Hub trigger stopped, a
wrong consumer group) is FAILING in `graphlake status`, never "lake complete"."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from shared.core import health
from shared.core.storage import open_store
from shared.land.normalize import InboundEvent
from shared.land.retries import Batch, normalize_delivery
from shared.ops.reconcile import reconcile_all
from shared.ops.status import FAILING, LAGGING, OK, check
from shared.pull.run import pull_all
from tests.doubles import RecordingSink


def _by_component(findings) -> dict[str, tuple[str, str]]:
    return {f.component: (f.state, f.reason) for f in findings}


def test_versions_re_sent_twice_without_landing_are_failing_and_land_once_the_normalizer_consumes(make_pipeline):
    pipe = make_pipeline(alerts=12, RECONCILE_LOOKBACK_HOURS="48", EVENTHUB_NAME="graph-alerts",
                         EVENTHUB_CONSUMER_GROUP="normalizer-typo")
    settings = pipe.settings()
    state, lake = open_store(settings.state_url), open_store(settings.lake_url)
    source = pipe.tenant.tenant_id
    # Event Hubs accepts every batch; nothing consumes them.
    hub = RecordingSink()
    [summary] = asyncio.run(pull_all(settings, state, hub))
    assert (summary.error, summary.sent) == (None, 12)

    first = datetime.now(UTC)
    asyncio.run(reconcile_all(settings, state, lake, hub, now=first))
    doc = health.load(state, "reconcile", source)
    assert {k: doc[k] for k in ("result", "missing", "resent", "landed", "repaired", "pending", "not_landed")} == {
        "result": "ok", "missing": 12, "resent": 12, "landed": 0, "repaired": 0, "pending": 12, "not_landed": 0}
    findings = _by_component(check(state, first, 3600, [source], event_hub=True))
    assert findings["reconcile"][0] == LAGGING, findings
    assert "12 versions re-sent" in findings["reconcile"][1]

    second = first + timedelta(hours=1)
    asyncio.run(reconcile_all(settings, state, lake, hub, now=second))
    doc = health.load(state, "reconcile", source)
    assert (doc["missing"], doc["resent"], doc["landed"], doc["not_landed"], doc["not_landed_since"]) == (
        12, 12, 0, 12, first.isoformat())
    findings = _by_component(check(state, second, 7200, [source], event_hub=True))
    assert findings["reconcile"] == (
        FAILING, f"12 versions sent but not landed since {first.isoformat()}, hub graph-alerts consumer group "
                 "normalizer-typo: the normalizer is not consuming them (its Event Hub trigger stopped, or the "
                 "consumer group is wrong)"), findings
    assert findings["normalize"][0] == LAGGING, findings
    assert "the normalizer has not landed" in findings["normalize"][1]

    # The normalizer consumes the hub at last: everything sent lands, and the next run says so.
    events = [InboundEvent(b"".join(e.body), dict(e.properties or {})) for e in hub.events]
    result = normalize_delivery(events, Batch("0", 1), lake=lake, state=state, max_attempts=5)
    assert result.quarantined == []
    third = second + timedelta(hours=1)
    asyncio.run(reconcile_all(settings, state, lake, hub, now=third))
    doc = health.load(state, "reconcile", source)
    assert (doc["missing"], doc["resent"], doc["landed"], doc["pending"], doc["not_landed"]) == (0, 0, 12, 0, 0)
    findings = _by_component(check(state, third, 7200, [source], event_hub=True))
    assert findings["reconcile"] == (OK, "lake complete against Graph (12 re-sent versions landed)"), findings
    assert findings["normalize"][0] == OK, findings
