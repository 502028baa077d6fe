"""`graphlake search` beyond the p_any kinds: file names, command lines, message ids, cloud apps, app ids and Azure
resource ids, matched in the evidence view's columns of the alerts table.

The lake holds the golden alerts (normalizers/golden/*.input.json, written by the real normalizer), two alerts of
our own in November 2026 whose versions test the latest-version rule, and an Okta-like table with no evidence.
Values are searched spelled otherwise than Graph sent them, and each has a near miss that must find nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import orjson
import pyarrow as pa
import pytest
from click.testing import CliRunner

from shared.cli import main
from shared.core.storage import open_store
from shared.land.lake_writer import write_table
from shared.land.normalize import InboundEvent, normalize_events
from shared.read.query import connect
from shared.read.search import HIT_COLUMNS, search, terms_for

UTC = dt.UTC
GOLDEN = Path(__file__).resolve().parents[2] / "normalizers" / "golden"
SINCE, UNTIL = dt.datetime(2026, 4, 1, tzinfo=UTC), dt.datetime(2026, 12, 1, tzinfo=UTC)
PULLED = dt.datetime(2026, 11, 3, 9, tzinfo=UTC)

HIDDEN_TOOL = "da637551227677560813_-961444813"  # endpoint: file, process, device on an Azure VM
ENCODED_POWERSHELL = "ra638917406811234567_-1840927716"  # defender_xdr: powershell.exe started by winword.exe
PHISH = "fa51f3e0bc-8f2a-4c41-a6b5-0d3e2c1b9a87"  # office365: analyzedMessageEvidence
SUBMISSION = "fa0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e"  # office365: submissionMailEvidence
OFFICE_365 = "ca7a2c6d4e8f0a1b2c3d4e5f6a7b8c9d0e"  # cloud_apps: cloudApplicationEvidence, appId 11161
MAIL_HELPER = "ca5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b"  # cloud_apps: oauthApplicationEvidence
VM_WEB = "dc2518470165431224_8f3b0a6e-2b7f-4d1e-9a4c-5e6f7a8b9c0d"  # cloud: azureResourceEvidence of a VM
NTDS = "aa0e0d0c0b-0a09-4807-8605-040302010000"  # identity: ntds.dit read
OPENAI = "dc2518470199999999_5e4d3c2b-1a09-4f8e-8d7c-6b5a4f3e2d1c"  # cloud: azureResourceEvidence, same subscription
SUBSCRIPTION = "8700d3a3-3bb7-4fbe-a090-488a1ad04161"
STORAGE = "/subscriptions/11111111-2222-4333-8444-555555555555/resourceGroups/rg-data/providers/Microsoft.Storage/" \
          "storageAccounts/stdata01"


def _evidence(kind: str, **properties) -> dict:
    return {"@odata.type": f"#microsoft.graph.security.{kind}", "verdict": "suspicious", "roles": [],
            "remediationStatus": "none", **properties}


def _ours(alert_id: str, created: str, updated: str, status: str, evidence: list[dict]) -> dict:
    return {"id": alert_id, "tenantId": "t-1", "serviceSource": "microsoftDefenderForCloud", "title": "Ours",
            "severity": "high", "status": status, "createdDateTime": created, "lastUpdateDateTime": updated,
            "evidence": evidence}


DROPPER = _evidence("fileEvidence", fileDetails={"fileName": "dropper.exe", "filePath": "C:\\Temp"})
STORAGE_ACCOUNT = _evidence("azureResourceEvidence", resourceId=STORAGE, resourceName="stdata01",
                            resourceType="Microsoft.Storage/storageAccounts")
IP = _evidence("ipEvidence", ipAddress="198.51.100.71")
# pivot-1's first version names the dropper (and an IP, to compare with a p_any kind); the version Graph showed
# next, resolved, no longer does. The storage account is in both.
OLD = _ours("pivot-1", "2026-11-03T08:00:00Z", "2026-11-03T08:10:00Z", "new", [DROPPER, IP, STORAGE_ACCOUNT])
NEW = _ours("pivot-1", "2026-11-03T08:00:00Z", "2026-11-03T08:20:00Z", "resolved", [STORAGE_ACCOUNT])
LATER = _ours("pivot-2", "2026-11-10T08:00:00Z", "2026-11-10T08:00:00Z", "new",
              [_evidence("ipEvidence", ipAddress="198.51.100.72")])
OKTA = pa.table({
    "p_event_time": pa.array([dt.datetime(2026, 11, 20, 12, tzinfo=UTC)], pa.timestamp("us", "UTC")),
    "p_row_id": ["okta-1"], "p_log_type": ["Okta.SystemLog"], "uuid": ["e-1"],
    "p_any_ip_addresses": [["198.51.100.71"]],
})


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("pivots")
    store, state = open_store(str(root / "lake")), open_store(str(root / "state"))
    golden = [a for path in sorted(GOLDEN.glob("*.input.json")) for a in orjson.loads(path.read_bytes())]
    normalize_events([InboundEvent(orjson.dumps(a)) for a in golden], lake=store, state=state)
    for doc, pulled in ((OLD, PULLED), (NEW, PULLED + dt.timedelta(minutes=15)), (LATER, PULLED)):
        normalize_events([InboundEvent(orjson.dumps(doc), properties={"pulled_at": pulled.isoformat()})],
                         lake=store, state=state)
    write_table(store, OKTA, table_name="okta_systemlog")
    return str(root / "lake")


def _search(lake: str, all_versions: bool = False, **options: list[str]):
    return search(connect(lake, with_views=False), terms_for(options), SINCE, UNTIL, all_versions=all_versions)


def _hits(result) -> dict[str, list[tuple[str, str]]]:
    """table -> (id, matched) per row."""
    matched = HIT_COLUMNS.index("matched")
    return {hits.table: sorted((row[3], row[matched]) for row in hits.rows) for hits in result.tables}


def run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize(("option", "value", "near_miss", "expected"), [
    ("file_name", "HIDDEN_TOOL.EXE", "hidden_tool.ex", [(HIDDEN_TOOL, "file_name:hidden_tool.exe")]),
    ("file_name", "WinWord.exe", "winword", [(ENCODED_POWERSHELL, "parent_file_name:winword.exe")]),
    ("command_line", "-ENC sqbfafga", "-enc SQBFAFgB", [(ENCODED_POWERSHELL,
                                                         "process_command_line:powershell.exe -enc SQBFAFgA")]),
    ("command_line", "--connect 203.0.113.250", "--connect 203.0.113.251",
     [(HIDDEN_TOOL, 'process_command_line:"hidden_tool.exe" --connect 203.0.113.250')]),
    ("message_id", "7E5A2B9C-1D3F-4E6A-8B0C-2D4F6A8B0C1E", "7e5a2b9c-1d3f-4e6a-8b0c-2d4f6a8b0c1f",
     [(PHISH, "network_message_id:7e5a2b9c-1d3f-4e6a-8b0c-2d4f6a8b0c1e")]),
    ("message_id", "PH0PR11MB1234.contoso@fabrikam.com", "<PH0PR11MB1234.contoso@fabrikam.co>",
     [(PHISH, "internet_message_id:<PH0PR11MB1234.contoso@fabrikam.com>")]),
    ("message_id", "<1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d>", "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5",
     [(SUBMISSION, "network_message_id:1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d")]),
    ("cloud_app", "office 365", "Office 36", [(OFFICE_365, "cloud_app:Office 365")]),
    ("cloud_app", "11161", "1116", [(OFFICE_365, "app_id:11161")]),
    ("cloud_app", "CONTOSO MAIL HELPER", "Contoso Mail", [(MAIL_HELPER, "cloud_app:Contoso Mail Helper")]),
    ("app_id", "{4c5d6e7f-8091-4A2B-b3c4-d5e6f7a8b9c0}", "4c5d6e7f-8091-4a2b-b3c4-d5e6f7a8b9c1",
     [(MAIL_HELPER, "app_id:4C5D6E7F-8091-4a2b-b3c4-d5e6f7a8b9c0")]),
    ("resource_id", f"/SUBSCRIPTIONS/{SUBSCRIPTION}/resourceGroups/RG-WEB/providers/Microsoft.Compute/"
                    "virtualMachines/VM-WEB-01/",
     f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/vm-web-0",
     [(VM_WEB, f"azure_resource_id:/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-web/providers/Microsoft.Compute/"
               "virtualMachines/vm-web-01")]),
    ("resource_id", "CA1B0D41-5A3B-4D95-B48B-F220AED11D78", "ca1b0d41-5a3b-4d95-b48b-f220aed11d79",
     [(HIDDEN_TOOL, "vm_id:ca1b0d41-5a3b-4d95-b48b-f220aed11d78")]),
])
def test_each_evidence_kind_finds_its_alert_and_not_a_near_miss(lake: str, option: str, value: str, near_miss: str,
                                                                 expected) -> None:
    assert _hits(_search(lake, **{option: [value]})) == {"security_alerts": expected}
    assert _hits(_search(lake, **{option: [near_miss]})) == {}


def test_a_subscription_id_finds_the_vms_and_the_resources_in_it(lake: str) -> None:
    ids = {alert_id for alert_id, _ in _hits(_search(lake, resource_id=[SUBSCRIPTION.upper()]))["security_alerts"]}
    # The VM a Defender device runs on names its subscription; Azure resources name it in their resource id only.
    assert ids == {HIDDEN_TOOL, VM_WEB, OPENAI}
    assert _search(lake, resource_id=["8700d3a3-3bb7-4fbe-a090-488a1ad0416"]).tables == []


def test_the_options_are_or_ed_with_each_other_and_with_the_p_any_kinds(lake: str) -> None:
    result = _search(lake, file_name=["ntds.dit"], cloud_app=["Office 365"], ip=["198.51.100.72"])
    assert _hits(result)["security_alerts"] == [(NTDS, "file_name:ntds.dit"), (OFFICE_365, "cloud_app:Office 365"),
                                                ("pivot-2", "ip_addresses:198.51.100.72")]


@pytest.mark.parametrize(("value", "expected"), [
    ("Hidden_Tool.exe", HIDDEN_TOOL),
    ("<PH0PR11MB1234.contoso@fabrikam.com>", PHISH),
    ("Office 365", OFFICE_365),
    ("Contoso Mail Helper", MAIL_HELPER),
    (f"/subscriptions/{SUBSCRIPTION}/resourcegroups/rg-ai/providers/microsoft.cognitiveservices/accounts/oai-travel",
     OPENAI),
])
def test_any_tries_the_evidence_kinds_with_whole_values(lake: str, value: str, expected: str) -> None:
    [(alert_id, matched)] = _hits(_search(lake, any=[value]))["security_alerts"]
    assert alert_id == expected and matched.split(":", 1)[0] in {"file_name", "internet_message_id", "cloud_app",
                                                                 "azure_resource_id"}


def test_any_matches_no_part_of_a_command_line(lake: str) -> None:
    # Substrings are the --command-line option's alone: --any would otherwise match every alert with a short value.
    assert _search(lake, any=["SQBFAFgA"]).tables == []
    assert _search(lake, any=["powershell.exe -enc SQBFAFgA"]).tables == []
    assert _hits(_search(lake, command_line=["SQBFAFgA"]))["security_alerts"][0][0] == ENCODED_POWERSHELL
    # Spaces around a part are part of it: a word alone, not inside another.
    assert _hits(_search(lake, command_line=[" -ENC "]))["security_alerts"][0][0] == ENCODED_POWERSHELL
    assert _search(lake, command_line=[" -en "]).tables == []


def test_the_latest_version_rule_is_the_one_the_p_any_kinds_follow(lake: str) -> None:
    status, updated = HIT_COLUMNS.index("status"), HIT_COLUMNS.index("lastUpdateDateTime")

    def rows(all_versions: bool = False, **options):
        [hits] = [h for h in _search(lake, all_versions=all_versions, **options).tables if h.table == "security_alerts"]
        return [(r[3], r[status], r[updated].strftime("%H:%M")) for r in hits.rows]

    # Only the older version names the dropper (and the IP): the alert shows as that version, the latest of those
    # that match, with or without --all-versions, whichever kind matched.
    assert rows(file_name=["dropper.exe"]) == rows(ip=["198.51.100.71"]) == [("pivot-1", "new", "08:10")]
    assert rows(file_name=["dropper.exe"], all_versions=True) == [("pivot-1", "new", "08:10")]
    # Both versions name the storage account: one row, the latest (resolved); --all-versions shows both.
    assert rows(resource_id=[STORAGE]) == [("pivot-1", "resolved", "08:20")]
    assert rows(resource_id=[STORAGE], all_versions=True) == [("pivot-1", "resolved", "08:20"),
                                                              ("pivot-1", "new", "08:10")]


def test_the_pivot_sql_gives_the_same_rows_in_graphlake_query(lake: str) -> None:
    out = run("search", "--lake", lake, "--since", "2026-04-01", "--until", "2026-12-01", "--format", "json",
              "--resource-id", SUBSCRIPTION, "--command-line", "SQBFAFgA", "--resource-id", STORAGE,
              "--message-id", "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", "--ip", "198.51.100.72")
    assert out.exit_code == 0, out.output
    hits = sorted(json.loads(line)["id"] for line in out.stdout.splitlines())
    assert hits == sorted([HIDDEN_TOOL, VM_WEB, OPENAI, ENCODED_POWERSHELL, "pivot-1", SUBMISSION, "pivot-2"])
    [block] = [b for b in out.stderr.split("-- the same rows")[1:] if '"security_alerts"' in b]
    sql = block.split("\n", 1)[1].split("\n\n")[0]
    assert "FROM security_alert_evidence" in sql
    query = run("query", "--lake", lake, "--format", "json", sql)
    assert query.exit_code == 0, query.output
    rows = [json.loads(line) for line in query.stdout.splitlines()]
    assert sorted(r["id"] for r in rows) == hits
    assert [r["status"] for r in rows if r["id"] == "pivot-1"] == ["resolved"]  # the latest version that matches


def test_zero_hits_name_the_tables_and_days_searched_and_those_not_searched_for_evidence(lake: str) -> None:
    span = ["--since", "2026-11-01", "--until", "2026-12-01"]
    out = run("search", "--lake", lake, *span, "--file-name", "nothing.exe", "--ip", "192.0.2.200")
    assert out.exit_code == 0, out.output
    assert out.output.splitlines()[-1] == (
        "0 hits in all 2 tables searched (okta_systemlog, security_alerts), 2026-11-01 00:00 to 2026-12-01 00:00 UTC, "
        "day partitions 2026-11-03 to 2026-11-20 read")
    [note] = [line for line in out.output.splitlines() if line.startswith("note:")]
    assert "file names" in note and "okta_systemlog does not hold" in note
    # Evidence kinds alone: the Okta table is not read at all, and the note says why.
    out = run("search", "--lake", lake, *span, "--message-id", "<none@example.com>", "--app-id", SUBSCRIPTION)
    lines = out.output.splitlines()
    assert lines[-1] == ("0 hits in the 1 table searched (security_alerts), 2026-11-01 00:00 to 2026-12-01 00:00 UTC, "
                         "day partitions 2026-11-03 to 2026-11-10 read")
    assert lines[-2] == ("note: app ids and message ids are matched in alerts' evidence, which okta_systemlog does "
                         "not hold: not searched for them there")
    # No evidence kind asked for: no note.
    out = run("search", "--lake", lake, *span, "--ip", "198.51.100.71")
    assert not [line for line in out.output.splitlines() if line.startswith("note:")]


@pytest.mark.parametrize(("args", "message"), [
    (["--app-id", "contoso-mail-helper"], "--app-id 'contoso-mail-helper' is not an application (client) id, a GUID"),
    (["--file-name", "C:\\Temp\\dropper.exe"], "--file-name 'C:\\\\Temp\\\\dropper.exe' is not a file name"),
    (["--message-id", "two words"], "--message-id 'two words' is not a network or internet message id"),
    (["--command-line", "  "], "--command-line '  ' is not part of a command line"),
    (["--any", " "], "--any ' ' is not an indicator of some kind"),
])
def test_a_value_that_cannot_be_of_its_kind_is_one_line(lake: str, args: list[str], message: str) -> None:
    out = run("search", "--lake", lake, *args)
    assert out.exit_code == 2 and out.output.count("\n") == 1
    assert out.output.startswith(f"graphlake: {message}"), out.output


def test_the_evidence_view_shows_the_columns_search_reads(lake: str) -> None:
    rows = connect(lake).execute(
        "SELECT alert_id, evidence_type, parent_file_name, app_id, azure_resource_id, vm_id, subscription_id "
        "FROM security_alert_evidence WHERE coalesce(parent_file_name, app_id, azure_resource_id, vm_id, "
        f"subscription_id) IS NOT NULL AND alert_id IN ('{HIDDEN_TOOL}', '{ENCODED_POWERSHELL}', '{OFFICE_365}', "
        f"'{VM_WEB}') ORDER BY alert_id, evidence_index").fetchall()
    assert rows == [
        (OFFICE_365, "cloudApplicationEvidence", None, "11161", None, None, None),
        (HIDDEN_TOOL, "deviceEvidence", None, None, f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-workstations/"
         "providers/Microsoft.Compute/virtualMachines/ws-0042", "ca1b0d41-5a3b-4d95-b48b-f220aed11d78", SUBSCRIPTION),
        (HIDDEN_TOOL, "processEvidence", "services.exe", None, None, None, None),
        (VM_WEB, "azureResourceEvidence", None, None, f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-web/providers/"
         "Microsoft.Compute/virtualMachines/vm-web-01", None, None),
        (ENCODED_POWERSHELL, "processEvidence", "winword.exe", None, None, None, None),
    ]
