"""Panther's content runs as in Panther: the event (PantherEvent's get, nested values, timestamps, both spellings of
@odata.type, deep_get/deep_walk, udm over data models, lookups), panther_analysis_tool's test verdicts with Mocks,
and the production path's fallbacks, dynamic alert fields, destinations, CreateAlert, SummaryAttributes and rule
errors. Every rule here is written in Panther's layout (NAME.yml + NAME.py)."""

from __future__ import annotations

import re
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from detections.engine import context_of, run_rule
from detections.event import RuleEvent, deep_get, deep_walk
from detections.loader import load_rules
from detections.realtime import Detector
from detections.testing import TEST_PARSE_TIME
from detections.destinations import parse_destinations
from detections.matches import TABLE as MATCHES
from detections.rule_errors import TABLE as RULE_ERRORS
from normalizers import normalize_alert
from shared.cli import main
from shared.land.lake_writer import read_table
from shared.core.storage import open_store
from tests.detections.test_alerts import destinations, golden, land, receiver  # noqa: F401 - the fixture

PANTHER_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{9}$")
IP_ALERT = "ca7a2c6d4e8f0a1b2c3d4e5f6a7b8c9d0e"  # cloud_apps golden: an attacker IPv6 and a source IPv4 in its evidence


def cloud_apps_row(prefix: str = IP_ALERT) -> dict:
    alert = next(a for a in golden("cloud_apps") if a["id"].startswith(prefix))
    return normalize_alert(alert, source_id=None, source_label="test", parse_time=TEST_PARSE_TIME)


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return folder


def test_the_event_reads_as_panthers():
    row = cloud_apps_row()
    event = RuleEvent(row, context_of(load_rules()))
    # Case-insensitive keys, at every level, as PantherEvent's ImmutableCaseInsensitiveDict.
    assert event.get("SEVERITY") == event["severity"] == "high" and "Status" in event
    users = [e for e in event["evidence"] if e.get("roles") == ["compromised"]]
    assert users[0]["USERACCOUNT"]["userPrincipalName"] == "Riley.Sales@contoso.com"
    # Both spellings of @odata.type: Panther's schema calls it at_sign_odata_type.
    for item in event["evidence"]:
        assert item["at_sign_odata_type"] == item["@odata.type"]
    # Timestamps as Panther renders them, while the lake keeps them typed.
    assert PANTHER_TIME.match(event["createdDateTime"]) and PANTHER_TIME.match(event["p_event_time"])
    assert event["createdDateTime"] == row["createdDateTime"].strftime("%Y-%m-%d %H:%M:%S.%f") + "000"
    # Read-only nested values: a list is not a list to the rule, as Panther's ImmutableList.
    assert not isinstance(event["evidence"], list)
    with pytest.raises(AttributeError):
        event["evidence"].append({})
    assert event["categories"] == list(row["categories"] or []) or event.get("categories") is None


def test_deep_get_and_deep_walk_have_panthers_signatures_and_results():
    event = RuleEvent(cloud_apps_row())
    ips = ["2001:0db8:85A3:0000:0000:8A2E:0370:7334", " 198.51.100.23 "]
    assert deep_walk(event, "evidence", "ipAddress") == ips == event.deep_walk("evidence", "ipAddress")
    assert deep_walk(event, "evidence", "ipAddress", return_val="first") == ips[0]
    assert event.deep_walk("evidence", "ipAddress", return_val="last") == ips[1]
    assert deep_walk(event, "evidence", "nothing", default="none") == "none"
    # An object where values are expected cannot be collected: Panther raises TypeError there too.
    with pytest.raises(TypeError):
        deep_walk(event, "evidence", "userAccount")
    assert deep_get(event, "evidence", "x", default="d") == "d"  # a list on the way: the default
    assert deep_get({"a": {"b": None}}, "a", "b", default=0) == 0
    assert event.deep_get("customDetails", "nothing", default="d") == "d"


