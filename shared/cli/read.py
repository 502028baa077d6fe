"""The commands that read the lake: query, search."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from shared.cli import wiring
from shared.cli.render import FORMATS, print_rows, print_search
from shared.cli.times import parse_time


@click.command()
@click.argument("sql")
@click.option("--lake", help="Local folder, blob URL or az://container (default: LAKE_URL, else ./lake).")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True,
              help="table for reading; json (one object a line) or csv (lists and objects as JSON) for tools.")
@click.option("--explain", is_flag=True, help="Print the SQL of the views and the query, and DuckDB's plan.")
@click.option("--allow-local-files", is_flag=True,
              help="Let the SQL read and write other files (read_csv, COPY ... TO, ATTACH); by default it reads "
                   "the lake and nothing else.")
def query(sql: str, lake: str | None, fmt: str, explain: bool, allow_local_files: bool) -> None:
    """Run SQL over the lake (DuckDB). Every table folder is a view (security_alerts, deduplicated on p_row_id),
    plus security_alerts_latest and security_alert_evidence."""
    from shared.read.query import connect

    lake = wiring.lake_url(lake)
    connection = connect(lake, allow_local_files=allow_local_files, access=wiring.lake_access(lake))
    if explain:
        for definition in connection.definitions:
            click.echo(definition + ";\n")
        click.echo(sql.rstrip().rstrip(";") + ";\n")
        click.echo(connection.execute(f"EXPLAIN {sql}").fetchall()[0][1])
        return
    cursor = connection.run(sql)
    print_rows([d[0] for d in cursor.description or []], cursor.fetchall() if cursor.description else [], fmt)


@click.command()
@click.option("--lake", help="Local folder, blob URL or az://container (default: LAKE_URL, else ./lake).")
@click.option("--ip", multiple=True, help="IPv4 or IPv6 address, in any spelling.")
@click.option("--domain", multiple=True, help="Domain or host name (URL hosts and sender domains included).")
@click.option("--user", multiple=True, help="Account name, DOMAIN\\account or UPN.")
@click.option("--email", multiple=True, help="Email address (sender, recipient, mailbox), in any case.")
@click.option("--hash", "hash_", multiple=True, help="MD5, SHA-1 or SHA-256 (told apart by length).")
@click.option("--url", multiple=True,
              help="URL, matched whatever the case of its scheme and host (search a host with --domain).")
@click.option("--actor", multiple=True, help="Entra object id, SID or Defender for Endpoint device id.")
@click.option("--file-name", multiple=True,
              help="File name (no folder) of a file or process in an alert's evidence, or of its parent process.")
@click.option("--command-line", multiple=True, help="Part of a process command line in an alert's evidence, in any "
                                                    "case.")
@click.option("--message-id", multiple=True,
              help="Network message id or internet message id (with or without <>) of a mail in an alert's evidence.")
@click.option("--cloud-app", multiple=True, help="Name or app id of a cloud app, OAuth app or service principal in an "
                                                 "alert's evidence.")
@click.option("--app-id", multiple=True, help="Application (client) id of an OAuth app or service principal in an "
                                              "alert's evidence.")
@click.option("--resource-id", multiple=True,
              help="Azure resource id, VM id or subscription id (its resources too) in an alert's evidence.")
@click.option("--any", "any_", multiple=True,
              help="A value of any kind: matched against every indicator list and, whole, every evidence kind above "
                   "but --command-line.")
@click.option("--since", default="30d", show_default=True,
              help="Only rows whose p_event_time (an alert's createdDateTime) is at or after this: ISO 8601, or "
                   "30d / 12h / 90m ago.")
@click.option("--until", default=None, help="Only rows whose p_event_time is before this: ISO 8601, or 1d / 12h "
                                            "ago (default: now).")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Rows shown per table.")
@click.option("--all-versions", is_flag=True,
              help="Show every version of an alert that matches, not only the latest one.")
@click.option("--no-index", is_flag=True,
              help="Read every file of the range, not only those the indicator index names (to compare).")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True,
              help="table for reading; json (one object a line) or csv keep stdout for the hits alone.")
def search(lake: str | None, ip, domain, user, email, hash_, url, actor, file_name, command_line, message_id, cloud_app,
           app_id, resource_id, any_, since: str, until: str | None, limit: int, all_versions: bool, no_index: bool,
           fmt: str) -> None:
    """Search indicators across every table of the lake that has p_any_* columns, newest first; file names,
    command lines, message ids, apps and Azure resources in the alerts' evidence.

    Several values are OR-ed. Each table's hits end with the SQL that returns them in `graphlake query`.
    Closed days are read only in the files their indicator index names (one line per table says how many);
    --no-index reads them all. With --format json or csv only the hits go to stdout; the SQL and the summary go
    to stderr."""
    from shared.read.query import connect
    from shared.read.search import search as search_lake
    from shared.read.search import terms_for

    options = {"ip": ip, "domain": domain, "user": user, "email": email, "hash": hash_, "url": url, "actor": actor,
               "file_name": file_name, "command_line": command_line, "message_id": message_id, "cloud_app": cloud_app,
               "app_id": app_id, "resource_id": resource_id, "any": any_}
    start = parse_time(since, "--since")
    end = parse_time(until, "--until") if until else datetime.now(UTC)
    lake = wiring.lake_url(lake)
    result = search_lake(connect(lake, with_views=False, access=wiring.lake_access(lake)),
                         terms_for({kind: list(values) for kind, values in options.items() if values}), start, end,
                         limit=limit, all_versions=all_versions, use_index=not no_index)
    print_search(result, lake, start, end, fmt)
