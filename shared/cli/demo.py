"""`graphlake demo`: the whole pipeline on a simulated tenant into a local lake, with no Azure account.

It runs the same code as the Function App: the real msgraph-sdk and azure-identity (a client-credentials token
from the simulator's TLS endpoint), the pull with its window and watermark, batches cut by the Event Hubs SDK, the
normalizer and the parquet writer. Only Event Hubs itself is replaced by the in-process sink. The tenant's Azure
Monitor records (Entra sign-in, audit and risk logs, the Activity log), consistent with its alerts, go to the same
sink's logs hub as its diagnostic settings would stream them, and land as normalize_logs lands them (quarantine and
health records included), so the demo ends with a search that pivots from an alert's IP into the logs.

It works in folders of its own (.demo/lake and .demo/state) and empties them on every run, so its figures repeat. It
never empties a folder it did not make: each folder it creates carries a marker file, and a folder that holds
anything without that marker (the ./lake that normalize, query and search use, say) is refused.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from azure.identity import ClientSecretCredential

from detections.realtime import build_detector
from normalizers.logs import TABLES as LOG_TABLES
from shared.core.errors import ConfigError
from shared.core.settings import load_settings
from shared.core.storage import open_store
from shared.pull.run import pull_source
from shared.pull.sinks import open_in_process_sink
from shared.read.query import connect
from shared.read.views import quote_identifier, quote_literal
from simulator.monitor_logs import MonitorLogs, Pivot, event_hub_bodies, pass_the_hash, pivots, send_bodies
from simulator.server import GraphSimulator
from simulator.tenant import Tenant

SUMMARY_SQL = """
SELECT serviceSource AS provider,
       count(*) AS versions,
       count(DISTINCT id) AS alerts,
       count(*) FILTER (WHERE severity = 'high') AS high,
       coalesce(sum(len(p_any_ip_addresses)), 0) AS ips,
       coalesce(sum(len(p_any_usernames)), 0) AS users,
       min(p_event_time)::DATE AS first,
       max(p_event_time)::DATE AS last
FROM security_alerts GROUP BY ALL ORDER BY versions DESC
""".strip()

# One row per log table; the rows are the table's view (deduplicated on p_row_id), as search and query read them.
LOG_SUMMARY_SQL = """
SELECT {name} AS "table",
       count(*) AS records,
       string_agg(DISTINCT category, ', ' ORDER BY category) AS categories,
       coalesce(sum(len(p_any_ip_addresses)), 0) AS ips,
       coalesce(sum(len(p_any_usernames)), 0) AS users,
       min(p_event_time)::DATE AS first,
       max(p_event_time)::DATE AS last