def test_udm_reads_the_built_in_data_model_and_a_users_replaces_it(tmp_path):
    row = cloud_apps_row()
    event = RuleEvent(row, context_of(load_rules()))
    assert event.udm("source_ip") == "2001:0db8:85A3:0000:0000:8A2E:0370:7334"  # role attacker
    assert event.udm("actor_user") == "Riley.Sales@contoso.com"
    assert event.udm("alert_provider") == row["serviceSource"]  # a Path mapping
    # A mapped Method that finds nothing gives None, not the default: panther-core returns the method's result.
    assert event.udm("destination_ip", default="x") is None
    assert event.udm("title") == row["title"]  # not mapped: the event's own key, as Panther falls back

    write(tmp_path, {"my_model.yml": """\
        AnalysisType: datamodel
        DataModelID: Contoso.Graph
        Enabled: true
        LogTypes: [MicrosoftGraph.SecurityAlertV2]
        Mappings:
          - Name: source_ip
            Path: $.evidence[?(@.roles[0] == 'source')].ipAddress
        """})
    rule_set = load_rules(tmp_path)
    assert rule_set.refused == []
    event = RuleEvent(row, context_of(rule_set))
    assert event.udm("source_ip") == " 198.51.100.23 "
    assert event.udm("actor_user") is None  # the user's model replaced the pack's whole


def test_udm_path_is_the_full_path_of_the_field_found_as_panther_core_gives_it(tmp_path):
    # Panther's rules key p_enrichment by it (Standard.SignInFromRogueState: p_enrichment.ipinfo_location
    # ["properties.ipAddress"]): the path of the match, not the mapping's pattern "$.properties.ipAddress".
    from normalizers.logs import normalize_record
    from tests.log_records import golden as log_golden

    write(tmp_path, {"signin_model.yml": """\
        AnalysisType: datamodel
        DataModelID: Contoso.Azure.SignIn
        Enabled: true
        LogTypes: [Azure.Audit]
        Mappings:
          - Name: source_ip
            Path: $.properties.ipAddress
          - Name: risky_ips
            Path: $.evidence[*].ipAddress
        """})
    rule_set = load_rules(tmp_path)
    _, row = normalize_record(log_golden("entra_signin_logs")[0], source_id=None, source_label="t",
                              parse_time=datetime(2026, 6, 2, tzinfo=UTC))
    event = RuleEvent(row, context_of(rule_set))
    assert event.udm_path("source_ip") == "properties.ipAddress"
    assert event.udm("source_ip") == "198.51.100.23"
    assert event.udm_path("risky_ips") is None  # a path that finds nothing in this event, as panther-core


def test_lookup_and_p_enrichment_read_the_rules_folders_tables(tmp_path):
    write(tmp_path, {"tor_exit_nodes.csv": "ip,note\n198.51.100.23,relay seen 2026-05\n203.0.113.9,other\n"})
    event = RuleEvent(cloud_apps_row(), context_of(load_rules(tmp_path)))
    assert event.lookup("tor_exit_nodes", "198.51.100.23")["note"] == "relay seen 2026-05"
    assert event.lookup("tor_exit_nodes.csv", "192.0.2.1") is None
    assert event.deep_get("p_enrichment", "tor_exit_nodes", "p_any_ip_addresses", "note") == "relay seen 2026-05"
    assert RuleEvent(cloud_apps_row()).get("p_enrichment") is None  # no lookup tables: no enrichment


GRAPH_RULE_YML = """\
AnalysisType: rule
Filename: {stem}.py
RuleID: {rule_id}
DisplayName: {rule_id}
Enabled: true
LogTypes: [MicrosoftGraph.SecurityAlertV2]
Severity: Medium
Tests:
{tests}
"""

IP_LOG = """\
      id: t1
      tenantId: t
      title: Sign-in from a suspicious IP
      severity: high
      status: new
      createdDateTime: "2026-06-02T09:00:00Z"
      lastUpdateDateTime: "2026-06-02T09:05:00Z"
      evidence:
        - at_sign_odata_type: "#microsoft.graph.security.ipEvidence"
          ipAddress: 203.0.113.9
          roles: [attacker]"""


def graph_rule(folder: Path, stem: str, py: str, tests: str, rule_id: str | None = None) -> None:
    write(folder, {f"{stem}.py": py, f"{stem}.yml": GRAPH_RULE_YML.format(
        stem=stem, rule_id=rule_id or f"Test.{stem}",
        tests=textwrap.dedent(tests).rstrip().replace("    IP_LOG_LOW", IP_LOG.replace("severity: high", "severity: low"))
        .replace("    IP_LOG", IP_LOG))})


