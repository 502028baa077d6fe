"""The commands that bring alerts in: simulate, pull, normalize, replay, demo."""

from __future__ import annotations

import asyncio
import errno
import sys
import time
from datetime import UTC, datetime, timedelta

import click

from shared.cli import wiring
from shared.cli.render import count, print_rows, print_search, replay_lines
from shared.cli.times import parse_time, seconds_to_next
from shared.core.errors import ConfigError

RULES_HELP = ("Run the detection rules of this folder (and the starter pack) on every new row, as RULES_ENABLED "
              "with RULES_DIR does.")


@click.command()
@click.option("--lake", default=".demo/lake", show_default=True,
              help="The demo's lake folder, emptied on every run; a folder with files the demo did not make is refused.")
@click.option("--state", default=".demo/state", show_default=True,
              help="The demo's watermark and quarantine folder, emptied and refused alike.")
@click.option("--alerts", default=3000, show_default=True, help="Alerts in the simulated tenant.")
@click.option("--seed", default=7, show_default=True, help="Seed of the simulated tenant: same seed, same alerts.")
def demo(lake: str, state: str, alerts: int, seed: int) -> None:
    """Pull a simulated tenant and stream its Azure Monitor logs into a local lake, then summarise it and run one
    cross-source indicator search."""
    from shared.cli.demo import run_demo
    from shared.read.query import connect
    from shared.read.search import search, terms_for

    pivot = run_demo(lake, state, alerts, seed, show=lambda columns, rows: print_rows(columns, rows, "table"),
                     say=click.echo)
    if pivot:
        click.echo(f"\nCross-source search: where else did {pivot.ip}, from a pass-the-hash alert on {pivot.upn}, "
                   f"show up, in the alerts and in the logs beside them?\n"
                   f"$ graphlake search --lake {lake} --ip {pivot.ip}\n")
        start, end = datetime.now(UTC) - timedelta(days=30), datetime.now(UTC)
        result = search(connect(lake, with_views=False), terms_for({"ip": [pivot.ip]}), start, end, limit=10)
        print_search(result, lake, start, end, "table")
    click.echo(f"\nExplore: graphlake query --lake {lake} \"SELECT * FROM security_alerts_latest LIMIT 5\"\n"
               f"Health: graphlake status --state {state}")


@click.command()
@click.option("--port", default=0, show_default=True, help="Graph port (the token endpoint takes the next one); "
                                                           "0 picks free ports.")
@click.option("--alerts", default=3000, show_default=True, help="Alerts in the simulated tenant.")
@click.option("--days", default=7.0, show_default=True, help="How many days back the alerts' createdDateTime go.")
@click.option("--seed", default=7, show_default=True, help="Seed of the simulated tenant: same seed, same alerts.")
@click.option("--live/--static", default=True, show_default=True,
              help="Keep creating and updating alerts (late, as Graph shows them) while serving.")
@click.option("--throttle", type=int, default=None, help="Answer 429 past this many calls a minute.")
@click.option("--error-rate", type=float, default=0.0, show_default=True, help="Share of calls answered 5xx.")
@click.option("--drop-next-link", type=float, default=0.0, show_default=True,
              help="Share of full pages sent without @odata.nextLink.")
@click.option("--updates-during-paging", type=int, default=0, show_default=True,
              help="Before each page after a query's first, update this many alerts its earlier pages served, so "
                   "later alerts move up onto pages already read.")
@click.option("--unstable-order", is_flag=True, help="Order alerts created in the same hour differently on every "
                                                      "request.")
@click.option("--malformed-timestamps", type=float, default=0.0, show_default=True,
              help="Share of alerts whose lastUpdateDateTime is printed without its zone.")
@click.option("--graph-clock-behind", type=float, default=0.0, show_default=True,
              help="Graph's clock (its Date header, what it stamps alerts with) runs this many seconds behind this "
                   "host's: a puller on this host has a clock ahead of Graph's.")
@click.option("--strip-date", is_flag=True, help="Answer without a Date header, as behind a proxy that strips it.")
@click.option("--late-seconds", type=float, default=240.0, show_default=True,
              help="Live mode: new versions show up to this many seconds after their lastUpdateDateTime ...")
@click.option("--late-tail", type=float, default=0.0, show_default=True,
              help="... except this share, which shows up to --late-tail-max seconds late (log-uniform).")
@click.option("--late-tail-max", type=float, default=7200.0, show_default=True,
              help="Live mode: the latest the late tail shows up, in seconds after its lastUpdateDateTime.")