FROM {table}
""".strip()

MATCHES_SQL = "SELECT p_rule_id, count(*) FROM rule_matches GROUP BY ALL ORDER BY 2 DESC, 1"

Printer = Callable[[list[str], list[tuple]], None]

DEMO_LAKE = ".demo/lake"
DEMO_STATE = ".demo/state"
# A dot-name, so stores and query engines never list it as data.
MARKER = ".graphlake-demo"


def run_demo(lake_dir: str, state_dir: str, alerts: int, seed: int, show: Printer,
             say: Callable[[str], None]) -> Pivot | None:
    """Pull, stream the logs, normalize and summarise; return the pass-the-hash alert to search for (the seed
    document's investigation starts from its IP), if the tenant has one whose address the logs show."""
    for folder in (Path(lake_dir), Path(state_dir)):
        _start_empty(folder)
    say(f"Simulating a tenant: {alerts} alerts over the last 7 days from every Microsoft security product...")
    tenant = Tenant(seed=seed, alerts=alerts, days=7.0)
    with GraphSimulator(tenant) as sim:
        # The simulator's settings alone, not this shell's: the demo's tenant is the simulator whatever is set.
        # The starter pack runs on every batch, into the demo's own rule_matches; ALERT_DESTINATIONS is the demo's
        # (none), so a shell set up for production never receives simulated alerts.
        settings = load_settings({**sim.environment(), "STATE_URL": state_dir, "LAKE_URL": lake_dir,
                                  "PULL_DELAY_SECONDS": "0", "RULES_ENABLED": "true", "ALERT_DESTINATIONS": "[]"})
        [source] = settings.sources()
        state, lake = open_store(state_dir), open_store(lake_dir)
        # There is no Event Hub in the demo: batches land in this process, whatever EventHubConnection__ says.
        sink = open_in_process_sink(lake=lake, state=state, detector=build_detector(settings),
                                    logs_hub=settings.logs_eventhub_name, max_attempts=settings.normalize_max_attempts)
        # The token endpoint's certificate is the simulator's own: trusted for this credential only, so the
        # process's environment is left alone.
        credential = ClientSecretCredential(
            source.tenant_id, source.client_id, settings.named_setting(source.client_secret_setting),
            authority=settings.graph_authority_host, disable_instance_discovery=True,
            connection_verify=sim.ca_bundle)
        started = time.perf_counter()
        try:
            summary = asyncio.run(pull_source(source, settings, state, sink, credential=credential))
        finally:
            credential.close()
        sink.flush()
        took = time.perf_counter() - started
    if summary.error:
        raise RuntimeError(summary.error)
    say(f"Pulled {summary.sent} alerts in {took:.1f} s: {summary.graph.calls} Graph calls, {summary.graph.pages} "
        f"pages, {summary.slices_done} slices; watermark {summary.watermark_after}.")
    say(f"Wrote {sink.result.rows} rows in {len(set(sink.result.files))} parquet files under {lake_dir}/security_alerts "
        f"({len(sink.result.quarantined)} quarantined).\n")
    # Meanwhile the tenant's diagnostic settings stream its Azure Monitor records to the logs hub.
    found = pivots(tenant)
    records = MonitorLogs(tenant).records(found)
    bodies = list(event_hub_bodies(records))
    started = time.perf_counter()
    batches = send_bodies(sink, settings.logs_eventhub_name, bodies)
    sink.close()
    logs, took = sink.logs_result, time.perf_counter() - started
    con = connect(lake_dir)
    matches = con.execute(MATCHES_SQL).fetchall() if "rule_matches" in con.files else []
    say(f"Detections: the starter pack's real-time rules matched {sum(n for _, n in matches)} alert versions "
        f"({', '.join(f'{rule} {n}' for rule, n in matches) or 'none'}), in the table rule_matches.\nThe demo sends "
        "no alert anywhere: ALERT_DESTINATIONS and RULES_* of this shell are not read.\n")
    cursor = con.execute(SUMMARY_SQL)
    show([d[0] for d in cursor.description], cursor.fetchall())
    say(f"\nThe tenant's diagnostic settings streamed {len(records)} Azure Monitor records (Entra sign-in, audit and "
        f"risk logs; the Activity log), consistent with its alerts, in {len(bodies)} events and {batches} batches to "
        f"hub {settings.logs_eventhub_name}. They landed as normalize_logs lands them, in {took:.1f} s: {logs.rows} "
        f"rows in {len(set(logs.files))} parquet files ({len(logs.quarantined)} quarantined), health records under "
        "normalize_logs.\n")
    tables = [table for table in LOG_TABLES if table in con.files]
    if tables:
        cursor = con.execute("\nUNION ALL\n".join(
            LOG_SUMMARY_SQL.format(name=quote_literal(table), table=quote_identifier(table)) for table in tables))
        show([d[0] for d in cursor.description], cursor.fetchall())
    return pass_the_hash(found)


def _start_empty(folder: Path) -> None:
    """Empty a folder the demo made; refuse one that holds anything it did not make."""
    if folder.is_symlink():
        # Emptying would follow the link into whatever it names, and a dangling one cannot be made a folder.
        raise ConfigError(f"{folder} is a symbolic link: give the demo a folder of its own (default {DEMO_LAKE} and "
                          f"{DEMO_STATE})")
    if (folder / MARKER).is_file():
        shutil.rmtree(folder)
    elif folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ConfigError(f"{folder} holds files the demo did not make, and the demo empties its folders: give it "
                          f"a new or empty folder (default {DEMO_LAKE} and {DEMO_STATE})")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text("Made by graphlake demo, which empties this folder on every run.\n")
