"""What the commands print: rows as a table, JSON lines or CSV; search hits; an audit report."""

from __future__ import annotations

import csv
import sys
from collections import Counter
from datetime import datetime
from typing import Any

import click
import orjson

FORMATS = click.Choice(["table", "json", "csv"])


def print_rows(columns: list[str], rows: list[tuple], fmt: str) -> None:
    if fmt == "json":
        for row in rows:
            click.echo(orjson.dumps(dict(zip(columns, row)), default=str).decode())
    elif fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(map(csv_row, rows))
    else:
        cells = [[_cell(v) for v in row] for row in rows]
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
        click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
        click.echo("  ".join("-" * w for w in widths))
        for row in cells:
            click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)))
        click.echo(f"({count(len(rows), 'row')})")


def print_search(result: Any, lake: str, start: datetime, end: datetime, fmt: str) -> None:
    """A `shared.read.search` result: each table's hits and the SQL that returns them, then the summary."""
    from normalizers.indicators import address_noise
    from shared.read.search import HIT_COLUMNS

    notes = fmt != "table"  # machine formats keep stdout for the hits alone
    if fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(HIT_COLUMNS)
    for hits in result.tables:
        shown = f" (newest {len(hits.rows)} shown)" if len(hits.rows) < hits.count else ""
        click.echo(f"{hits.table}: {count(hits.count, 'hit')}{shown}", err=notes)
        if fmt == "table":
            print_rows(list(HIT_COLUMNS[1:]), [row[1:] for row in hits.rows], "table")
        elif fmt == "json":
            for row in hits.rows:
                click.echo(orjson.dumps(dict(zip(HIT_COLUMNS, row)), default=str).decode())
        else:
            writer.writerows(map(csv_row, hits.rows))
        click.echo(f"-- the same rows, every column: graphlake query --lake {lake} \"<SQL>\"\n{hits.pivot_sql}\n",
                   err=notes)
    for line in index_lines(result):
        click.echo(line, err=notes)
    for ip in sorted(result.terms.indicators.get("p_any_ip_addresses", ())):
        noise = address_noise(ip)
        if noise:
            click.echo(f"note: {ip} is a {noise} address, which names no particular host, so no alert indexes it in "
                       "p_any_ip_addresses; query security_alert_evidence for it", err=True)
    if result.without_evidence:
        from shared.read.search import PIVOTS

        kinds = [PIVOTS[kind].noun for kind in sorted(result.terms.evidence)]
        kinds = ", ".join(kinds[:-1]) + " and " + kinds[-1] if len(kinds) > 1 else kinds[0]
        click.echo(f"note: {kinds} are matched in alerts' evidence, which {', '.join(result.without_evidence)} "
                   f"{'does' if len(result.without_evidence) == 1 else 'do'} not hold: not searched for them there",
                   err=True)
    total = sum(hits.count for hits in result.tables)
    span = f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
    if not result.in_range:
        first, last = result.lake_days
        click.echo(f"0 hits: no table of the lake has a day from {span}; the lake holds {first} to {last} "
                   "(widen --since / --until)", err=notes)
        return
    searched = f"({', '.join(result.searched) or 'none'}), {span}"
    if total:
        click.echo(f"{count(total, 'hit')} in {len(result.tables)} of {count(len(result.searched), 'table')} searched "
                   f"{searched}", err=notes)
    else:
        # The days opened, not only the span asked for: days missing at either end of the lake show here.
        days = f", day partitions {result.days_read[0]} to {result.days_read[1]} read" if result.days_read else ""
        click.echo(f"0 hits in {'the' if len(result.searched) == 1 else 'all'} {count(len(result.searched), 'table')} "
                   f"searched {searched}{days}", err=notes)


def index_lines(result: Any) -> list[str]:
    """How the indicator index served each table searched: days narrowed by it, days read whole and why, files
    read of those in the range. One line for all tables when the index served none of their days (a new lake, or
    --no-index), where a line per table would say the same thing over again."""
    uses = sorted((t, u) for t, u in result.index.items() if t in result.searched)
    if len(uses) > 1 and not any(use.from_index for _, use in uses):
        whole = sum((use.scanned for _, use in uses), Counter())
        return [_index_line(f"{len(uses)} tables", sum(use.days for _, use in uses), 0, whole,
                            sum(use.files_read for _, use in uses), sum(use.files_in_range for _, use in uses))]
    return [_index_line(table, use.days, use.from_index, use.scanned, use.files_read, use.files_in_range)
            for table, use in uses]


def _index_line(tables: str, days: int, from_index: int, scanned: Counter, files_read: int, files: int) -> str:
    read_whole = sum(scanned.values())
    why = ", ".join(f"{n} {reason}" for reason, n in sorted(scanned.items()))
    whole = f", {count(read_whole, 'day')} read whole ({why})" if read_whole else ""
    return (f"index: {tables} {from_index} of {count(days, 'day')} narrowed by the indicator index{whole}; "
            f"{files_read} of {count(files, 'file')} read")


def print_audit(report: Any, limit: int) -> None:
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
    elif report.complete:
        click.echo(f"complete: the latest version of all {report.alerts} alerts is in the lake")


def csv_row(row: tuple) -> list:
    """Lists and structs as JSON, which a spreadsheet or a script reads back; not Python's repr of them."""
    return [orjson.dumps(v, default=str).decode() if isinstance(v, list | dict | tuple) else v for v in row]


def replay_lines(summary: Any) -> list[str]:
    """`graphlake replay`'s summary (shared.land.requeue.ReplaySummary): what landed, what stays and why."""
    stays = {1: "stays"}
    out = [f"{count(summary.examined, 'quarantined event')} replayed: {summary.landed} landed "
           f"({count(summary.rows, 'row')}) and left quarantine, {summary.stayed_total} "
           f"{stays.get(summary.stayed_total, 'stay')}"]
    for reason, number in summary.stayed.most_common():
        out.append(f"  {number} {stays.get(number, 'stay')}: {reason} (first: {summary.first_stayed[reason]})")
    return out


def count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _cell(value) -> str:
    text = "" if value is None else csv_row((value,))[0] if isinstance(value, list | dict | tuple) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."
