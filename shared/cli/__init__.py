"""The graphlake command line: the same core as the Function App, driven from a shell."""

from __future__ import annotations

import asyncio
import csv
import logging
import re
import sys
import time
import traceback
from datetime import UTC, datetime, timedelta

import click
import orjson

from shared.core.errors import GraphlakeError, one_line

FORMATS = click.Choice(["table", "json", "csv"])


class OneLineErrors(click.Group):
    """Errors print as one line: a known one (exit 2) says what to fix; anything else (exit 3) is a bug, and says
    so. --debug shows the traceback as well."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # click prints these itself
        except GraphlakeError as exc:
            self._report(ctx, f"graphlake: {exc}", 2)
        except Exception as exc:  # noqa: BLE001 - a traceback is for --debug, not for every user
            self._report(ctx, f"graphlake: unexpected error, please report it: {one_line(exc, with_type=True)} "
                              "(--debug shows where)", 3)

    @staticmethod
    def _report(ctx: click.Context, line: str, code: int) -> None:
        if ctx.params.get("debug"):
            traceback.print_exc()
        click.echo(line, err=True)
        sys.exit(code)


@click.group(cls=OneLineErrors)
@click.option("-v", "--verbose", is_flag=True, help="Log every Graph call and write.")
@click.option("--debug", is_flag=True, help="Print the Python traceback of an error, not just its one line.")
def main(verbose: bool, debug: bool) -> None:
    """Microsoft Graph security alerts into a lake you own."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if not verbose:
        # azure-identity logs each failed credential chain as a page of warnings; the error says it in one line.
        logging.getLogger("azure.identity").setLevel(logging.ERROR)


@main.command()
@click.option("--lake", default=".demo/lake", show_default=True,
              help="The demo's lake folder, emptied on every run; a folder with files the demo did not make is refused.")
@click.option("--state", default=".demo/state", show_default=True,
              help="The demo's watermark and quarantine folder, emptied and refused alike.")
@click.option("--alerts", default=3000, show_default=True, help="Alerts in the simulated tenant.")
@click.option("--seed", default=7, show_default=True, help="Seed of the simulated tenant: same seed, same alerts.")
def demo(lake: str, state: str, alerts: int, seed: int) -> None:
    """Pull a simulated tenant into a local lake, then summarise it and run one indicator search."""
    from shared.cli.demo import run_demo

    ip = run_demo(lake, state, alerts, seed, show=lambda columns, rows: print_rows(columns, rows, "table"),
                  say=click.echo)
    if ip:
        click.echo(f"\nIndicator search: where else did {ip}, from a pass-the-hash alert, show up?\n"
                   f"$ graphlake search --lake {lake} --ip {ip}\n")
        print_search(lake, {"ip": [ip]}, datetime.now(UTC) - timedelta(days=30), datetime.now(UTC), 10, "table")
    click.echo(f"\nExplore: graphlake query --lake {lake} \"SELECT * FROM security_alerts_latest LIMIT 5\"")


@main.command()
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
@click.option("--late-seconds", type=float, default=240.0, show_default=True,
              help="Live mode: new versions show up to this many seconds after their lastUpdateDateTime ...")
@click.option("--late-tail", type=float, default=0.0, show_default=True,
              help="... except this share, which shows up to --late-tail-max seconds late (log-uniform).")
@click.option("--late-tail-max", type=float, default=7200.0, show_default=True,
              help="Live mode: the latest the late tail shows up, in seconds after its lastUpdateDateTime.")
def simulate(port: int, alerts: int, days: float, seed: int, live: bool, throttle: int | None, error_rate: float,
             drop_next_link: float, updates_during_paging: int, unstable_order: bool, malformed_timestamps: float,
             late_seconds: float, late_tail: float, late_tail_max: float) -> None:
    """Serve a simulated alerts_v2 tenant on 127.0.0.1 and print the settings that point graphlake at it."""
    from simulator.faults import Faults
    from simulator.lateness import Lateness
    from simulator.server import run_forever

    run_forever(port=port, alerts=alerts, seed=seed, days=days, live=live, faults=Faults(
        rate_limit_per_window=throttle, error_rate=error_rate, drop_next_link_rate=drop_next_link,
        page_updates=updates_during_paging, unstable_order=unstable_order,
        malformed_timestamp_rate=malformed_timestamps, seed=seed),
        lateness=Lateness(typical_seconds=late_seconds, tail_share=late_tail, tail_max_seconds=late_tail_max))


