"""The graphlake command line: the same core as the Function App, driven from a shell."""

from __future__ import annotations

import asyncio
import csv
import logging
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import orjson

from shared.errors import GraphlakeError

FORMATS = click.Choice(["table", "json", "csv"])


class OneLineErrors(click.Group):
    """Known errors print as one line a person can act on; anything else keeps its traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except GraphlakeError as exc:
            click.echo(f"graphlake: {exc}", err=True)
            sys.exit(2)


@click.group(cls=OneLineErrors)
@click.option("-v", "--verbose", is_flag=True, help="Log every Graph call and write.")
def main(verbose: bool) -> None:
    """Microsoft Graph security alerts into a lake you own."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(message)s")


@main.command()
@click.option("--lake", default="lake", show_default=True, help="Local lake folder to (re)create.")
@click.option("--state", default=".demo/state", show_default=True, help="Watermark and quarantine folder.")
@click.option("--alerts", default=3000, show_default=True, help="Alerts in the simulated tenant.")
@click.option("--seed", default=7, show_default=True)
def demo(lake: str, state: str, alerts: int, seed: int) -> None:
    """Pull a simulated tenant into a local lake, then summarise it and run one indicator search."""
    from shared.demo import run_demo

    run_demo(lake, state, alerts, seed, show=lambda columns, rows: print_rows(columns, rows, "table"),
             say=click.echo)


@main.command()
@click.option("--port", default=0, show_default=True, help="Graph port (the token endpoint takes the next one); "
                                                           "0 picks free ports.")
@click.option("--alerts", default=3000, show_default=True)
@click.option("--days", default=7.0, show_default=True)
@click.option("--seed", default=7, show_default=True)
@click.option("--live/--static", default=True, show_default=True,
              help="Keep creating and updating alerts (late, as Graph shows them) while serving.")
@click.option("--throttle", type=int, default=None, help="Answer 429 past this many calls a minute.")
@click.option("--error-rate", type=float, default=0.0, show_default=True, help="Share of calls answered 5xx.")
@click.option("--drop-next-link", type=float, default=0.0, show_default=True,
              help="Share of full pages sent without @odata.nextLink.")
def simulate(port: int, alerts: int, days: float, seed: int, live: bool, throttle: int | None, error_rate: float,
             drop_next_link: float) -> None:
    """Serve a simulated alerts_v2 tenant on 127.0.0.1 and print the settings that point graphlake at it."""
    from simulator.faults import Faults
    from simulator.server import run_forever

    run_forever(port=port, alerts=alerts, seed=seed, days=days, live=live, faults=Faults(
        rate_limit_per_window=throttle, error_rate=error_rate, drop_next_link_rate=drop_next_link))


@main.command()
@click.option("--once", is_flag=True, help="One run, then exit (default: run every minute, like the timer).")
@click.option("--since", help="Backfill from this time (ISO 8601, or 7d / 12h ago) instead of the watermark.")
def pull(once: bool, since: str | None) -> None:
    """Pull alerts with the app's settings, read from environment variables.

    Without an Event Hub (EventHubConnection__fullyQualifiedNamespace empty) alerts are normalized in-process into
    LAKE_URL.
    """
    from shared.settings import load_settings

    settings = load_settings()
    start = _parse_since(since) if since else None
    while True:
        summaries = _pull_once(settings, start)
        for summary in summaries:
            click.echo(summary.to_json())
            if summary.error:
                click.echo(f"graphlake: source {summary.source_id}: {summary.error}", err=True)
        if once or start:
            failed = [s for s in summaries if s.error]
            sys.exit(1 if failed else 0)
        time.sleep(60)


def _pull_once(settings, since: datetime | None):
    from tqdm import tqdm

    from shared.fanout import EventHubSink
    from shared.local_sink import InProcessSink
    from shared.pull import pull_all
    from shared.storage import open_store

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


def _parse_since(text: str) -> datetime:
    relative = re.fullmatch(r"(\d+(?:\.\d+)?)([dhm])", text.strip())
    if relative:
        unit = {"d": "days", "h": "hours", "m": "minutes"}[relative.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: float(relative.group(1))})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is neither ISO 8601 nor like 7d / 12h / 30m", param_hint="--since")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@main.command()
@click.argument("source", type=click.File("rb"))
@click.option("--lake", default="lake", show_default=True, help="Lake folder or blob URL.")
@click.option("--state", default="state", show_default=True, help="Where quarantined input goes.")
@click.option("--source-id", default="", help="p_source_id of the rows (default: each alert's tenantId).")
@click.option("--source-label", default="Microsoft Graph", show_default=True)
def normalize(source, lake: str, state: str, source_id: str, source_label: str) -> None:
    """Normalize alerts from FILE (or - for stdin) into the lake: JSON lines, or a Graph response page."""
    from shared.normalize import InboundEvent, normalize_events
    from shared.storage import open_store

    properties = {"source_id": source_id, "source_label": source_label} if source_id else \
        {"source_label": source_label}
    name = getattr(source, "name", "-")
    events = [InboundEvent(body=body, properties=properties, metadata={"file": name, "line": number})
              for number, body in _alert_bodies(source.read())]
    result = normalize_events(events, lake=open_store(lake), state=open_store(state))
    click.echo(f"{result.rows} rows in {len(result.files)} files, {result.duplicates} duplicates, "
               f"{len(result.quarantined)} quarantined")
    sys.exit(1 if result.quarantined else 0)


def _alert_bodies(data: bytes):
    """(line number, raw alert) pairs. A Graph page ({"value": [...]}) is split; other lines pass through as they
    are, so a line that is not JSON reaches quarantine with its reason instead of vanishing."""
    stripped = data.strip()
    if stripped.startswith(b"{") and b"\n{" not in stripped:
        try:
            doc = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("value"), list):
            return [(i + 1, orjson.dumps(alert)) for i, alert in enumerate(doc["value"])]
    return [(i + 1, line) for i, line in enumerate(data.splitlines()) if line.strip()]


@main.command()
@click.argument("sql")
@click.option("--lake", default="lake", show_default=True)
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def query(sql: str, lake: str, fmt: str) -> None:
    """Run SQL over the lake (DuckDB); each table folder is a view, e.g. security_alerts."""
    from shared.query import run

    columns, rows = run(lake, sql)
    print_rows(columns, rows, fmt)


def print_rows(columns: list[str], rows: list[tuple], fmt: str) -> None:
    if fmt == "json":
        for row in rows:
            click.echo(orjson.dumps(dict(zip(columns, row)), default=str).decode())
    elif fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(rows)
    else:
        cells = [[_cell(v) for v in row] for row in rows]
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
        click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
        click.echo("  ".join("-" * w for w in widths))
        for row in cells:
            click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)))
        click.echo(f"({len(rows)} rows)")


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


if __name__ == "__main__":
    main()
