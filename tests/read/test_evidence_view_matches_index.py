"""What the evidence view shows, search finds: every IP address and SID in a row of `security_alert_evidence` is in
its alert version's p_any list (unless it is one no alert indexes), over the golden alerts and a simulated tenant."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from normalizers import indicators
from shared.core.storage import open_store
from shared.land.normalize import InboundEvent, normalize_events
from shared.read.query import connect
from simulator.tenant import Tenant

GOLDEN = Path(__file__).resolve().parents[2] / "normalizers" / "golden"


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("evidence")
    alerts = [a for path in sorted(GOLDEN.glob("*.input.json")) for a in orjson.loads(path.read_bytes())]
    tenant = Tenant(seed=11, alerts=600)
    alerts += [orjson.loads(tenant.alert_json(v.alert_id)) for v in tenant.versions()]
    # Properties the view reads on every evidence type, on a type whose entry does not name them.
    odd = dict(alerts[0], id="odd-1", evidence=[
        {"@odata.type": "#microsoft.graph.security.deviceEvidence", "senderIp": "198.51.100.77",
         "ipAddress": "198.51.100.78", "hostName": "ws-1"},
        {"@odata.type": "#microsoft.graph.security.processEvidence", "userAccount": {"userSid": "S-1-5-21-1-2-3-500"}},
        {"@odata.type": "#microsoft.graph.security.analyzedMessageEvidence", "senderIp": "255.255.255.255"}])
    alerts.append(odd)
    normalize_events([InboundEvent(orjson.dumps(a)) for a in alerts], lake=open_store(str(root / "lake")),
                     state=open_store(str(root / "state")))
    return str(root / "lake")


@pytest.mark.parametrize("column, any_list, canonical, noise", [
    ("ip", "p_any_ip_addresses", indicators.canonical_ip, indicators.address_noise),
    ("sid", "p_any_actor_ids", indicators.canonical_actor_id, indicators.is_well_known_local_principal),
])
def test_what_the_evidence_view_shows_is_indexed(lake: str, column: str, any_list: str, canonical, noise) -> None:
    connection = connect(lake)
    rows = connection.execute(
        f"SELECT e.evidence_type, e.{column}, a.{any_list} FROM security_alert_evidence e "
        f"JOIN security_alerts a USING (p_row_id) WHERE e.{column} IS NOT NULL").fetchall()
    assert rows, f"no evidence row shows a {column}: the check would prove nothing"
    missing = {(kind, value) for kind, value, listed in rows
               if (c := canonical(value)) and not noise(c) and c not in (listed or [])}
    assert not missing, f"shown in the evidence view but not searchable: {sorted(missing)[:10]}"