@main.command()
@click.option("--once", is_flag=True, help="One run, then exit (default: run on PULL_SCHEDULE, like the timer).")
@click.option("--since", help="Backfill from this time (ISO 8601, or 7d / 12h ago) instead of the watermark.")
@click.option("--rules", "rules_dir", help="Run the detection rules of this folder (and the starter pack) on every "
                                           "new row, as RULES_ENABLED with RULES_DIR does.")
def pull(once: bool, since: str | None, rules_dir: str | None) -> None:
    """Pull alerts with the app's settings, read from environment variables.

    Without an Event Hub (EventHubConnection__fullyQualifiedNamespace empty) alerts are normalized in-process into
    LAKE_URL.
    """
    from detections.realtime import rules_override
    from shared.core.settings import load_settings

    settings = load_settings()
    start = _parse_time(since, "--since") if since else None
    while True:
        with rules_override(rules_dir):
            summaries = _pull_once(settings, start)
        for summary in summaries:
            click.echo(summary.to_json())
            if summary.error:
                click.echo(f"graphlake: source {summary.source_id}: {summary.error}", err=True)
        if once or start:
            failed = [s for s in summaries if s.error]
            sys.exit(1 if failed else 0)
        time.sleep(_seconds_to_next(settings.pull_schedule))


def _seconds_to_next(schedule: str) -> float:
    """Until the next occurrence of an NCRONTAB schedule (seconds first, as the Functions host reads it)."""
    from croniter import croniter

    now = datetime.now(UTC)
    return max(0.0, (croniter(schedule, now, second_at_beginning=True).get_next(datetime) - now).total_seconds())


def _pull_once(settings, since: datetime | None):
    from tqdm import tqdm

    from shared.pull.fanout import EventHubSink
    from shared.land.local_sink import InProcessSink
    from shared.pull.run import pull_all
    from shared.core.storage import open_store

    state = open_store(settings.state_url)
    sink = EventHubSink(settings.eventhub_namespace) if settings.eventhub_namespace else \
        InProcessSink(open_store(settings.lake_url), state)
    bar = tqdm(unit=" alerts", disable=not since or not sys.stderr.isatty(), desc="backfill")

    def progress(piece, count: int) -> None:
        bar.set_postfix_str(piece.end.strftime("%Y-%m-%d %H:%M"))
        bar.update(count)

    try:
        return asyncio.run(pull_all(settings, state, sink, since=since, progress=progress))
    finally:
        bar.close()
        sink.close()


def _parse_time(text: str, option: str) -> datetime:
    relative = re.fullmatch(r"(\d+(?:\.\d+)?)([dhm])", text.strip())
    if relative:
        unit = {"d": "days", "h": "hours", "m": "minutes"}[relative.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: float(relative.group(1))})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is neither ISO 8601 nor like 7d / 12h / 30m", param_hint=option)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@main.command()
@click.argument("sources", nargs=-1, required=True, metavar="FILE...")
@click.option("--lake", default="lake", show_default=True, help="Lake folder or blob URL.")
@click.option("--state", default="state", show_default=True, help="Where quarantined input goes.")
@click.option("--source-id", default="", help="p_source_id of the rows (default: each alert's tenantId).")
@click.option("--source-label", default="Microsoft Graph", show_default=True, help="p_source_label of the rows.")
@click.option("-q", "--quiet", is_flag=True,
              help="Print nothing when every record landed; else one line on stderr.")
@click.option("-v", "--verbose", is_flag=True, help="List every quarantined record: its location and reason.")
@click.option("--rules", "rules_dir", help="Run the detection rules of this folder (and the starter pack) on every "
                                           "new row, as RULES_ENABLED with RULES_DIR does.")