def simulate(port: int, alerts: int, days: float, seed: int, live: bool, throttle: int | None, error_rate: float,
             drop_next_link: float, updates_during_paging: int, unstable_order: bool, malformed_timestamps: float,
             graph_clock_behind: float, strip_date: bool, late_seconds: float, late_tail: float,
             late_tail_max: float) -> None:
    """Serve a simulated alerts_v2 tenant on 127.0.0.1 and print the settings that point graphlake at it."""
    from simulator.faults import Faults
    from simulator.lateness import Lateness
    from simulator.server import run_forever

    try:
        run_forever(port=port, alerts=alerts, seed=seed, days=days, live=live, faults=Faults(
            rate_limit_per_window=throttle, error_rate=error_rate, drop_next_link_rate=drop_next_link,
            page_updates=updates_during_paging, unstable_order=unstable_order,
            malformed_timestamp_rate=malformed_timestamps, tenant_clock_behind_seconds=graph_clock_behind,
            strip_date_header=strip_date, seed=seed),
            lateness=Lateness(typical_seconds=late_seconds, tail_share=late_tail, tail_max_seconds=late_tail_max))
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise ConfigError(f"port {port} or {port + 1} (the token endpoint's) is in use: give another --port, or 0 "
                          "for free ones") from None


@click.command()
@click.option("--once", is_flag=True, help="One run, then exit (default: run on PULL_SCHEDULE, like the timer).")
@click.option("--since", help="Backfill from this time (ISO 8601, or 7d / 12h ago) instead of the watermark.")
@click.option("--rules", "rules_dir", help=RULES_HELP)
def pull(once: bool, since: str | None, rules_dir: str | None) -> None:
    """Pull alerts with the app's settings, read from environment variables.

    Without an Event Hub (EventHubConnection__fullyQualifiedNamespace empty) alerts are normalized in-process into
    LAKE_URL.
    """
    from shared.core.settings import load_settings

    settings = load_settings()
    start = parse_time(since, "--since") if since else None
    detector = wiring.detector(settings, rules_dir)
    while True:
        summaries, rule_errors = _pull_once(settings, start, detector)
        for summary in summaries:
            click.echo(summary.to_json())
            if summary.error:
                click.echo(f"graphlake: source {summary.source_id}: {summary.error}", err=True)
        if once or start:
            failed = [s for s in summaries if s.error]
            errors = _say_rule_errors(rule_errors)
            refused = _say_refused(detector)
            sys.exit(1 if failed or errors or refused else 0)
        time.sleep(seconds_to_next(settings.pull_schedule))


def _say_rule_errors(errors: list[str]) -> bool:
    """Whether rules raised on rows that landed, said last on stderr (with the exit code, so a script sees it)."""
    if errors:
        for line in errors[:10]:
            click.echo(f"graphlake: {line}", err=True)
        click.echo(f"graphlake: {count(len(errors), 'rule error')} on the rows landed "
                   "(rule_errors table; rule-error alerts queued)", err=True)
    return bool(errors)


def _say_refused(detector) -> bool:
    """Whether rules of --rules were refused, said on stderr: the rest landed and ran, these did not."""
    refused = detector.rules.refused if detector is not None else []
    if refused:
        click.echo(f"graphlake: {count(len(refused), 'rule')} of --rules refused, not run (graphlake rules test says "
                   "why)", err=True)
    return bool(refused)


def _pull_once(settings, since: datetime | None, detector):
    from tqdm import tqdm

    from shared.core.storage import open_store
    from shared.land.local_sink import InProcessSink
    from shared.pull.run import pull_all
    from shared.pull.sinks import open_sink

    state = open_store(settings.state_url)
    sink = open_sink(settings, state=state, detector=detector)
    bar = tqdm(unit=" alerts", disable=not since or not sys.stderr.isatty(), desc="backfill")

    def progress(piece, count: int) -> None:
        bar.set_postfix_str(piece.end.strftime("%Y-%m-%d %H:%M"))
        bar.update(count)

    try:
        summaries = asyncio.run(pull_all(settings, state, sink, since=since, progress=progress))
    finally:
        bar.close()
        sink.close()
    wiring.drain_outbox(detector, settings.state_url)
    # The in-process normalizer ran the rules on what it landed; with Event Hubs, normalize_alerts runs them.
    return summaries, list(sink.result.rule_errors) if isinstance(sink, InProcessSink) else []


@click.command()
@click.argument("sources", nargs=-1, required=True, metavar="FILE...")
@click.option("--lake", help="Lake folder or blob URL (default: LAKE_URL, else ./lake).")
@click.option("--state", help="Where quarantined input goes (default: STATE_URL, else ./state).")
@click.option("--source-id", default="", help="p_source_id of the rows (default: each row's tenantId).")
@click.option("--source-label", default="",
              help="p_source_label of the rows (default: Microsoft Graph for alerts, Azure Monitor for log records).")
@click.option("-q", "--quiet", is_flag=True,
              help="Print nothing when every record landed; else one line on stderr.")
