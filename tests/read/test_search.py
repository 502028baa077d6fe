"""Indicator search and the lake's views on a hand-built lake, local and on Azurite.

The lake holds Graph alerts written by the real normalizer, plus two tables "other producers" wrote in the same
layout: an Okta-like table without p_any_domain_names, and a CloudTrail-like one. Every value below is spelled
differently in the data and in the search, so a match proves the canonicalisation on both sides agrees.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import subprocess
import tempfile
import sys
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from shared.cli import main
from shared.land.lake_writer import write_table
from shared.land.normalize import InboundEvent, normalize_events
from shared.read.query import connect
from shared.read.search import HIT_COLUMNS, search, terms_for
from shared.core.blob_url import EMULATOR_KEY
from shared.core.storage import open_store

UTC = dt.UTC
NOW = dt.datetime.now(UTC).replace(microsecond=0)
TENANT = "8c1a5e3f-2b7d-4f60-9e14-5a3c7d9b0e21"
ENTRA_USER = "6F1B2C3D-4E5F-4a6b-8c7d-9e0f1a2b3c4d"
SHA256 = "79D77CA0E0D7CC83F7460BB80BFA048C3613204EEEDEFE678A06FB62E541383D"
SHA1 = "D140C6E6092CAD2E4B5166E9A0248F8E0EE7B609"
MD5 = "D1E98E0E048E72E313D595038B166656"


def _time(days_ago: float, minutes: int = 0) -> str:
    return (NOW - dt.timedelta(days=days_ago) + dt.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _alert(alert_id: str, days_ago: float, evidence: list[dict], *, version: int = 0, status: str = "new",
           title: str = "Suspected identity theft (pass-the-hash)",
           service: str = "microsoftDefenderForIdentity") -> dict:
    return {"@odata.type": "#microsoft.graph.security.alert", "id": alert_id, "tenantId": TENANT,
            "createdDateTime": _time(days_ago), "lastUpdateDateTime": _time(days_ago, minutes=10 * version),
            "title": title, "serviceSource": service, "severity": "high", "status": status, "evidence": evidence}


def _evidence(kind: str, **properties) -> dict:
    return {"@odata.type": f"#microsoft.graph.security.{kind}", "verdict": "suspicious", "roles": ["attacker"],
            "remediationStatus": "none", **properties}


USER = _evidence("userEvidence", userAccount={
    "accountName": "Alice", "domainName": "contoso.com", "userPrincipalName": "Alice@Contoso.COM",
    "azureAdUserId": ENTRA_USER, "userSid": "S-1-5-21-1004336348-1177238915-682003330-512"})
ALERTS = [
    # Two versions of one alert: both are rows, and the latest view keeps the resolved one.
    _alert("pth-1", 2, [_evidence("ipEvidence", ipAddress="203.0.113.7", countryLetterCode="NL"), USER]),
    _alert("pth-1", 2, [_evidence("ipEvidence", ipAddress="203.0.113.7", countryLetterCode="NL"), USER],
           version=1, status="resolved"),
    _alert("mde-2", 5, [
        _evidence("fileEvidence", fileDetails={"fileName": "payload.dll", "filePath": "C:\\ProgramData",
                                               "sha256": SHA256, "sha1": SHA1, "md5": MD5}),
        _evidence("deviceEvidence", deviceDnsName="WS01.Contoso.com", mdeDeviceId=SHA1.lower(),
                  ipInterfaces=["2001:DB8:0:0:0:0:0:1"]),
    ], title="Ransomware behavior", service="microsoftDefenderForEndpoint"),
    _alert("phish-3", 40, [_evidence("urlEvidence", url="HTTPS://Evil.Example/login?next=%2F")],
           title="Phishing link", service="microsoftDefenderForOffice365"),
    # An evidence type graphlake has never seen: still scanned by key name, and still an evidence row.
    _alert("future-4", 1, [_evidence("quantumLinkEvidence", sourceIpAddress="198.51.100.9")],
           title="Something new", service="microsoftSentinel"),
]
OKTA = pa.table({
    "p_event_time": pa.array([NOW - dt.timedelta(days=3), NOW - dt.timedelta(days=1)], pa.timestamp("us", "UTC")),
    "p_row_id": ["okta-1", "okta-2"],
    "p_log_type": ["Okta.SystemLog"] * 2,
    "uuid": ["e-1", "e-2"],
    "displayMessage": ["User login to Okta", "Create API token"],
    "severity": ["INFO", "WARN"],
    "p_any_ip_addresses": [["203.0.113.7"], ["192.0.2.1"]],
    "p_any_usernames": [["alice@contoso.com"], ["bob"]],
})
CLOUDTRAIL = pa.table({
    "p_event_time": pa.array([NOW - dt.timedelta(days=10), NOW - dt.timedelta(days=60)], pa.timestamp("us", "UTC")),
    "p_row_id": ["ct-1", "ct-2"],
    "p_log_type": ["AWS.CloudTrail"] * 2,
    "eventID": ["ct-event-1", "ct-event-2"],
    "eventName": ["CreateAccessKey", "ConsoleLogin"],
    "p_any_ip_addresses": [["203.0.113.7"], ["203.0.113.7"]],
    "p_any_domain_names": [["evil.example"], None],
})


def _build_lake(url: str, state: str) -> None:
    lake = open_store(url)
    events = [InboundEvent(body=orjson.dumps(alert)) for alert in ALERTS]
    result = normalize_events(events, lake=lake, state=open_store(state))
    assert result.rows == len(ALERTS) and not result.quarantined
    # A redelivered batch that groups rows differently: the same two rows again, in a file of their own.
    normalize_events(events[:2], lake=lake, state=open_store(state))
    write_table(lake, OKTA, table_name="okta_systemlog")
    write_table(lake, CLOUDTRAIL, table_name="aws_cloudtrail")
    # Nothing a search can use: no p_any columns.
    write_table(lake, pa.table({"p_event_time": OKTA["p_event_time"], "p_row_id": ["n-1", "n-2"]}), table_name="notes")


@pytest.fixture(scope="module", params=["local", "azurite"])
def lake_url(request, tmp_path_factory) -> str:
    url = (str(tmp_path_factory.mktemp("lake")) if request.param == "local"
           else request.getfixturevalue("azurite").container_url())
    _build_lake(url, str(tmp_path_factory.mktemp("state")))
    return url


@pytest.fixture(scope="module")
def local_lake(tmp_path_factory) -> str:
    url = str(tmp_path_factory.mktemp("lake"))
    _build_lake(url, str(tmp_path_factory.mktemp("state")))
    return url


def _search(lake_url: str, since_days: float = 30, until: dt.datetime | None = None, all_versions: bool = False,
            access=None, **options: list[str]):
    return search(connect(lake_url, with_views=False, access=access), terms_for(options), NOW - dt.timedelta(days=since_days),
                  until or NOW + dt.timedelta(minutes=1), all_versions=all_versions)


def _ids(result) -> dict[str, list[str]]:
    return {hits.table: sorted(row[3] for row in hits.rows) for hits in result.tables}


def test_an_ip_is_found_in_every_table_that_has_it_within_the_range(lake_url: str) -> None:
    result = _search(lake_url, all_versions=True, ip=["203.0.113.7"])
    # Two versions of pth-1 (their redelivered copies counted once), Okta's login, CloudTrail's 10-day-old event;
    # not CloudTrail's 60-day-old one.
    assert _ids(result) == {"security_alerts": ["pth-1", "pth-1"], "okta_systemlog": ["e-1"],
                            "aws_cloudtrail": ["ct-event-1"]}
    assert sorted(result.searched) == ["aws_cloudtrail", "okta_systemlog", "security_alerts"]  # not "notes"
    okta = next(hits for hits in result.tables if hits.table == "okta_systemlog")
    assert okta.rows[0][1:] == (NOW - dt.timedelta(days=3), "Okta.SystemLog", "e-1", "User login to Okta", None,
                                "INFO", None, None, "ip_addresses:203.0.113.7")


def test_hits_come_newest_first_and_the_count_covers_rows_not_shown(lake_url: str) -> None:
    result = search(connect(lake_url, with_views=False), terms_for({"ip": ["203.0.113.7"]}), NOW - dt.timedelta(days=90),
                    NOW + dt.timedelta(minutes=1), limit=1)
    counts = {hits.table: (hits.count, len(hits.rows)) for hits in result.tables}
    assert counts == {"security_alerts": (1, 1), "okta_systemlog": (1, 1), "aws_cloudtrail": (2, 1)}
    cloudtrail = next(hits for hits in result.tables if hits.table == "aws_cloudtrail")
    assert cloudtrail.rows[0][3] == "ct-event-1"  # the newer of the two


@pytest.mark.parametrize(("options", "expected"), [
    ({"ip": ["2001:db8::1"]}, {"security_alerts": ["mde-2"]}),  # stored from 2001:DB8:0:0:0:0:0:1
    ({"ip": ["::ffff:198.51.100.9"]}, {"security_alerts": ["future-4"]}),  # IPv4-mapped, unknown evidence type
    ({"domain": ["ws01.CONTOSO.com."]}, {"security_alerts": ["mde-2"]}),
    ({"user": ["ALICE"]}, {"security_alerts": ["pth-1"]}),
    ({"user": ["alice@contoso.com"]}, {"security_alerts": ["pth-1"], "okta_systemlog": ["e-1"]}),
    ({"email": ["ALICE@contoso.com"]}, {"security_alerts": ["pth-1"]}),
    ({"hash": [SHA256.lower()]}, {"security_alerts": ["mde-2"]}),
    ({"hash": [MD5]}, {"security_alerts": ["mde-2"]}),
    ({"actor": [ENTRA_USER.lower()]}, {"security_alerts": ["pth-1"]}),
    ({"any": [f"{{{ENTRA_USER}}}"]}, {"security_alerts": ["pth-1"]}),
    ({"any": [SHA1.lower()]}, {"security_alerts": ["mde-2"]}),  # a SHA-1 and a Defender device id at once
    ({"any": ["Alice@CONTOSO.com"]}, {"security_alerts": ["pth-1"], "okta_systemlog": ["e-1"]}),
    ({"ip": ["192.0.2.1"], "user": ["alice"]}, {"security_alerts": ["pth-1"], "okta_systemlog": ["e-2"]}),
    ({"domain": ["nowhere.example"]}, {}),
])
def test_each_indicator_kind_matches_however_it_is_spelled(local_lake: str, options, expected) -> None:
    assert _ids(_search(local_lake, **options)) == expected


def test_time_bounds_and_tables_without_the_column(lake_url: str) -> None:
    # The URL alert is 40 days old: outside the default 30 days, inside 45.
    assert _ids(_search(lake_url, url=["https://evil.example/login?next=%2F"])) == {}
    assert _ids(_search(lake_url, since_days=45, url=["https://EVIL.example/login?next=%2F"])) == {
        "security_alerts": ["phish-3"]}
    # CloudTrail has p_any_domain_names, Okta does not: Okta is simply not searched for a domain.
    result = _search(lake_url, since_days=45, domain=["evil.example"])
    assert _ids(result) == {"security_alerts": ["phish-3"], "aws_cloudtrail": ["ct-event-1"]}
    assert "okta_systemlog" not in result.searched
    # --until: only what happened before it.
    assert _ids(_search(lake_url, ip=["203.0.113.7"], until=NOW - dt.timedelta(days=2, minutes=1))) == {
        "okta_systemlog": ["e-1"], "aws_cloudtrail": ["ct-event-1"]}


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_cli_json_lines_and_the_pivot_sql_reproduces_the_hits(lake_url: str) -> None:
    out = CliRunner().invoke(main, ["search", "--lake", lake_url, "--any", "203.0.113.7", "--format", "json"],
                             catch_exceptions=False)
    assert out.exit_code == 0
    hits = [json.loads(line) for line in out.stdout.splitlines()]
    assert sorted((h["table"], h["id"]) for h in hits) == [
        ("aws_cloudtrail", "ct-event-1"), ("okta_systemlog", "e-1"), ("security_alerts", "pth-1")]
    # The SQL printed for each table (on stderr, so stdout stays JSON) gives the same rows in `graphlake query`.
    pivots = [block.split("\n", 1)[1] for block in out.stderr.split("-- the same rows")[1:]]
    assert len(pivots) == 3
    for pivot in pivots:
        sql = pivot.split("\n\n")[0]
        query = run("query", "--lake", lake_url, "--format", "json", sql)
        rows = [json.loads(line) for line in query.output.splitlines()]
        table = sql.split('"')[1]
        assert sorted(r.get("id") or r.get("uuid") or r.get("eventID") for r in rows) == sorted(
            h["id"] for h in hits if h["table"] == table)


def test_cli_table_and_csv_formats_and_one_line_errors(lake_url: str) -> None:
    table = run("search", "--lake", lake_url, "--ip", "203.0.113.7")
    assert "security_alerts: 1 hit\n" in table.output and "okta_systemlog: 1 hit\n" in table.output
    assert 'SELECT * FROM "security_alerts"' in table.output
    assert "3 hits in 3 of 3 tables searched" in table.output
    out = CliRunner().invoke(main, ["search", "--lake", lake_url, "--hash", SHA1, "--format", "csv"])
    rows = list(csv.reader(io.StringIO(out.stdout)))
    assert rows[0][:4] == ["table", "p_event_time", "p_log_type", "id"] and [r[3] for r in rows[1:]] == ["mde-2"]
    for args, message in [
        (["--ip", "10.0.0.256"], "graphlake: --ip '10.0.0.256' is not an IPv4 or IPv6 address"),
        (["--hash", "abc123"], "graphlake: --hash 'abc123' is not an MD5, SHA-1 or SHA-256 in hex"),
        ([], "graphlake: nothing to search for"),
    ]:
        bad = run("search", "--lake", lake_url, *args)
        assert bad.exit_code == 2 and bad.output.startswith(message) and bad.output.count("\n") == 1


def test_search_and_query_start_without_pyarrow_or_the_normalizer(local_lake: str) -> None:
    # What `graphlake search` and `graphlake query` load decides how fast an analyst gets an answer.
    code = (
        "import sys; from shared.cli import main\n"
        "for args in (['search', '--lake', sys.argv[1], '--ip', '198.51.100.9', '--file-name', 'payload.dll'],\n"
        "             ['query', '--lake', sys.argv[1], 'SELECT count(*) FROM security_alerts_latest']):\n"
        "    main(args, standalone_mode=False)\n"
        "print(sorted({m for m in sys.modules if m.split('.')[0] == 'pyarrow' or m == 'normalizers.core'}))"
    )
    result = subprocess.run([sys.executable, "-c", code, local_lake], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[2])
    assert re.search(r"^\d+ hits? in ", result.stdout, re.M)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_views_deduplicate_and_keep_the_latest_version(lake_url: str) -> None:
    connection = connect(lake_url)
    files = connection.execute("SELECT count(DISTINCT filename) FROM read_parquet("
                               f"'{connection.lake.table_glob('security_alerts')}', filename = true)").fetchall()
    assert files[0][0] > 1  # the redelivered copy sits in its own file...
    assert connection.execute("SELECT count(*), count(DISTINCT p_row_id) FROM security_alerts").fetchall() == [
        (len(ALERTS), len(ALERTS))]  # ...and is read once
    latest = connection.execute("SELECT id, status FROM security_alerts_latest ORDER BY id").fetchall()
    assert latest == [("future-4", "new"), ("mde-2", "new"), ("phish-3", "new"), ("pth-1", "resolved")]


def test_evidence_view_has_a_typed_row_per_evidence_item(lake_url: str) -> None:
    connection = connect(lake_url)
    cursor = connection.execute(
        "SELECT alert_id, evidence_type, verdict, roles, ip, country, account_name, domain, upn, sid, entra_user_id,"
        " device_dns_name, mde_device_id, file_name, file_path, sha1, sha256, md5, url, evidence"
        " FROM security_alert_evidence ORDER BY alert_id, lastUpdateDateTime, evidence_index")
    rows = [dict(zip([d[0] for d in cursor.description], row)) for row in cursor.fetchall()]
    assert [(r["alert_id"], r["evidence_type"]) for r in rows] == [
        ("future-4", "quantumLinkEvidence"), ("mde-2", "fileEvidence"), ("mde-2", "deviceEvidence"),
        ("phish-3", "urlEvidence"), ("pth-1", "ipEvidence"), ("pth-1", "userEvidence"), ("pth-1", "ipEvidence"),
        ("pth-1", "userEvidence")]
    future, file, device, url, ip, user = rows[:6]
    assert future["ip"] is None and json.loads(future["evidence"])["sourceIpAddress"] == "198.51.100.9"
    assert (file["file_name"], file["file_path"], file["sha256"], file["sha1"], file["md5"]) == (
        "payload.dll", "C:\\ProgramData", SHA256, SHA1, MD5)
    assert (device["device_dns_name"], device["mde_device_id"]) == ("WS01.Contoso.com", SHA1.lower())
    assert url["url"] == "HTTPS://Evil.Example/login?next=%2F"
    assert (ip["ip"], ip["country"], ip["verdict"], ip["roles"]) == ("203.0.113.7", "NL", "suspicious", ["attacker"])
    assert (user["account_name"], user["domain"], user["upn"], user["entra_user_id"], user["sid"]) == (
        "Alice", "contoso.com", "Alice@Contoso.COM", ENTRA_USER, "S-1-5-21-1004336348-1177238915-682003330-512")


def test_query_explain_prints_the_views_and_the_plan(lake_url: str) -> None:
    out = run("query", "--lake", lake_url, "--explain", "SELECT count(*) FROM security_alerts_latest")
    assert out.exit_code == 0
    for view in ("security_alerts", "security_alerts_latest", "security_alert_evidence", "okta_systemlog"):
        assert f"CREATE VIEW {view} AS" in out.output or f'CREATE VIEW "{view}" AS' in out.output
    assert "PARTITION BY p_row_id" in out.output
    assert "SELECT count(*) FROM security_alerts_latest;" in out.output
    # DuckDB's plan of that query, not just the view text: its aggregate and its parquet scan nodes.
    assert "Ungrouped Aggregate" in out.output and "Function: READ_PARQUET" in out.output


def test_an_azure_lake_by_az_url_with_the_account_from_the_environment(azurite, tmp_path, monkeypatch) -> None:
    url = azurite.container_url()
    _build_lake(url, str(tmp_path / "state"))
    container = url.rsplit("/", 1)[1]
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={EMULATOR_KEY};BlobEndpoint={azurite.endpoint};"))
    from shared.core.settings import load_lake_access

    assert _ids(_search(f"az://{container}", access=load_lake_access(), ip=["203.0.113.7"]))["okta_systemlog"] == \
        ["e-1"]
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    bad = run("search", "--lake", f"az://{container}", "--ip", "203.0.113.7")
    assert bad.exit_code == 2 and "does not say which storage account" in bad.output


def test_a_lake_that_is_not_there_is_one_line(tmp_path, azurite) -> None:
    out = run("search", "--lake", str(tmp_path / "nope"), "--ip", "203.0.113.7")
    assert out.exit_code == 2 and out.output.count("\n") == 1 and "no such folder" in out.output
    # A mistyped container is not "no hits".
    out = run("search", "--lake", azurite.container_url("no-such-lake"), "--ip", "203.0.113.7")
    assert out.exit_code == 2 and out.output.count("\n") == 1 and "holds no tables" in out.output
    out = run("query", "--lake", "ftp://example.com/lake", "SELECT 1")
    assert out.exit_code == 2 and "unsupported scheme ftp://" in out.output


def test_days_outside_the_range_are_never_opened(tmp_path) -> None:
    lake = open_store(str(tmp_path))
    write_table(lake, OKTA, table_name="okta_systemlog")
    old = NOW - dt.timedelta(days=45)
    lake.write(f"okta_systemlog/year={old:%Y}/month={old:%m}/day={old:%d}/part-broken.parquet", b"not parquet")
    assert _ids(_search(str(tmp_path), ip=["203.0.113.7"])) == {"okta_systemlog": ["e-1"]}
    # Inside the range the broken file is read, and the error names it in one line.
    out = run("search", "--lake", str(tmp_path), "--ip", "203.0.113.7", "--since", "60d")
    assert out.exit_code == 2 and out.output.count("\n") == 1 and "part-broken.parquet" in out.output


def test_bounds_with_an_offset_read_the_utc_days_they_cover(tmp_path) -> None:
    late = pa.table({"p_event_time": pa.array([dt.datetime(2026, 3, 4, 22, tzinfo=UTC)], pa.timestamp("us", "UTC")),
                     "p_row_id": ["late-1"], "uuid": ["late-1"], "p_any_ip_addresses": [["192.0.2.9"]]})
    write_table(open_store(str(tmp_path)), late, table_name="okta_systemlog")
    plus_five = dt.timezone(dt.timedelta(hours=5))
    # 02:00 on the 5th at +05:00 is 21:00 on the 4th in UTC: the 4th's partition holds the hit.
    result = search(connect(str(tmp_path), with_views=False), terms_for({"ip": ["192.0.2.9"]}),
                    dt.datetime(2026, 3, 5, 2, tzinfo=plus_five), dt.datetime(2026, 3, 6, tzinfo=plus_five))
    assert _ids(result) == {"okta_systemlog": ["late-1"]}


def test_a_file_of_another_shape_beside_the_tables_is_ignored(tmp_path) -> None:
    write_table(open_store(str(tmp_path)), OKTA, table_name="okta_systemlog")
    pq.write_table(OKTA, tmp_path / "okta_systemlog" / "stray.parquet")  # not in a day partition
    (tmp_path / "README.txt").write_text("not a table")
    assert _ids(_search(str(tmp_path), ip=["203.0.113.7"])) == {"okta_systemlog": ["e-1"]}


def _json_path(item: dict, path: str):
    value = item
    for key in path.removeprefix("$.").split("."):
        value = value.get(key.strip('"')) if isinstance(value, dict) else None
    return None if value is None else value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def test_every_evidence_type_the_simulator_emits_gets_typed_rows(store_url: str, tmp_path) -> None:
    from normalizers.evidence_columns import ANY, EVIDENCE_COLUMNS
    from simulator.tenant import Tenant

    _, page = Tenant(seed=4, alerts=600, days=7.0).query_json(top=600, include_unknown_enum_members=True)
    normalize_events([InboundEvent(body=body) for body in page], lake=open_store(store_url),
                     state=open_store(str(tmp_path / "state")))
    # What the view must give, worked out in Python from the same table of JSON paths.
    expected = {}
    for alert in map(orjson.loads, page):
        for index, item in enumerate(alert.get("evidence") or []):
            kind = item["@odata.type"].removeprefix("#microsoft.graph.security.")
            typed = {}
            for column, sources in EVIDENCE_COLUMNS.items():
                values = (_json_path(item, path) for types, path in sources if types == ANY or kind in types)
                typed[column] = next((v for v in values if v not in (None, "")), None)
            expected[(alert["id"], index)] = (kind, typed)
    cursor = connect(store_url).execute(
        f"SELECT alert_id, evidence_index, evidence_type, {', '.join(EVIDENCE_COLUMNS)} FROM security_alert_evidence")
    actual = {(row[0], row[1]): (row[2], dict(zip(EVIDENCE_COLUMNS, row[3:]))) for row in cursor.fetchall()}
    assert actual == expected
    kinds = {kind for kind, _ in expected.values()}
    assert len(kinds) >= 15  # the simulator's mix covers the evidence types of every provider
    filled = {kind for kind, typed in actual.values() if any(v is not None for v in typed.values())}
    assert kinds - filled <= {"mailClusterEvidence", "azureResourceEvidence", "aiAgentEvidence", "aiPromptEvidence"}


@pytest.mark.parametrize(("url", "account", "host", "root"), [
    ("https://contosolake.blob.core.windows.net/lake", "contosolake", "contosolake.blob.core.windows.net", "lake"),
    ("https://gov.blob.core.usgovcloudapi.net/lake/alerts/", "gov", "gov.blob.core.usgovcloudapi.net", "lake/alerts"),
    ("abfss://lake@contosolake.dfs.core.windows.net/prod", "contosolake", "contosolake.blob.core.windows.net",
     "lake/prod"),
])
def test_azure_lake_urls_name_account_endpoint_and_prefix(url: str, account: str, host: str, root: str) -> None:
    from shared.read.lake_reader import open_lake

    lake = open_lake(url)  # no request yet: listing is the first
    assert (lake.filesystem.account_name, lake.filesystem.account_host, lake.root) == (account, host, root)
    assert lake.table_glob("t") == f"abfs://{root}/t/year=*/month=*/day=*/*.parquet"


@pytest.mark.parametrize(("url", "message"), [
    ("http://contosolake.blob.core.windows.net/lake", "uses plain http"),
    ("https://contosolake.blob.core.windows.net/Lake_1", "not a valid container name"),
    ("abfs://UPPER@contosolake.dfs.core.windows.net", "not a valid container name"),
    ("file://fileserver/lake", "names a remote host"),  # as the writers' stores refuse it
])
def test_bad_lake_urls_are_one_line(url: str, message: str) -> None:
    out = run("query", "--lake", url, "SELECT 1")
    assert out.exit_code == 2 and out.output.count("\n") == 1 and message in out.output


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def _cli_process(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, float]:
    import os
    import time

    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "shared.cli", *args], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2], env={**os.environ, **(env or {})},
                          stdin=subprocess.DEVNULL)
    return proc, time.monotonic() - started


# A made-up account key: the lake is never reached, so it is never checked.
_FAKE_KEY = "bm90LWEta2V5LW5vdC1hLWtleS1ub3QtYS1rZXktbm90LWEta2V5LW5vdC1hLWtleQ=="


@pytest.mark.parametrize("case", ["closed local port", "unresolvable name", "port that never answers"])
@pytest.mark.parametrize("command", ["search", "query"])
def test_a_lake_that_cannot_be_reached_fails_fast_in_one_line(case: str, command: str) -> None:
    import socket

    silent = socket.socket()  # listens, so connections are made, but never accepts nor answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1] if case == "port that never answers" else _closed_port()
    if case != "unresolvable name":
        lake, env, account, credential = (f"http://127.0.0.1:{port}/devstoreaccount1/lake", {}, "devstoreaccount1",
                                          "emulator")
    else:  # .invalid never resolves (RFC 6761): no real account is asked, whatever the network.
        lake, account, credential = "az://lake", "nosuchaccount", "AZURE_STORAGE_CONNECTION_STRING"
        env = {"AZURE_STORAGE_CONNECTION_STRING": "DefaultEndpointsProtocol=https;AccountName=nosuchaccount;"
                                                  f"AccountKey={_FAKE_KEY};EndpointSuffix=core.invalid"}
    args = ["--ip", "1.2.3.4"] if command == "search" else ["SELECT 1"]
    with silent:
        proc, seconds = _cli_process(command, "--lake", lake, *args, env=env)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.count("\n") == 1 and proc.stdout == "", proc.stderr[-3000:]
    assert account in proc.stderr and credential in proc.stderr, proc.stderr
    assert seconds < 15


def test_debug_shows_the_traceback_of_a_one_line_error(tmp_path) -> None:
    proc, _ = _cli_process("query", "--lake", str(tmp_path / "nope"), "SELECT 1")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "no such folder" in proc.stderr
    proc, _ = _cli_process("--debug", "query", "--lake", str(tmp_path / "nope"), "SELECT 1")
    assert proc.returncode == 2 and "Traceback" in proc.stderr and "no such folder" in proc.stderr


@pytest.mark.parametrize("sql", ["", "   ", ";", "/* just a comment */"])
def test_a_query_with_no_statement_is_one_line(local_lake: str, sql: str) -> None:
    out = CliRunner().invoke(main, ["query", "--lake", local_lake, sql])
    assert out.exit_code == 2, out.output
    assert out.output.count("\n") == 1 and out.output.startswith("graphlake: ") and "SQL" in out.output


@pytest.mark.parametrize("sql", [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM glob('/etc/*')",
    "COPY (SELECT 1 AS a) TO '{tmp}/out.csv'",
    "COPY (SELECT 1 AS a) TO '{lake}/inside.csv'",
    "ATTACH '{tmp}/other.duckdb'",
    "EXPORT DATABASE '{tmp}/export'",
    "SET enable_external_access = true",
    "INSTALL httpfs",
    "EXPLAIN ANALYZE COPY (SELECT 1 AS a) TO '{lake}/inside.csv'",
    "explain analyze /* wrapped */ COPY (SELECT 1 AS a) TO '{lake}/inside.csv'",
    "EXPLAIN (FORMAT json) COPY (SELECT 1 AS a) TO '{lake}/inside.csv'",
    "PRAGMA enable_profiling",
])
def test_query_reads_the_lake_and_nothing_else(lake_url: str, tmp_path, sql: str) -> None:
    local_lake_path = lake_url if "://" not in lake_url else str(tmp_path / "not-the-lake")
    out = run("query", "--lake", lake_url, sql.format(tmp=tmp_path, lake=local_lake_path))
    assert out.exit_code == 2 and out.output.count("\n") == 1, out.output
    assert out.output.startswith("graphlake: ") and "--allow-local-files" in out.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [] and not Path(local_lake_path, "inside.csv").exists()
    # The lake itself still reads.
    ok = run("query", "--lake", lake_url, "--format", "json", "SELECT count(*) AS n FROM security_alerts_latest")
    assert ok.exit_code == 0 and json.loads(ok.output) == {"n": 4}


def test_allow_local_files_lifts_the_sandbox(local_lake: str, tmp_path) -> None:
    (tmp_path / "ips.csv").write_text("ip\n203.0.113.7\n")
    sql = (f"SELECT DISTINCT a.id FROM security_alerts a JOIN read_csv('{tmp_path}/ips.csv') i "
           "ON list_contains(a.p_any_ip_addresses, i.ip)")
    assert run("query", "--lake", local_lake, sql).exit_code == 2
    out = run("query", "--lake", local_lake, "--allow-local-files", "--format", "json", sql)
    assert out.exit_code == 0 and [json.loads(line) for line in out.output.splitlines()] == [{"id": "pth-1"}]
    copy = run("query", "--lake", local_lake, "--allow-local-files", f"COPY (SELECT 1 AS a) TO '{tmp_path}/a.csv'")
    assert copy.exit_code == 0 and (tmp_path / "a.csv").read_text() == "a\n1\n"


def test_one_row_per_alert_its_latest_version_or_every_version(lake_url: str) -> None:
    latest = _search(lake_url, ip=["203.0.113.7"])
    [alerts] = [hits for hits in latest.tables if hits.table == "security_alerts"]
    status, updated = HIT_COLUMNS.index("status"), HIT_COLUMNS.index("lastUpdateDateTime")
    assert [(r[3], r[status], r[updated]) for r in alerts.rows] == [
        ("pth-1", "resolved", dt.datetime.fromisoformat(_time(2, minutes=10)))]
    every = _search(lake_url, ip=["203.0.113.7"], all_versions=True)
    [alerts] = [hits for hits in every.tables if hits.table == "security_alerts"]
    assert [(r[status], r[updated]) for r in alerts.rows] == [
        ("resolved", dt.datetime.fromisoformat(_time(2, minutes=10))), ("new", dt.datetime.fromisoformat(_time(2)))]
    out = run("search", "--lake", lake_url, "--ip", "203.0.113.7", "--all-versions")
    assert "security_alerts: 2 hits" in out.output and "lastUpdateDateTime" in out.output and "resolved" in out.output
    # The pivot SQL printed for the default gives the same one row per alert.
    pivot = run("search", "--lake", lake_url, "--ip", "203.0.113.7", "--format", "json").stderr
    sql = next(block for block in pivot.split("-- the same rows")[1:] if '"security_alerts"' in block)
    sql = sql.split("\n", 1)[1].split("\n\n")[0]
    rows = run("query", "--lake", lake_url, "--format", "json", sql).output.splitlines()
    assert [(json.loads(r)["id"], json.loads(r)["status"]) for r in rows] == [("pth-1", "resolved")]


def test_no_partition_in_the_range_names_the_days_the_lake_holds(lake_url: str) -> None:
    out = run("search", "--lake", lake_url, "--ip", "203.0.113.7", "--since", "400d", "--until", "300d")
    assert out.exit_code == 0
    first, last = (NOW - dt.timedelta(days=60)).date(), (NOW - dt.timedelta(days=1)).date()
    assert out.output.splitlines()[-1].startswith("0 hits: no table of the lake has a day from ")
    assert f"the lake holds {first} to {last}" in out.output


def test_an_empty_string_never_wins_over_a_value_in_the_evidence_view(tmp_path) -> None:
    # Graph often sends "" for what it does not know; the mailbox's own upn must then win over its account's "".
    mailbox = _evidence("mailboxEvidence", primaryAddress="bob@contoso.com", upn="bob@contoso.com",
                        userAccount={"accountName": "bob", "domainName": "", "userPrincipalName": "",
                                     "azureAdUserId": "", "userSid": ""})
    normalize_events([InboundEvent(body=orjson.dumps(_alert("mbx-1", 1, [mailbox])))], lake=open_store(str(tmp_path)),
                     state=open_store(str(tmp_path / "state")))
    rows = connect(str(tmp_path)).execute(
        "SELECT upn, mailbox, account_name, domain, sid FROM security_alert_evidence").fetchall()
    assert rows == [("bob@contoso.com", "bob@contoso.com", "bob", None, None)]


def test_a_lake_that_refuses_the_credential_is_one_line(azurite) -> None:
    url = azurite.container_url()
    _build_lake(url, tempfile.mkdtemp())
    env = {"AZURE_STORAGE_CONNECTION_STRING": "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                                              f"AccountKey={_FAKE_KEY};BlobEndpoint={azurite.endpoint};"}
    proc, seconds = _cli_process("search", "--lake", f"az://{url.rsplit('/', 1)[1]}", "--ip", "203.0.113.7", env=env)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-3000:]
    assert "devstoreaccount1" in proc.stderr and "AZURE_STORAGE_CONNECTION_STRING" in proc.stderr
    assert "403" in proc.stderr and seconds < 15



def test_defender_for_office_mail_evidence_has_its_senders_and_message_ids(tmp_path) -> None:
    # Graph's analyzedMessageEvidence: the P1 (envelope) sender may be empty where the P2 (From header) one is not.
    message = _evidence("analyzedMessageEvidence", networkMessageId="5a6b7c8d-1111-4222-8333-944455556666",
                        internetMessageId="<CAFE1234@mail.fabrikam.example>", senderIp="198.51.100.25",
                        recipientEmailAddress="alice@contoso.com",
                        p1Sender={"displayName": "", "domainName": "", "emailAddress": ""},
                        p2Sender={"displayName": "Payroll", "domainName": "fabrikam.example",
                                  "emailAddress": "payroll@fabrikam.example"})
    spoofed = _evidence("analyzedMessageEvidence", networkMessageId="6b7c8d9e-3333-4444-8555-966677778888",
                        internetMessageId="<BEEF5678@bounce.tailspin.example>", recipientEmailAddress="bob@contoso.com",
                        p1Sender={"emailAddress": "bounce@tailspin.example"},
                        p2Sender={"emailAddress": "ceo@contoso.com"})
    submission = _evidence("submissionMailEvidence", networkMessageId="0f0e0d0c-2222-4333-8444-955566667777",
                           sender="bounce@fabrikam.example", recipient="bob@contoso.com")
    alert = _alert("mdo-1", 1, [message, spoofed, submission], title="Email messages containing malicious URL removed",
                   service="microsoftDefenderForOffice365")
    normalize_events([InboundEvent(body=orjson.dumps(alert))], lake=open_store(str(tmp_path)),
                     state=open_store(str(tmp_path / "state")))
    connection = connect(str(tmp_path))
    rows = connection.execute(
        "SELECT evidence_type, sender, recipient, network_message_id, internet_message_id, ip "
        "FROM security_alert_evidence ORDER BY evidence_index").fetchall()
    assert rows == [
        ("analyzedMessageEvidence", "payroll@fabrikam.example", "alice@contoso.com",
         "5a6b7c8d-1111-4222-8333-944455556666", "<CAFE1234@mail.fabrikam.example>", "198.51.100.25"),
        ("analyzedMessageEvidence", "bounce@tailspin.example", "bob@contoso.com",
         "6b7c8d9e-3333-4444-8555-966677778888", "<BEEF5678@bounce.tailspin.example>", None),
        ("submissionMailEvidence", "bounce@fabrikam.example", "bob@contoso.com", "0f0e0d0c-2222-4333-8444-955566667777",
         None, None)]
    # The pivot the README shows: from a message id to the alerts that name it.
    assert connection.execute("SELECT DISTINCT alert_id FROM security_alert_evidence "
                              "WHERE network_message_id = '0f0e0d0c-2222-4333-8444-955566667777'").fetchall() == [
        ("mdo-1",)]


def test_a_local_address_is_searched_with_a_note_that_no_alert_indexes_it(local_lake: str) -> None:
    out = run("search", "--lake", local_lake, "--ip", "::ffff:127.0.0.1", "--ip", "203.0.113.7")
    assert out.exit_code == 0
    assert "security_alerts: 1 hit" in out.output  # the routable address is still searched
    [note] = [line for line in out.output.splitlines() if line.startswith("note:")]
    assert "127.0.0.1" in note and "203.0.113.7" not in note and "security_alert_evidence" in note


def test_a_broadcast_address_is_searched_with_a_note_naming_its_kind(local_lake: str) -> None:
    out = run("search", "--lake", local_lake, "--ip", "255.255.255.255")
    assert out.exit_code == 0
    [note] = [line for line in out.output.splitlines() if line.startswith("note:")]
    assert "255.255.255.255 is a broadcast address" in note


def test_zero_hits_say_what_was_searched_and_counts_agree_in_number(local_lake: str) -> None:
    none = run("search", "--lake", local_lake, "--ip", "198.51.100.254")
    assert none.exit_code == 0
    last = none.output.strip().splitlines()[-1]
    assert last.startswith("0 hits in all ") and "tables searched (" in last and " of " not in last
    one = run("search", "--lake", local_lake, "--ip", "203.0.113.7", "--format", "json")
    assert re.search(r"^\d+ hits? in \d+ of \d+ tables? searched", one.output, re.M) and "1 hits" not in one.output
    rows = run("query", "--lake", local_lake, "SELECT 1 AS a")
    assert rows.output.strip().endswith("(1 row)")