def normalize(sources: tuple[str, ...], lake: str, state: str, source_id: str, source_label: str, quiet: bool,
              verbose: bool, rules_dir: str | None) -> None:
    """Normalize the alerts of each FILE (- for stdin) into the lake.

    A file holds one alert or a Graph page ({"value": [...]}) as a JSON object, a JSON array of alerts, or JSON
    lines of alerts or of pages; in UTF-8 (byte-order mark or not) or UTF-16 with a byte-order mark; gzip-compressed
    or not. What is not an alert is quarantined under --state with its reason. Exit 1 if anything was.
    """
    from detections.realtime import rules_override
    from shared.land.alert_files import land_files
    from shared.core.storage import open_store

    properties = {"source_id": source_id, "source_label": source_label} if source_id else \
        {"source_label": source_label}
    state_store = open_store(state)
    with rules_override(rules_dir):
        landing = land_files(list(sources), lake=open_store(lake), state=state_store, properties=properties)
    held = len(landing.quarantined)
    summary = (f"{_count(landing.records, 'record')} read from {_count(landing.files, 'file')}: "
               f"{_count(landing.rows, 'row')} landed in {lake}, {_count(landing.duplicates, 'duplicate')}, "
               f"{held} quarantined")
    copies = (f"{_count(len({q.copy for q in landing.quarantined}), 'document')} under "
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
    sys.exit(1 if held else 0)


@main.command()
@click.argument("sql")
@click.option("--lake", default="lake", show_default=True, help="Local folder, blob URL or az://container.")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True,
              help="table for reading; json (one object a line) or csv (lists and objects as JSON) for tools.")
@click.option("--explain", is_flag=True, help="Print the SQL of the views and the query, and DuckDB's plan.")
@click.option("--allow-local-files", is_flag=True,
              help="Let the SQL read and write other files (read_csv, COPY ... TO, ATTACH); by default it reads "
                   "the lake and nothing else.")
def query(sql: str, lake: str, fmt: str, explain: bool, allow_local_files: bool) -> None:
    """Run SQL over the lake (DuckDB). Every table folder is a view (security_alerts, deduplicated on p_row_id),
    plus security_alerts_latest and security_alert_evidence."""
    from shared.read.query import connect

    connection = connect(lake, allow_local_files=allow_local_files)
    if explain:
        for definition in connection.definitions:
            click.echo(definition + ";\n")
        click.echo(sql.rstrip().rstrip(";") + ";\n")
        click.echo(connection.execute(f"EXPLAIN {sql}").fetchall()[0][1])
        return
    cursor = connection.run(sql)
    print_rows([d[0] for d in cursor.description or []], cursor.fetchall() if cursor.description else [], fmt)


@main.command()
@click.option("--lake", default="lake", show_default=True, help="Local folder, blob URL or az://container.")
@click.option("--ip", multiple=True, help="IPv4 or IPv6 address, in any spelling.")
@click.option("--domain", multiple=True, help="Domain or host name (URL hosts and sender domains included).")
@click.option("--user", multiple=True, help="Account name, DOMAIN\\account or UPN.")
@click.option("--email", multiple=True, help="Email address (sender, recipient, mailbox), in any case.")
@click.option("--hash", "hash_", multiple=True, help="MD5, SHA-1 or SHA-256 (told apart by length).")
@click.option("--url", multiple=True,
              help="URL, matched whatever the case of its scheme and host (search a host with --domain).")
@click.option("--actor", multiple=True, help="Entra object id, SID or Defender for Endpoint device id.")
@click.option("--any", "any_", multiple=True, help="A value of any kind: matched against every indicator list.")
@click.option("--since", default="30d", show_default=True,
              help="Only rows whose p_event_time (an alert's createdDateTime) is at or after this: ISO 8601, or "
                   "30d / 12h / 90m ago.")
@click.option("--until", default=None, help="Only rows whose p_event_time is before this: ISO 8601, or 1d / 12h "
                                            "ago (default: now).")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Rows shown per table.")
@click.option("--all-versions", is_flag=True,
              help="Show every version of an alert that matches, not only the latest one.")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True,
              help="table for reading; json (one object a line) or csv keep stdout for the hits alone.")