def test_rules_test_gives_panther_analysis_tools_verdicts(tmp_path):
    rules = tmp_path / "rules" / "microsoft_graph_rules"
    graph_rule(rules, "suspicious_ip", """\
        def is_known_ip(ip):
            return False


        def rule(event):
            return event.get("Status") == "new" and not is_known_ip(event.udm("source_ip"))
        """, f"""\
        - Name: fires on an attacker IP (Panther's spelling of @odata.type)
          ExpectedResult: true
          Log:
            IP_LOG
        - Name: a mocked helper keeps it quiet
          ExpectedResult: false
          Mocks:
            - objectName: is_known_ip
              returnValue: true
          Log:
            IP_LOG
        - Name: a mock naming nothing in the module
          ExpectedResult: true
          Mocks:
            - objectName: no_such_function
              returnValue: true
          Log:
            IP_LOG
        """)
    graph_rule(rules, "raising_title", """\
        def rule(event):
            return event.get("severity") == "high"


        def title(event):
            return event["no_such_key"]
        """, f"""\
        - Name: a match whose title raises fails
          ExpectedResult: true
          Log:
            IP_LOG
        - Name: a non-match passes whatever title does
          ExpectedResult: false
          Log:
            IP_LOG_LOW
        """)
    graph_rule(rules, "not_a_bool", """\
        def rule(event):
            return event.get("assignedTo")  # None: Panther wants a bool
        """, f"""\
        - Name: rule returns None
          ExpectedResult: false
          Log:
            IP_LOG
        """)
    graph_rule(rules, "mocked_lookup", """\
        def rule(event):
            # No p_log_type in the Log: no data model in the test (as panther_analysis_tool), so no udm here.
            return bool(event.lookup("watchlist", event.deep_walk("evidence", "ipAddress", return_val="first")))
        """, f"""\
        - Name: the Log's mocked lookup data
          ExpectedResult: true
          Log:
            IP_LOG
              _mocked_lookup_data_:
                watchlist:
                  203.0.113.9: {{reason: scanner}}
        """)
    graph_rule(rules, "with_udm", """\
        def rule(event):
            return event.udm("source_ip") == "203.0.113.9"
        """, f"""\
        - Name: the Log names its p_log_type, so the data model applies
          ExpectedResult: true
          Log:
            IP_LOG
              p_log_type: MicrosoftGraph.SecurityAlertV2
        - Name: without p_log_type, no data model (panther_analysis_tool's choice)
          ExpectedResult: false
          Log:
            IP_LOG
        """)
    graph_rule(rules, "enriched", """\
        def rule(event):
            return event.deep_get("p_enrichment", "tor_exit_nodes", "p_any_ip_addresses", "note") == "relay"
        """, f"""\
        - Name: the Log's own p_enrichment
          ExpectedResult: true
          Log:
            IP_LOG
              p_enrichment:
                tor_exit_nodes:
                  p_any_ip_addresses: {{ip: 203.0.113.9, note: relay}}
        """)
    result = CliRunner().invoke(main, ["rules", "test", "--rules", str(tmp_path / "rules")], catch_exceptions=False)
    lines = {line.split("  (")[0]: line for line in result.output.splitlines() if line[:4] in ("PASS", "FAIL")}

    def verdict(rule_id: str, name: str) -> str:
        return next(v[:4] for k, v in lines.items() if k.endswith(f"{rule_id}: {name}"))

    assert verdict("Test.suspicious_ip", "fires on an attacker IP (Panther's spelling of @odata.type)") == "PASS"
    assert verdict("Test.suspicious_ip", "a mocked helper keeps it quiet") == "PASS"
    assert verdict("Test.suspicious_ip", "a mock naming nothing in the module") == "FAIL"
    assert verdict("Test.raising_title", "a match whose title raises fails") == "FAIL"
    assert verdict("Test.raising_title", "a non-match passes whatever title does") == "PASS"
    assert verdict("Test.not_a_bool", "rule returns None") == "FAIL"
    assert verdict("Test.mocked_lookup", "the Log's mocked lookup data") == "PASS"
    assert verdict("Test.enriched", "the Log's own p_enrichment") == "PASS"
    assert verdict("Test.with_udm", "the Log names its p_log_type, so the data model applies") == "PASS"
    assert verdict("Test.with_udm", "without p_log_type, no data model (panther_analysis_tool's choice)") == "PASS"
    assert "FunctionReturnTypeError" in next(v for k, v in lines.items() if "Test.not_a_bool" in k)
    assert "Mocks: suspicious_ip.py has no name no_such_function" in result.output
    assert result.exit_code == 1