@click.option("-v", "--verbose", is_flag=True, help="List every quarantined record: its location and reason.")
@click.option("--rules", "rules_dir", help=RULES_HELP)
def normalize(sources: tuple[str, ...], lake: str | None, state: str | None, source_id: str, source_label: str, quiet: bool,
              verbose: bool, rules_dir: str | None) -> None:
    """Normalize the alerts and Azure Monitor records of each FILE (- for stdin) into the lake.

    A file holds one alert or a Graph page ({"value": [...]}) as a JSON object, a JSON array of alerts, or JSON
    lines of alerts or of pages; in UTF-8 (byte-order mark or not) or UTF-16 with a byte-order mark; gzip-compressed
    or not. Azure Monitor records (Entra sign-in, audit and risk logs, the Activity log) come the same ways, or as
    Event Hub bodies ({"records": [...]}) and archive-to-storage JSON lines; each lands in its category's table.
    What is neither is quarantined under --state with its reason. Exit 1 if anything was, or if a
    rule (--rules) raised on a row or was refused.
    """
    from shared.core.settings import RULES_SETTINGS, load_settings
    from shared.core.storage import open_store
    from shared.land.alert_files import land_files

    properties = {key: value for key, value in (("source_id", source_id), ("source_label", source_label)) if value}
    lake, state = wiring.lake_url(lake), wiring.state_url(state)
    state_store = open_store(state)
    # Only the rules' settings (and where the lake and state are): a bad setting of the pull's refuses no backfill.
    detector = wiring.detector(load_settings(only=RULES_SETTINGS), rules_dir)
    landing = land_files(list(sources), lake=open_store(lake), state=state_store, properties=properties,
                         detector=detector)
    wiring.drain_outbox(detector, state)
    held = len(landing.quarantined)
    summary = (f"{count(landing.records, 'record')} read from {count(landing.files, 'file')}: "
               f"{count(landing.rows, 'row')} landed in {lake}, {count(landing.duplicates, 'duplicate')}, "
               f"{held} quarantined")
    copies = (f"{count(len({q.copy for q in landing.quarantined}), 'document')} under "
              f"{state_store.url.rstrip('/')}/quarantine/")
    if quiet:
        if held:
            click.echo(f"graphlake: {summary}; copies: {copies}", err=True)
    else:
        click.echo(summary)
        by_reason: dict[str, list] = {}
        for item in landing.quarantined:
            by_reason.setdefault(item.reason, []).append(item)
        for reason, items in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
            click.echo(f"  {len(items)} × {reason}  first at {items[0].location}")
        if verbose:
            for item in landing.quarantined:
                click.echo(f"{item.location}: {item.reason}")
        if held:
            click.echo(f"quarantined copies: {copies}")
    errors = _say_rule_errors(landing.rule_errors)
    refused = _say_refused(detector)
    sys.exit(1 if held or errors or refused else 0)


@click.command()
@click.option("--state", help="Where the quarantine is (default: STATE_URL).")
@click.option("--lake", help="Lake folder or blob container URL (default: LAKE_URL).")
@click.option("--list", "list_only", is_flag=True, help="List every quarantined document and the reason it was "
                                                        "first quarantined for; replay nothing.")
@click.option("--drop", "drop_names", multiple=True, metavar="NAME",
              help="Give up this quarantined document for good (a name --list or the replay summary shows); "
                   "repeatable. Replays nothing.")
def replay(state: str | None, lake: str | None, list_only: bool, drop_names: tuple[str, ...]) -> None:
    """Normalize quarantined events again, once their cause is fixed; each event's document is removed once it
    landed. Says what stays in quarantine and why; exit 1 if anything stays."""
    from shared.core.settings import RULES_SETTINGS, load_settings
    from shared.core.storage import open_store
    from shared.land.requeue import drop, quarantined
    from shared.land.requeue import replay as replay_quarantine

    if list_only or drop_names:
        state_store = open_store(wiring.state_url(state))
        if drop_names:
            missing = drop(state_store, list(drop_names))
            click.echo(f"dropped {count(len(drop_names) - len(missing), 'quarantined document')}")
            if missing:
                raise ConfigError(f"not in the quarantine: {', '.join(missing)} (graphlake replay --list names them)")
            return
        for name, reason in quarantined(state_store):
            click.echo(f"{name}: {reason}")
        return
    settings = load_settings(only=RULES_SETTINGS)  # a bad setting of the pull's refuses no replay
    summary = replay_quarantine(open_store(wiring.state_url(state)), open_store(wiring.lake_url(lake)),
                                detector=wiring.detector(settings))
    for line in replay_lines(summary):
        click.echo(line)
    sys.exit(1 if summary.stayed_total else 0)