def search(lake: str, ip, domain, user, email, hash_, url, actor, any_, since: str, until: str | None, limit: int,
           all_versions: bool, fmt: str) -> None:
    """Search indicators across every table of the lake that has p_any_* columns, newest first.

    Several values are OR-ed. Each table's hits end with the SQL that returns them in `graphlake query`.
    With --format json or csv only the hits go to stdout; the SQL and the summary go to stderr."""
    options = {"ip": ip, "domain": domain, "user": user, "email": email, "hash": hash_, "url": url, "actor": actor,
               "any": any_}
    start = _parse_time(since, "--since")
    end = _parse_time(until, "--until") if until else datetime.now(UTC)
    print_search(lake, {kind: list(values) for kind, values in options.items() if values}, start, end, limit, fmt,
                 all_versions=all_versions)


def print_search(lake: str, options: dict[str, list[str]], start: datetime, end: datetime, limit: int,
                 fmt: str, *, all_versions: bool = False) -> None:
    from normalizers.indicators import is_local_address
    from shared.read.query import connect
    from shared.read.search import HIT_COLUMNS, search, terms_for

    result = search(connect(lake, with_views=False), terms_for(options), start, end, limit=limit,
                    all_versions=all_versions)
    notes = fmt != "table"  # machine formats keep stdout for the hits alone
    if fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(HIT_COLUMNS)
    for hits in result.tables:
        shown = f" (newest {len(hits.rows)} shown)" if len(hits.rows) < hits.count else ""
        click.echo(f"{hits.table}: {_count(hits.count, 'hit')}{shown}", err=notes)
        if fmt == "table":
            print_rows(list(HIT_COLUMNS[1:]), [row[1:] for row in hits.rows], "table")
        elif fmt == "json":
            for row in hits.rows:
                click.echo(orjson.dumps(dict(zip(HIT_COLUMNS, row)), default=str).decode())
        else:
            writer.writerows(map(_csv_row, hits.rows))
        click.echo(f"-- the same rows, every column: graphlake query --lake {lake} \"<SQL>\"\n{hits.pivot_sql}\n",
                   err=notes)
    for ip in sorted(result.terms.get("p_any_ip_addresses", ())):
        if is_local_address(ip):
            click.echo(f"note: {ip} is a loopback, link-local or unspecified address: every device has one, so no "
                       "alert indexes it in p_any_ip_addresses; query security_alert_evidence for it", err=True)
    total = sum(hits.count for hits in result.tables)
    span = f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
    if not result.in_range:
        first, last = result.lake_days
        click.echo(f"0 hits: no table of the lake has a day from {span}; the lake holds {first} to {last} "
                   "(widen --since / --until)", err=notes)
        return
    click.echo(f"{total} hits in {len(result.tables)} of {len(result.searched)} tables searched "
               f"({', '.join(result.searched) or 'none'}), {span}", err=notes)


@main.command()
@click.option("--lake", help="Lake folder or blob container URL (default: LAKE_URL, else ./lake).")
@click.option("--table", "tables", multiple=True, help="Only this table (repeatable; default: every table).")
@click.option("--grace-days", type=click.IntRange(min=0),
              help="Leave the partitions of today and the N days before alone (default: COMPACT_GRACE_DAYS, 1).")
@click.option("--target-mb", type=click.FloatRange(min=0, min_open=True),
              help="Largest file written, in MB (default: COMPACT_TARGET_MB, 128).")
@click.option("--max-seconds", type=click.FloatRange(min=0, min_open=True),
              help="Start no new partition after this many seconds (default: no limit).")
@click.option("--dry-run", is_flag=True, help="Read and merge, print the summary, write and delete nothing.")
def compact(lake: str | None, tables: tuple[str, ...], grace_days: int | None, target_mb: float | None,
            max_seconds: float | None, dry_run: bool) -> None:
    """Merge the small files of closed day partitions into large ones sorted by p_event_time; print a summary.

    Safe to interrupt and to re-run: new files are written before the old ones are removed, and the next run
    finishes what a stopped one left.
    """
    from shared.ops.compact import MB
    from shared.ops.compact import compact as compact_lake
    from shared.core.errors import ConfigError
    from shared.core.settings import load_settings
    from shared.core.storage import LocalStore, open_store

    settings = load_settings()
    store = open_store(lake or settings.lake_url)
    if isinstance(store, LocalStore) and not store.root.is_dir():
        raise ConfigError(f"--lake {store.url}: no such folder")
    summary = compact_lake(
        store, tables=list(tables) or None,
        grace_days=settings.compact_grace_days if grace_days is None else grace_days,
        target_bytes=max(1, round((target_mb or settings.compact_target_mb) * MB)), max_seconds=max_seconds,
        dry_run=dry_run)
    click.echo(summary.to_json())
    for error in summary.errors:
        click.echo(f"graphlake: {error}", err=True)
    sys.exit(1 if summary.errors else 0)