PRODUCTION_RULES = {
    "dynamic.py": """\
        def rule(event):
            return event.get("id") == "ca7a2c6d4e8f0a1b2c3d4e5f6a7b8c9d0e"


        def title(event):
            raise ValueError("title is broken")


        def description(event):
            return f"Riley's alert {event.get('id')}"


        def runbook(event):
            return "Call Riley."


        def reference(event):
            raise KeyError("no reference today")


        def alert_context(event):
            return {"ips": event.get("p_any_ip_addresses"), "bad": 1 / 0}
        """,
    "dynamic.yml": """\
        AnalysisType: rule
        Filename: dynamic.py
        RuleID: Test.Dynamic
        DisplayName: Dynamic fields
        Enabled: true
        LogTypes: [MicrosoftGraph.SecurityAlertV2]
        Severity: High
        Description: from the YAML
        Runbook: from the YAML
        Reference: https://example.invalid/yaml
        SummaryAttributes: [p_any_ip_addresses, serviceSource]
        """,
    "quiet.py": """\
        def rule(event):
            return event.get("status") == "new"


        def destinations(event):
            return []
        """,
    "quiet.yml": """\
        AnalysisType: rule
        Filename: quiet.py
        RuleID: Test.Quiet
        Enabled: true
        LogTypes: [MicrosoftGraph.SecurityAlertV2]
        Severity: Low
        """,
    "recorded.py": """\
        def rule(event):
            return event.get("status") == "new"
        """,
    "recorded.yml": """\
        AnalysisType: rule
        Filename: recorded.py
        RuleID: Test.Recorded
        Enabled: true
        CreateAlert: false
        LogTypes: [MicrosoftGraph.SecurityAlertV2]
        Severity: Low
        """,
    "routed.py": """\
        def rule(event):
            return event.get("id") == "ca7a2c6d4e8f0a1b2c3d4e5f6a7b8c9d0e"
        """,
    "routed.yml": """\
        AnalysisType: rule
        Filename: routed.py
        RuleID: Test.Routed
        Enabled: true
        OutputIds: [second]
        LogTypes: [MicrosoftGraph.SecurityAlertV2]
        Severity: Low
        """,
    "raising.py": """\
        def rule(event):
            if event.get("status") == "new":
                return event["no_such_field"]
            return False
        """,
    "raising.yml": """\
        AnalysisType: rule
        Filename: raising.py
        RuleID: Test.Raising
        Enabled: true
        LogTypes: [MicrosoftGraph.SecurityAlertV2]
        Severity: Medium
        """,
}


