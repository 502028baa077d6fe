"""The commands that look after the lake and the pipeline: compact, audit, status."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime

import click
import orjson

from shared.cli import wiring
from shared.cli.render import print_audit
from shared.cli.times import parse_time


@click.command()
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
    from shared.core.errors import ConfigError
    from shared.core.settings import load_settings
    from shared.core.storage import LocalStore, open_store
    from shared.ops.compact import MB
    from shared.ops.compact import compact as compact_lake

    settings = load_settings()
    store = open_store(wiring.lake_url(lake))
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


@click.command()
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
    from shared.core.settings import load_settings
    from shared.core.storage import open_store
    from shared.ops.audit import audit_all
    from shared.pull.sinks import open_sink

    settings = load_settings()
    state = open_store(wiring.state_url(None))
    lake_store = open_store(wiring.lake_url(lake))
    sink = open_sink(settings, state=state, lake=lake_store, detector=wiring.detector(settings)) if repair else None
    try:
        reports = asyncio.run(audit_all(settings, state, lake_store, since=parse_time(since, "--since"), sink=sink))
    finally:
        if sink is not None:
            sink.close()
    for report in reports:
        if fmt == "json":
            click.echo(report.to_json())
        else:
            print_audit(report, limit)
        if report.error:
            click.echo(f"graphlake: source {report.source_id}: {report.error}", err=True)
    sys.exit(2 if any(r.error for r in reports) else 0 if all(r.complete for r in reports) else 1)


@click.command()
@click.option("--state", help="State folder or blob container URL (default: STATE_URL).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="table for reading; json for tools.")
def status(state: str | None, fmt: str) -> None:
    """Each source, normalizer partition and reconciliation as OK / LAGGING / FAILING with the reason, from the
    health records in the state store, and the quarantine; exits 1 when any is not OK."""
    from shared.core.errors import ConfigError
    from shared.core.settings import load_settings
    from shared.core.storage import open_store
    from shared.ops.status import OK, check, worst

    settings = load_settings()
    try:
        sources = [source.id for source in settings.sources()]
    except ConfigError:  # status reads what runs recorded; it needs no Graph settings
        sources = []
    state = wiring.state_url(state)
    findings = check(open_store(state), datetime.now(UTC), settings.pull_max_lag_seconds,
                     sources, event_hub=bool(settings.eventhub_namespace),
                     logs_max_silence_seconds=settings.logs_max_silence_seconds,
                     max_clock_skew_seconds=settings.pull_max_clock_skew_seconds)
    for finding in findings:
        if fmt == "json":
            click.echo(orjson.dumps(finding.to_dict()).decode())
        else:
            click.echo(f"{finding.state:<8} {finding.component}/{finding.key}: {finding.reason}"
                       + (f" (recorded {finding.updated})" if finding.updated else ""))
    if not findings:
        click.echo(f"graphlake: no health records in {state} yet: no pull, normalize or reconcile run has been "
                   "recorded there (the demo's are in .demo/state: graphlake status --state .demo/state)", err=True)
    sys.exit(0 if findings and worst(findings) == OK else 1)


@click.group()
def index() -> None:
    """The indicator index of closed day partitions, which `graphlake search` reads to open only the files that hold
    a value. Compaction writes it; these commands check it against its days and write it again from the lake."""


def _index_run(lake: str | None, tables: tuple[str, ...], days: tuple[str, ...], grace_days: int | None, *,
               rebuild: bool, force: bool) -> None:
    from datetime import date, timedelta

    from shared.core.errors import ConfigError
    from shared.core.settings import load_settings
    from shared.core.storage import LocalStore, open_store
    from shared.ops.index_build import OK, check_lake

    settings = load_settings(only=("COMPACT_GRACE_DAYS",))  # a bad setting of the pull's refuses no check
    store = open_store(wiring.lake_url(lake))
    if isinstance(store, LocalStore) and not store.root.is_dir():
        raise ConfigError(f"--lake {store.url}: no such folder")
    try:
        wanted = sorted({date.fromisoformat(day) for day in days})
    except ValueError:
        raise ConfigError(f"--day {', '.join(days)}: give days as YYYY-MM-DD") from None
    grace = settings.compact_grace_days if grace_days is None else grace_days
    closed_before = datetime.now(UTC).date() - timedelta(days=grace)
    summary = check_lake(store, tables=list(tables) or None, days=wanted or None, closed_before=closed_before,
                         rebuild=rebuild, force=force)
    for finding in summary.findings:
        action = " (rebuilt)" if finding.rebuilt and finding.state != "orphan" else \
            " (removed)" if finding.rebuilt else ""
        click.echo(f"{finding.state:<10} {finding.table} {finding.day}{': ' + finding.detail if finding.detail else ''}"
                   f"{action}")
    bad = [f for f in summary.findings if f.state != OK and not f.rebuilt]
    last = (f"{summary.checked} closed partitions checked, {len(summary.findings)} indexes not OK, "
            f"{summary.rebuilt} rebuilt, {summary.removed} removed")
    click.echo(f"graphlake: {last}" if bad else last, err=bool(bad))
    sys.exit(1 if bad else 0)


_LAKE = click.option("--lake", help="Lake folder or blob container URL (default: LAKE_URL, else ./lake).")
_TABLE = click.option("--table", "tables", multiple=True, help="Only this table (repeatable; default: every table).")
_DAY = click.option("--day", "days", multiple=True, help="Only this day, YYYY-MM-DD (repeatable; default: every "
                                                        "closed day).")
_GRACE = click.option("--grace-days", type=click.IntRange(min=0),
                      help="Days still open, as compaction counts them (default: COMPACT_GRACE_DAYS, 1).")


@index.command("check")
@_LAKE
@_TABLE
@_DAY
@_GRACE
@click.option("--repair", is_flag=True, help="Write again every index that is not OK; remove those of emptied days.")
def index_check(lake: str | None, tables: tuple[str, ...], days: tuple[str, ...], grace_days: int | None,
                repair: bool) -> None:
    """Compare each closed partition's index with one built again from its files: missing, stale (built from
    other files), unreadable, different, or an orphan (its day holds no files). Reads every file checked.
    Exit 1 when one is not OK (and not repaired)."""
    _index_run(lake, tables, days, grace_days, rebuild=repair, force=False)


@index.command("rebuild")
@_LAKE
@_TABLE
@_DAY
@_GRACE
def index_rebuild(lake: str | None, tables: tuple[str, ...], days: tuple[str, ...], grace_days: int | None) -> None:
    """Write the index of every closed partition (or of --day) again from the lake, whatever the old one holds."""
    _index_run(lake, tables, days, grace_days, rebuild=True, force=True)
