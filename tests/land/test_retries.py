"""The delivery retry policy (shared/land/retries.py) against state storage that refuses to keep the in-flight mark:
real refusals from a local folder and from Azurite (tests/storage_faults.py), never a double of our own code."""

from __future__ import annotations

import pytest

from normalizers.names import TABLE
from shared.core import health
from shared.core.storage import open_store
from shared.land.lake_writer import read_table
from shared.land.normalize import InboundEvent
from shared.land.retries import Batch, is_transient, normalize_delivery
from tests.storage_faults import RefusedWrites, WriteOutage, alert_bodies

MARK = "health/normalize/3.json"


def _deliver(events, batch, lake, state, max_attempts):
    """One delivery as the host makes it: its result, or the exception it raised (the host then retries)."""
    try:
        return normalize_delivery(events, batch, lake=lake, state=state, max_attempts=max_attempts)
    except Exception as exc:  # noqa: BLE001 - the outcome is what the test judges
        return exc


@pytest.mark.parametrize("kind", ["local", "azurite"])
@pytest.mark.parametrize(("refuse", "max_attempts"), [
    # Storage that comes and goes, as a throttled account: every mark is kept, every clearing refused.
    pytest.param(lambda n: n % 2 == 0, 3, id="clearings-refused"),
    # An outage that begins between the first delivery's mark and its clearing and holds.
    pytest.param(lambda n: n >= 2, 1, id="outage-after-the-mark"),
    # An outage from before the batch came: not even the mark can be written.
    pytest.param(lambda n: True, 1, id="outage-from-the-start"),
])
def test_a_healthy_batch_survives_a_state_outage_longer_than_the_attempts_and_lands_after_it(
        make_store_url, kind, refuse, max_attempts):
    state_url, lake_url = make_store_url(kind), make_store_url(kind)
    outage = {"on": True}
    state = RefusedWrites(open_store(state_url), WriteOutage(state_url, MARK),
                          lambda n: outage["on"] and refuse(n))
    lake = open_store(lake_url)
    bodies = alert_bodies(6)
    events = [InboundEvent(body, metadata={"partition": "3"}) for body in bodies]
    batch = Batch("3", 500)

    during = [_deliver(events, batch, lake, state, max_attempts) for _ in range(max_attempts + 3)]
    assert list(open_store(state_url).list("quarantine/")) == [], "a healthy batch was given up in an outage"
    assert state.refused >= max_attempts + 3
    assert all(isinstance(outcome, Exception) and is_transient(outcome) for outcome in during), during
    assert all("in-flight mark" in str(outcome) for outcome in during), during

    outage["on"] = False
    result = _deliver(events, batch, lake, state, max_attempts)
    assert not isinstance(result, Exception), result
    assert (result.rows + result.duplicates, result.quarantined) == (len(bodies), [])
    assert len(set(read_table(lake, TABLE).column("p_row_id").to_pylist())) == len(bodies)
    record = health.load(open_store(state_url), "normalize", "3")
    assert (record["result"], record["batch_attempts"], record["in_flight"], record["error"]) == ("ok", 0, None, None)