def test_production_keeps_matches_through_errors_and_sends_what_the_rule_asks(tmp_path, receiver):
    lake, state = str(tmp_path / "lake"), str(tmp_path / "state")
    rule_set = load_rules(write(tmp_path / "rules", PRODUCTION_RULES), with_pack=False)
    assert rule_set.refused == []
    # Two destinations at one receiver: an alert routed to both arrives twice, one routed to `second` once.
    hooks = orjson.loads(destinations(receiver.url))
    hooks.append({**hooks[0], "name": "second"})
    detector = Detector(rule_set, tuple(parse_destinations(orjson.dumps(hooks).decode(), {}.get)))
    alerts = golden("cloud_apps")
    new = [a for a in alerts if a["status"] == "new"]
    land(alerts, lake, state, detector)
    by_rule: dict[str, list[dict]] = {}
    for alert in receiver.received:
        by_rule.setdefault(alert["rule_id"], []).append(alert)

    # A raising title, reference and alert_context fall back and keep the match; description() and runbook() win.
    [dynamic, dynamic_again] = by_rule["Test.Dynamic"]
    assert dynamic == dynamic_again
    assert dynamic["title"] == "Test.Dynamic"  # Panther's fallback for a title that raises: the rule id
    assert dynamic["description"] == f"Riley's alert {IP_ALERT}" and dynamic["runbook"] == "Call Riley."
    assert dynamic["reference"] == "https://example.invalid/yaml"
    assert dynamic["alert_context"] == {"_error": "ZeroDivisionError('division by zero')"}
    assert dynamic["summary_attributes"]["serviceSource"] == ["microsoftDefenderForCloudApps"]
    assert "198.51.100.23" in dynamic["summary_attributes"]["p_any_ip_addresses"]
    # destinations() -> []: matches recorded, nothing sent. CreateAlert false: the same.
    assert "Test.Quiet" not in by_rule and "Test.Recorded" not in by_rule
    matches = read_table(open_store(lake), MATCHES).to_pylist()
    for rule_id in ("Test.Quiet", "Test.Recorded"):
        assert len([m for m in matches if m["p_rule_id"] == rule_id]) == len(new)
    assert {m["p_alert_id"] for m in matches if m["p_rule_id"] == "Test.Recorded"} == {None}
    # OutputIds: to `second` only (once, where Test.Dynamic's alert arrived twice, once per destination).
    assert [a["output_ids"] for a in by_rule["Test.Routed"]] == [["second"]]
    # A raising rule(): one rule-error alert per rule and error type, to every destination; a row per failure.
    errors = by_rule["Test.Raising"]
    assert len(errors) == 2 and {e["alert_type"] for e in errors} == {"RULE_ERROR"}
    assert errors[0]["title"] == "Rule error: Test.Raising raised KeyError"
    rows = read_table(open_store(lake), RULE_ERRORS).to_pylist()
    assert sorted(r["id"] for r in rows) == sorted(a["id"] for a in new)
    assert {r["error_type"] for r in rows} == {"KeyError"}
    assert all(r["p_alert_id"] == errors[0]["alert_id"] for r in rows)

    # The same batch again (a redelivery): no second alert of any kind, no second error row.
    sent = len(receiver.received)
    land(alerts, lake, state, detector)
    assert len(receiver.received) == sent
    assert len(read_table(open_store(lake), RULE_ERRORS).to_pylist()) == len(rows)


def test_output_ids_naming_no_destination_keep_the_alert_waiting_and_status_failing(tmp_path, receiver):
    from shared.core import health
    from shared.ops.status import FAILING, assess

    lake, state = str(tmp_path / "lake"), str(tmp_path / "state")
    rules = {name: text.replace("OutputIds: [second]", "OutputIds: [nowhere]")
             for name, text in PRODUCTION_RULES.items() if name.startswith("routed.")}
    detector = Detector(load_rules(write(tmp_path / "rules", rules), with_pack=False),
                        tuple(parse_destinations(destinations(receiver.url), {}.get)))
    land(golden("cloud_apps"), lake, state, detector)
    assert receiver.received == []
    assert [name for name in open_store(state).list("detections/outbox/")]  # waiting, not dropped
    records = {("detections", "realtime"): health.load(open_store(state), "detections", "realtime")}
    [finding] = assess(records, 0, records["detections", "realtime"]["updated"], 3600)
    assert finding.state == FAILING and "OutputIds names unknown destination(s) nowhere" in finding.reason


def test_evidence_in_panthers_spelling_gives_the_same_indicators():
    """panther-analysis's test Logs spell evidence's type at_sign_odata_type: the normalizer reads it as Graph's."""

    def panther_spelling(value):
        if isinstance(value, list):
            return [panther_spelling(v) for v in value]
        if isinstance(value, dict):
            return {("at_sign_odata_type" if k == "@odata.type" else k): panther_spelling(v) for k, v in value.items()}
        return value

    providers = ("cloud", "cloud_apps", "endpoint", "identity", "office365", "purview", "sentinel")
    for alert in golden(*providers):
        rows = [normalize_alert(a, source_id=None, source_label="t", parse_time=TEST_PARSE_TIME)
                for a in (alert, {**alert, "evidence": panther_spelling(alert.get("evidence") or [])})]
        assert {k: v for k, v in rows[0].items() if k.startswith("p_any_")} == \
            {k: v for k, v in rows[1].items() if k.startswith("p_any_")}, alert["id"]


def graph_alert(alert_id: str, **fields) -> dict:
    return {"id": alert_id, "tenantId": "t", "title": "Suspicious sign-in", "severity": "high", "status": "new",
            "serviceSource": "microsoftDefenderForEndpoint", "createdDateTime": "2026-06-02T09:00:00Z",
            "lastUpdateDateTime": "2026-06-02T09:00:00Z",
            "evidence": [{"@odata.type": "#microsoft.graph.security.userEvidence",
                          "userAccount": {"userPrincipalName": "adm-jo@acme.example"}}], **fields}


