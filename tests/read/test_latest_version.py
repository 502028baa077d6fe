"""Which version of an alert is the latest: the one Graph showed last, even when a product moved its
lastUpdateDateTime backwards; versions from files, which no pull read, by lastUpdateDateTime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from shared.core.storage import open_store
from shared.land.normalize import InboundEvent, normalize_events
from shared.read.query import connect
from shared.read.search import search, terms_for

PULLED = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def alert(status: str, last_update: str) -> dict:
    return {"id": "back-1", "tenantId": "t", "serviceSource": "microsoftDefenderForEndpoint", "title": "Backwards",
            "status": status, "createdDateTime": "2026-12-07T08:00:00Z", "lastUpdateDateTime": last_update,
            "evidence": [{"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": "198.51.100.61"}]}


def event(doc: dict, pulled_at: datetime | None) -> InboundEvent:
    return InboundEvent(orjson.dumps(doc), properties={"pulled_at": pulled_at.isoformat()} if pulled_at else {})


def land(lake: Path, *events: InboundEvent) -> None:
    normalize_events(list(events), lake=open_store(str(lake)), state=open_store(str(lake.parent / "state")))


def latest(lake: Path) -> tuple[str, str]:
    [row] = connect(str(lake)).execute(
        "SELECT status, strftime(lastUpdateDateTime, '%H:%M') FROM security_alerts_latest").fetchall()
    return row


def test_the_version_graph_showed_last_is_latest_though_its_timestamp_went_back(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    land(lake, event(alert("inProgress", "2026-12-07T08:50:00Z"), PULLED))
    # The product's clock went back: Graph now shows a newer version with an earlier lastUpdateDateTime.
    land(lake, event(alert("resolved", "2026-12-07T08:40:00Z"), PULLED + timedelta(minutes=1)))
    assert latest(lake) == ("resolved", "08:40")
    found = search(connect(str(lake), with_views=False), terms_for({"ip": ["198.51.100.61"]}),
                   datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 8, tzinfo=UTC), limit=5)
    [hits] = [h for h in found.tables if h.table == "security_alerts"]
    assert hits.count == 1 and "resolved" in hits.rows[0]


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_versions_from_files_go_by_last_update_and_after_pulled_ones(tmp_path: Path, order) -> None:
    lake = tmp_path / "lake"
    versions = [event(alert("new", "2026-12-07T08:10:00Z"), None), event(alert("inProgress", "2026-12-07T08:20:00Z"),
                                                                          None)]
    for index in order:
        land(lake, versions[index])
    assert latest(lake) == ("inProgress", "08:20")
    land(lake, event(alert("new", "2026-12-07T08:05:00Z"), PULLED))
    assert latest(lake) == ("new", "08:05")  # what the pull read is what Graph shows


def test_a_lake_written_before_p_pull_time_still_opens(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    lake = tmp_path / "lake"
    land(lake, event(alert("new", "2026-12-07T08:10:00Z"), None), event(alert("resolved", "2026-12-07T08:30:00Z"),
                                                                         None))
    for path in lake.rglob("*.parquet"):
        pq.write_table(pq.read_table(path).drop_columns(["p_pull_time"]), path)
    assert latest(lake) == ("resolved", "08:30")
