"""One id under two serviceSources (issue 18 item 5): both must land and the slice must be confirmed.

Counting ids took the twin for a repeat, so the slice was never shown complete and the watermark stalled; the
sender's and the overlap's dedup on (id, lastUpdateDateTime) and a p_row_id of (tenantId, id, lastUpdateDateTime)
dropped the twin. An alert is (tenantId, serviceSource, id) in all three now.
"""

from __future__ import annotations

import asyncio

from shared.core.storage import open_store
from shared.land.local_sink import InProcessSink
from shared.pull.run import pull_all
from shared.read.query import connect


def test_one_id_under_two_service_sources_lands_twice_and_the_slice_is_confirmed(make_pipeline):
    pipe = make_pipeline(alerts=20)
    settings = pipe.settings()
    state, lake = open_store(settings.state_url), open_store(settings.lake_url)

    def pull():
        sink = InProcessSink(lake, state)
        try:
            [summary] = asyncio.run(pull_all(settings, state, sink))
        finally:
            sink.close()
        assert summary.error is None
        return summary

    pull()
    [first] = pipe.tenant.mutate(new_alerts=1)
    twin = pipe.tenant.add_twin(first.alert_id)
    pipe.settle()
    for _ in range(2):
        summary = pull()
        assert summary.unconfirmed_slices == 0, summary.to_json()
    connection = connect(pipe.env["LAKE_URL"])
    try:
        sources = connection.execute("SELECT serviceSource FROM security_alerts_latest WHERE id = ?",
                                     [twin.alert_id]).fetchall()
    finally:
        connection.con.close()
    assert len({s for (s,) in sources}) == 2, sources