def test_a_panther_layout_folder_delivers_what_panther_would_through_the_real_path(tmp_path, receiver):
    # The panther-analysis-shaped fixture tree as RULES_DIR: a rule importing a global helper behind InlineFilters,
    # and a YAML-only simple detection, landed as the Event Hub function lands a batch, to a real local webhook.
    lake, state = str(tmp_path / "lake"), str(tmp_path / "state")
    rule_set = load_rules(Path(__file__).parent / "fixtures" / "panther_tree", with_pack=False)
    assert rule_set.refused == []
    detector = Detector(rule_set, tuple(parse_destinations(destinations(receiver.url), {}.get)))
    alerts = [
        graph_alert("kept"),  # high, open: the inline filters hold, rule() matches the helper's admin
        graph_alert("low", severity="low"),  # neither a medium/high severity nor Identity: filtered out
        graph_alert("resolved", status="resolved"),  # status DoesNotEqual resolved fails: filtered out
        graph_alert("null-severity", severity=None),  # null: IsIn and Equals are false on it, so Any fails
        graph_alert("identity-low", severity="low", serviceSource="microsoftDefenderForIdentity"),  # Any holds
        graph_alert("pth", title="Pass-the-hash", serviceSource="microsoftDefenderForIdentity",
                    evidence=[{"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": "1.1.1.1"}]),
        graph_alert("pth-private", title="Pass-the-hash", serviceSource="microsoftDefenderForIdentity",
                    evidence=[{"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": "10.1.2.3"}]),
    ]
    land(alerts, lake, state, detector)
    by_rule: dict[str, list[dict]] = {}
    for alert in receiver.received:
        by_rule.setdefault(alert["rule_id"], []).append(alert)
    assert set(by_rule) == {"Acme.Admin.InAlert", "Acme.PublicIp.HighAlert"}

    # InlineFilters before rule(); the global helper's context and the rule's title in the payload. Both matches
    # share the title, Panther's default dedup string, so they are one alert of two matches.
    [admin] = by_rule["Acme.Admin.InAlert"]
    assert sorted(e["id"] for e in admin["events"]) == ["identity-low", "kept"]
    assert admin["match_count"] == 2 and admin["title"] == "ACME admin in Suspicious sign-in"
    assert admin["alert_context"]["acme"] is True
    assert sorted(admin["summary_attributes"]["serviceSource"]) == ["microsoftDefenderForEndpoint",
                                                                    "microsoftDefenderForIdentity"]
    # The simple detection: its Detection, AlertTitle, GroupBy, AlertContext and DynamicSeverities.
    [public_ip] = by_rule["Acme.PublicIp.HighAlert"]
    assert [e["id"] for e in public_ip["events"]] == ["pth"]
    assert (public_ip["title"], public_ip["dedup"], public_ip["severity"]) == (
        "High alert [Pass-the-hash] from microsoftDefenderForIdentity", "microsoftDefenderForIdentity:t", "Critical")
    assert public_ip["alert_context"] == {"provider": "microsoftDefenderForIdentity", "first_ip": "1.1.1.1"}
    matched = {(m["p_rule_id"], m["id"]) for m in read_table(open_store(lake), MATCHES).to_pylist()}
    assert matched == {("Acme.Admin.InAlert", "kept"), ("Acme.Admin.InAlert", "identity-low"),
                       ("Acme.PublicIp.HighAlert", "pth")}


