"""A scheduled rule's SQL goes through the query sandbox's check: it reads the lake and writes nothing, however the
writing statement is wrapped."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from detections.loader import SCHEDULED_RULE, load_rules
from detections.scheduled import run_query
from shared.core.errors import ConfigError
from shared.core.storage import open_store
from shared.land.normalize import InboundEvent, normalize_events
from shared.read.query import connect

GOLDEN = Path(__file__).resolve().parents[2] / "normalizers" / "golden"


@pytest.mark.parametrize("sql", [
    "COPY (SELECT 1 AS a) TO '{lake}/security_alerts/x.csv'",
    "EXPLAIN ANALYZE COPY (SELECT 1 AS a) TO '{lake}/security_alerts/x.csv'",
])
def test_a_scheduled_rule_that_writes_is_refused(tmp_path: Path, sql: str) -> None:
    lake = tmp_path / "lake"
    alerts = orjson.loads((GOLDEN / "identity.input.json").read_bytes())
    normalize_events([InboundEvent(orjson.dumps(a)) for a in alerts], lake=open_store(str(lake)),
                     state=open_store(str(tmp_path / "state")))
    before = sorted(p.relative_to(lake) for p in lake.rglob("*"))
    rule = dataclasses.replace(load_rules().enabled(SCHEDULED_RULE)[0], sql=sql.format(lake=lake))
    since = datetime(2020, 1, 1, tzinfo=UTC)
    with pytest.raises(ConfigError, match="query refused"):
        run_query(rule, connect(str(lake)), since, datetime.now(UTC))
    assert sorted(p.relative_to(lake) for p in lake.rglob("*")) == before