@main.command()
@click.option("--since", default="7d", show_default=True, help="ISO 8601, or 7d / 12h ago: audit alerts updated since.")
@click.option("--repair", is_flag=True, help="Send what is missing through the fan-out (Event Hubs, or the "
                                             "in-process normalizer without one).")
@click.option("--lake", help="Lake folder or blob container URL (default: LAKE_URL).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="table for reading; json for tools.")
@click.option("--limit", type=click.IntRange(min=0), default=50, show_default=True, help="Missing alerts listed.")
def audit(since: str, repair: bool, lake: str | None, fmt: str, limit: int) -> None:
    """Compare the latest version of every alert Graph holds (updated since --since, up to the pull's watermark)
    with the lake: alerts missing, versions behind, counts per provider.

    Exit 0 when complete, 1 when anything is missing (and not repaired) or Graph could not be read completely,
    2 when a source failed."""
    from shared.ops.audit import audit_all
    from shared.core.settings import load_settings
    from shared.core.storage import open_store

    settings = load_settings()
    state = open_store(settings.state_url)
    lake_store = open_store(lake or settings.lake_url)
    sink = _event_sink(settings, lake_store, state) if repair else None
    try:
        reports = asyncio.run(audit_all(settings, state, lake_store, since=_parse_time(since, "--since"), sink=sink))
    finally:
        if sink is not None:
            sink.close()
    for report in reports:
        if fmt == "json":
            click.echo(report.to_json())
        else:
            _print_audit(report, limit)
        if report.error:
            click.echo(f"graphlake: source {report.source_id}: {report.error}", err=True)
    sys.exit(2 if any(r.error for r in reports) else 0 if all(r.complete for r in reports) else 1)


def _event_sink(settings, lake, state):
    """Event Hubs when configured; else the in-process normalizer into `lake`."""
    from shared.pull.fanout import EventHubSink
    from shared.land.local_sink import InProcessSink

    return EventHubSink(settings.eventhub_namespace) if settings.eventhub_namespace else InProcessSink(lake, state)


def _print_audit(report, limit: int) -> None:
    click.echo(f"source {report.source_id}: alerts updated in {report.window or '(nothing to audit yet)'}, "
               f"pull watermark {report.watermark or '(never pulled)'}")
    print_rows(["provider", "alerts", "complete", "missing", "behind"],
               [(name, c.alerts, c.complete, c.missing, c.behind) for name, c in sorted(report.providers.items())],
               "table")
    if not report.confirmed:
        click.echo("Graph's alerts shifted while paged: not every alert of the window could be read; run again")
    if report.findings:
        click.echo(f"{report.missing} alerts not at their latest version in the lake ({report.late_found} older "
                   f"than the pull's overlap), {report.repaired} repaired:")
        for f in report.findings[:limit]:
            click.echo(f"  {f.kind:8} {f.alert_id}  {f.last_update}  {f.provider}{'  late' if f.late else ''}")
        if report.missing > limit:
            click.echo(f"  ... and {report.missing - limit} more (--limit, or --format json)")
    elif not report.error:
        click.echo(f"complete: the latest version of all {report.alerts} alerts is in the lake")


@main.command()
@click.option("--state", help="State folder or blob container URL (default: STATE_URL).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="table for reading; json for tools.")
def status(state: str | None, fmt: str) -> None:
    """Each source, normalizer partition and reconciliation as OK / LAGGING / FAILING with the reason, from the
    health records in the state store, and the quarantine; exits 1 when any is not OK."""
    from shared.core.errors import ConfigError
    from shared.core.settings import load_settings
    from shared.ops.status import OK, check, worst
    from shared.core.storage import open_store

    settings = load_settings()
    try:
        sources = [source.id for source in settings.sources()]
    except ConfigError:  # status reads what runs recorded; it needs no Graph settings
        sources = []
    findings = check(open_store(state or settings.state_url), datetime.now(UTC), settings.pull_max_lag_seconds,
                     sources)
    for finding in findings:
        if fmt == "json":
            click.echo(orjson.dumps(finding.to_dict()).decode())
        else:
            click.echo(f"{finding.state:<8} {finding.component}/{finding.key}: {finding.reason}"
                       + (f" (recorded {finding.updated})" if finding.updated else ""))
    if not findings:
        click.echo("graphlake: no health records yet: no pull, normalize or reconcile run has been recorded", err=True)
    sys.exit(0 if findings and worst(findings) == OK else 1)


@main.command()
@click.option("--state", help="Where the quarantine is (default: STATE_URL).")
@click.option("--lake", help="Lake folder or blob container URL (default: LAKE_URL).")
def replay(state: str | None, lake: str | None) -> None:
    """Normalize quarantined events again, once their cause is fixed; each event's document is removed once it
    landed. Says what stays in quarantine and why; exit 1 if anything stays."""
    from shared.land.requeue import replay as replay_quarantine
    from shared.core.settings import load_settings
    from shared.core.storage import open_store

    settings = load_settings()
    summary = replay_quarantine(open_store(state or settings.state_url), open_store(lake or settings.lake_url))
    for line in summary.lines():
        click.echo(line)
    sys.exit(1 if summary.stayed_total else 0)


@main.group()
def rules() -> None:
    """Detection rules (panther-analysis format): test them, backtest them over the lake."""


@rules.command("test")
@click.option("--rules", "rules_dir", help="A folder of your rules, loaded on top of the starter pack "
                                           "(default: RULES_DIR).")
def rules_test(rules_dir: str | None) -> None:
    """Run every rule's Tests and print each result; exit 1 on a failure or a rule refused as malformed."""
    from detections.commands import test_command

    sys.exit(test_command(rules_dir, click.echo))


@rules.command("backtest")
@click.option("--since", default="30d", show_default=True, help="ISO 8601, or 30d / 12h ago.")
@click.option("--until", default=None, help="ISO 8601, or 1d / 12h ago (default: now).")
@click.option("--rules", "rules_dir", help="A folder of your rules, loaded on top of the starter pack "
                                           "(default: RULES_DIR).")
@click.option("--lake", help="Lake folder or blob container URL (default: LAKE_URL).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def rules_backtest(since: str, until: str | None, rules_dir: str | None, lake: str | None, fmt: str) -> None:
    """Backtest every rule (enabled or not) over the lake: matches and alerts per rule, nothing written or sent.
    Exit 1 if a rule raised or was refused."""
    from detections.commands import backtest_command
    from shared.core.settings import load_settings

    end = _parse_time(until, "--until") if until else datetime.now(UTC)
    sys.exit(backtest_command(rules_dir, lake or load_settings().lake_url, _parse_time(since, "--since"), end, fmt,
                              click.echo))


# The backtest's first name, kept working for scripts that use it; hidden, as "replay" is re-landing quarantined
# events (`graphlake replay`).
rules.add_command(click.Command("replay", params=rules_backtest.params, callback=rules_backtest.callback,
                                help=rules_backtest.help, hidden=True))


def print_rows(columns: list[str], rows: list[tuple], fmt: str) -> None:
    if fmt == "json":
        for row in rows:
            click.echo(orjson.dumps(dict(zip(columns, row)), default=str).decode())
    elif fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(map(_csv_row, rows))
    else:
        cells = [[_cell(v) for v in row] for row in rows]
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
        click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
        click.echo("  ".join("-" * w for w in widths))
        for row in cells:
            click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)))
        click.echo(f"({len(rows)} rows)")


def _csv_row(row: tuple) -> list:
    """Lists and structs as JSON, which a spreadsheet or a script reads back; not Python's repr of them."""
    return [orjson.dumps(v, default=str).decode() if isinstance(v, list | dict | tuple) else v for v in row]


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _cell(value) -> str:
    text = "" if value is None else _csv_row((value,))[0] if isinstance(value, list | dict | tuple) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."