def test_a_log_record_reads_as_panther_gives_it():
    # What Panther's Azure rules read: lower-case envelope keys (its stored spelling), `properties` and the Activity
    # log's `identity` as objects, an exported `operationName` object, and the record's keys without a column.
    from normalizers.logs import normalize_record
    from tests.log_records import golden as log_golden

    def event_of(record: dict) -> RuleEvent:
        return RuleEvent(normalize_record(record, source_id=None, source_label="t",
                                          parse_time=datetime(2026, 6, 2, tzinfo=UTC))[1])

    activity = log_golden("azure_activity_logs")[0]
    exported = {**activity, "operationName": {"value": "Microsoft.Authorization/elevateAccess/action",
                                              "localizedValue": "Assigns the caller to User Access Administrator"},
                "status": {"value": "Succeeded"}, "Caller": "it.admin@contoso.com"}
    event = event_of(exported)
    assert event.deep_get("operationName", "value") == "Microsoft.Authorization/elevateAccess/action"
    assert event.deep_get("status", "value") == "Succeeded" and event.get("caller") == "it.admin@contoso.com"
    assert event.deep_get("identity", "claims", "ipaddr") == "198.51.100.23"
    assert event.get("calleripaddress") == activity["callerIpAddress"] and event.get("resulttype") == "Success"
    assert event.get("ReleaseVersion") == activity["ReleaseVersion"]  # kept in p_unmapped, read as sent
    assert event.get("time") == "2026-06-02 08:30:00.123456000"  # as Panther renders timestamps (the lake keeps µs)

    signin = event_of(log_golden("entra_signin_logs")[1])
    assert signin["properties"]["riskLevelDuringSignIn"] == "medium"
    assert signin.deep_get("properties", "status", "errorCode") == 50126
    assert signin.get("identity") == "Alex Wilber"  # an Entra record's identity is a name: text
    # ... even a name that reads as JSON: only the Activity log's identity and operationName are objects.
    odd = event_of({**log_golden("entra_signin_logs")[1], "identity": '{"a": 1}', "operationName": '{"b": 2}'})
    assert (odd.get("identity"), odd.get("operationName")) == ('{"a": 1}', '{"b": 2}')
    with pytest.raises(TypeError):
        signin["properties"]["new"] = 1  # read-only, as Panther's

    # An alert's p_unmapped keys stay where they are: an alert's row is its schema's.
    assert RuleEvent({"p_log_type": "MicrosoftGraph.SecurityAlertV2", "p_unmapped": '{"extra": 1}'}).get("extra") \
        is None


def test_a_rule_raising_on_a_log_record_names_the_record(tmp_path):
    # A log record has no alert id: the rule error says which record (log type and p_row_id), not "failed" alone.
    from detections.engine import evaluate
    from normalizers.logs import normalize_record
    from tests.log_records import golden as log_golden

    write(tmp_path, {"raises.py": "def rule(event):\n    return event['no_such_key'] == 1\n",
                     "raises.yml": """\
        AnalysisType: rule
        Filename: raises.py
        RuleID: Test.RaisesOnSignIns
        LogTypes: [Azure.Audit]
        Severity: Low
        """})
    rule_set = load_rules(tmp_path, with_pack=False)
    _, row = normalize_record(log_golden("entra_signin_logs")[0], source_id=None, source_label="t",
                              parse_time=TEST_PARSE_TIME)
    [failure] = evaluate(rule_set.rules, [row], context_of(rule_set)).failures
    assert str(failure) == (f"rule Test.RaisesOnSignIns raised on Azure.Audit record {row['p_row_id']}: "
                            "KeyError: 'no_such_key'")


CONTEXT_RULES = {
    "context.py": """\
        def rule(event):
            return True


        def alert_context(event):
            return CONTEXTS[event.get("id")]


        CONTEXTS = {
            "nan": {"score": float("nan")},
            # Under the limit written compactly, over it as Python's json.dumps writes it (", " between items).
            "spaced": {"items": [0] * 75_000},
            "fits": {"items": [0] * 60_000},
        }
        """,
    "context.yml": """\
        AnalysisType: rule
        Filename: context.py
        RuleID: Test.Context
        LogTypes: [MicrosoftGraph.SecurityAlertV2]
        Severity: Low
        """,
}


def test_alert_context_is_checked_as_panther_serializes_it(tmp_path):
    # panther-core measures and checks alert_context as json.dumps(..., allow_nan=False) writes it: a NaN fails, and
    # the 200 KB limit counts that text's characters (", " and ": " included).
    rule = load_rules(write(tmp_path / "rules", CONTEXT_RULES), with_pack=False).by_id("Test.Context")
    context = {key: run_rule(rule, RuleEvent({"id": key}), batch=True).values["alert_context"]
               for key in ("nan", "spaced", "fits")}
    assert context["nan"]["_error"].startswith("ValueError('Out of range float values are not JSON compliant")
    assert context["spaced"] == {"_error": "alert_context size is [225011] characters, bigger than maximum of "
                                           "[204800] characters"}
    assert context["fits"] == {"items": [0] * 60_000}
