"""Role assignments use documented built-in role ids, least privilege, scoped to resources; storage and Event Hubs
hardening; the lifecycle policy (what expires is what the code no longer needs; the detections outbox never does);
diagnostic settings; name limits."""

from __future__ import annotations

import re
from pathlib import Path

from tests.infra.facts import (BICEP_FILES, bicep_facts, bicep_text, decorator, denotes, main_param, name_in_main,
                               resources, var_file)


# Built-in role ids (reference: azure-functions-and-friends.md §9;
# https://learn.microsoft.com/azure/role-based-access-control/built-in-roles).
BUILT_IN_ROLES = {
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "Storage Blob Data Reader": "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Azure Event Hubs Data Owner": "f526a384-b230-433a-b45c-95f59c4a2dec",
    "Azure Event Hubs Data Sender": "2b629674-e913-4c01-ae53-ef4638d8f975",
    "Azure Event Hubs Data Receiver": "a638d3c7-ab3a-418d-83e6-5f17a39d4fde",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
}
# What graphlake's identity may hold: least privilege (no Event Hubs Data Owner, no queue/table roles).
ALLOWED_ROLES = {"Storage Blob Data Owner", "Storage Blob Data Contributor", "Azure Event Hubs Data Sender",
                 "Azure Event Hubs Data Receiver", "Monitoring Metrics Publisher"}
REQUIRED_ROLES = {"Azure Event Hubs Data Sender", "Azure Event Hubs Data Receiver", "Monitoring Metrics Publisher"}


# --- Roles -------------------------------------------------------------------------------------------------------

def _norm(name: str) -> str:
    return re.sub(r"[^a-z]", "", name.lower()).removeprefix("azure")


def test_role_ids_are_the_documented_built_in_ids() -> None:
    roles = bicep_facts()["vars"].get("roles")
    assert roles and roles["kind"] == "object", "no .bicep file has a `var roles = { ... }` of role ids"
    by_norm = {_norm(name): name for name in BUILT_IN_ROLES}
    for key, node in roles["value"].items():
        assert _norm(key) in by_norm, f"roles.{key}: not a role of the documented table {sorted(BUILT_IN_ROLES)}"
        name = by_norm[_norm(key)]
        assert node.get("value") == BUILT_IN_ROLES[name], f"roles.{key} must be {name} = {BUILT_IN_ROLES[name]}"
    # No role id anywhere else, e.g. a GUID pasted straight into an assignment.
    known = set(BUILT_IN_ROLES.values())
    for path in BICEP_FILES:
        for guid in re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", path.read_text(), re.I):
            assert guid.lower() in known, f"{path.name}: unknown GUID {guid} (a role id not in the table?)"


def test_role_assignments_are_least_privilege_and_resource_scoped() -> None:
    facts = bicep_facts()
    roles = {key: node["value"] for key, node in facts["vars"]["roles"]["value"].items()}
    name_of = {role_id: name for name, role_id in BUILT_IN_ROLES.items()}
    assignments = facts["role_assignments"]
    assert assignments, "no role assignments in infra/"
    assigned = set()
    for a in assignments:
        scope = a["scope"]
        assert scope and re.fullmatch(r"[A-Za-z_]\w*", scope), \
            f"{a['symbol']}: scope must be a resource symbol, not {scope!r}"
        assert scope not in ("resourceGroup", "subscription"), f"{a['symbol']}: scoped to the group"
        # In a module, the scope is an `existing` reference named by what main.bicep passes: it must be a resource
        # this deployment creates.
        target = denotes(a["file"], scope)
        assert target and target["symbol"] == scope, \
            f"{a['file']}: {a['symbol']} is scoped to {scope}, which is not the deployment's {scope}"
        match = re.search(r"roles\.(\w+)", a["roleDefinitionId"] or "")
        assert match and match.group(1) in roles, f"{a['symbol']}: roleDefinitionId must use roles.<name>"
        assert "subscriptionResourceId('Microsoft.Authorization/roleDefinitions'" in a["roleDefinitionId"]
        role = name_of[roles[match.group(1)]]
        if a["principalId"] == "identity.properties.principalId":
            assert (denotes(a["file"], "identity") or {}).get("symbol") == "identity", f"{a['symbol']}: identity"
            assert a["principalType"] == "'ServicePrincipal'", f"{a['symbol']}: principalType"
            assigned.add(role)
        else:
            # The only assignment to anyone else: the people and tools named in lakeReaderPrincipalIds may read
            # the lake container, nothing more.
            assert (a["loop_over"], a["principalId"], role, scope) == (
                "lakeReaderPrincipalIds", "principalId", "Storage Blob Data Reader", "lakeContainer"), a
            assert main_param(a["file"], "lakeReaderPrincipalIds") == "lakeReaderPrincipalIds", a
    assert assigned <= ALLOWED_ROLES, f"roles beyond least privilege: {sorted(assigned - ALLOWED_ROLES)}"
    assert REQUIRED_ROLES <= assigned, f"missing roles: {sorted(REQUIRED_ROLES - assigned)}"
    assert assigned & {"Storage Blob Data Owner", "Storage Blob Data Contributor"}, "no blob data role"
    assert any(a["loop_over"] == "lakeReaderPrincipalIds" for a in assignments), "no lake reader assignment"


def test_storage_and_event_hubs_hardening_is_in_place() -> None:
    # checkov covers part of this; the rest of the list is asserted here on the text.
    src = bicep_text()
    for needle in ("allowSharedKeyAccess: false", "allowBlobPublicAccess: false", "minimumTlsVersion: 'TLS1_2'",
                   "supportsHttpsTrafficOnly: true", "deleteRetentionPolicy: {\n      enabled: true",
                   "disableLocalAuth: !diagnosticSettingsSendRule", "minimumTlsVersion: '1.2'", "DisableLocalAuth: true",
                   "tier: 'FlexConsumption'", "type: 'UserAssigned'", "httpsOnly: true"):
        assert needle in src, f"infra/*.bicep lack {needle!r}"
    # The namespace refuses SAS unless the deployment asks for the diagnostic settings' rule.
    assert bicep_facts()["params"]["diagnosticSettingsSendRule"]["default"]["value"] == "false"
    assert main_param(var_file_of("Microsoft.EventHub/namespaces"), "diagnosticSettingsSendRule") == \
        "diagnosticSettingsSendRule"


def var_file_of(type_: str) -> str:
    (resource,) = resources(type_)
    return resource["file"]


def test_azure_monitor_gets_send_only_on_the_logs_hub_alone() -> None:
    # The one SAS rule: Send, on the logs hub (not the namespace, not the alerts hub), only when asked for.
    assert not resources("Microsoft.EventHub/namespaces/authorizationRules"), "no namespace-wide SAS rule"
    (rule,) = resources("Microsoft.EventHub/namespaces/eventhubs/authorizationRules")
    body = rule["body"]["value"]
    assert rule["condition"] == "(diagnosticSettingsSendRule)"
    assert body["properties"]["value"]["rights"]["text"].split() == ["[", "'Send'", "]"]
    parent = denotes(rule["file"], body["parent"]["text"])
    assert parent and name_in_main(parent) == "logsEventHubName", parent
    # The identity reads the logs hub, on that hub only; it sends nowhere there (Azure Monitor does).
    receivers = [a for a in bicep_facts()["role_assignments"] if a["principalId"] == "identity.properties.principalId"
                 and "eventHubsDataReceiver" in (a["roleDefinitionId"] or "")]
    scopes = {name_in_main(denotes(a["file"], a["scope"])) for a in receivers}
    assert scopes == {"eventHubName", "logsEventHubName"}, scopes


# --- Storage lifecycle, diagnostics, names -----------------------------------------------------------------------

def test_lifecycle_expires_claim_checks_and_quarantine_and_keeps_the_lake() -> None:
    from shared.core.event_format import CLAIM_CHECK_PREFIX
    from shared.land.quarantine import PREFIX as QUARANTINE_PREFIX

    assert resources("Microsoft.Storage/storageAccounts/managementPolicies"), "no lifecycle management policy"
    rules = bicep_facts()["vars"]["lifecycleRules"]["text"]
    # The prefixes are those the code writes under, in the state container.
    for prefix, days in ((CLAIM_CHECK_PREFIX, "claimCheckRetentionDays"), (QUARANTINE_PREFIX, "quarantineRetentionDays")):
        assert _deletes(rules, prefix, days), f"no rule deleting {prefix} after {days}"
    # A claim check outlives every event that can point to it.
    assert decorator("claimCheckRetentionDays", "minValue") > decorator("eventHubRetentionDays", "maxValue")
    params = bicep_facts()["params"]
    # The lake is never deleted, nor moved to cool, unless asked.
    assert params["lakeDeleteAfterDays"]["default"]["value"] == "0"
    assert params["lakeCoolAfterDays"]["default"]["value"] == "0"
    assert "lakeCoolAfterDays > 0 ? [" in rules and "lakeDeleteAfterDays > 0 ? [" in rules
    assert rules.count("prefix: '${lakeContainerName}/'") == 2
    # The parameters the rules read are main.bicep's, whose defaults and limits these asserts read.
    for name in ("claimCheckRetentionDays", "quarantineRetentionDays", "lakeCoolAfterDays", "lakeDeleteAfterDays",
                 "lakeContainerName", "stateContainerName"):
        assert main_param(var_file("lifecycleRules"), name) == name, f"{var_file('lifecycleRules')}: param {name}"


def test_lifecycle_covers_the_log_tables() -> None:
    # The tables normalize_logs lands in: kept with the lake by default, deleted sooner when asked; their quarantine
    # is the state's quarantine/ prefix, expired with the alerts' (above).
    facts = bicep_facts()
    tables = [v["value"] for v in facts["vars"]["logTables"]["value"]]
    assert tables == ["entra_signin_logs", "entra_audit_logs", "entra_risk_events", "azure_activity_logs"]
    rules = facts["vars"]["logTableRules"]["text"]
    assert "prefix: '${lakeContainerName}/${table}/'" in rules
    assert "daysAfterModificationGreaterThan: logTablesDeleteAfterDays" in rules
    assert facts["vars"]["logTableRules"]["text"].startswith("[for table in logTables:")
    # A log table's days go sooner, and their indicator indexes (its users' names, addresses) with them: an index
    # kept past its data would hold what the retention setting promised to delete.
    from shared.core.layout import INDEX_FOLDER, index_name

    index_rules = facts["vars"]["logTableIndexRules"]["text"]
    assert index_rules.startswith("[for table in logTables:")
    assert f"prefix: '${{lakeContainerName}}/{INDEX_FOLDER}/${{table}}/'" in index_rules
    assert "daysAfterModificationGreaterThan: logTablesDeleteAfterDays" in index_rules
    import datetime as dt
    assert index_name("entra_signin_logs", dt.date(2026, 3, 1), ["a.parquet"], "0" * 20).startswith(
        f"{INDEX_FOLDER}/entra_signin_logs/")
    assert ("logTablesDeleteAfterDays > 0 ? concat(logTableRules, logTableIndexRules) : []"
            in facts["vars"]["lifecycleRules"]["text"])
    assert facts["params"]["logTablesDeleteAfterDays"]["default"]["value"] == "0"
    assert main_param(var_file("lifecycleRules"), "logTablesDeleteAfterDays") == "logTablesDeleteAfterDays"


def test_the_indicator_index_lives_and_expires_with_the_lake() -> None:
    # The index of a day is derived from it: it sits in the lake container, outside every table's folder, so the
    # lake's own rules (cool, delete) take it with its day, by the same age (compaction writes both), and no rule
    # of its own can keep it past its day or drop it before.
    import datetime as dt

    from shared.core.layout import INDEX_FOLDER, index_name, parse_partition_file

    rules = bicep_facts()["vars"]["lifecycleRules"]["text"]
    lake_prefixes = re.findall(r"prefix: '\$\{lakeContainerName\}/([^']*)'", rules)
    assert lake_prefixes == ["", ""], "the lake's rules cover the whole container, indexes included"
    assert INDEX_FOLDER not in rules, "the index has no rule of its own (a log table's goes with it, above)"
    name = index_name("security_alerts", dt.date(2026, 3, 1), ["compacted-0-1of1.parquet"], "0" * 20)
    assert name.startswith(f"{INDEX_FOLDER}/") and parse_partition_file(name) is None


def _deletes(rules: str, prefix: str, days: str) -> bool:
    """Whether the lifecycle rules delete blobs under `prefix` of the state container after the parameter `days`."""
    return re.search(rf"prefix: '\$\{{stateContainerName\}}/{re.escape(prefix)}'\s+action: \{{\s+delete: \{{\s+"
                     rf"daysAfterModificationGreaterThan: {days}\s", rules) is not None


def _state_prefixes(rules: str) -> list[str]:
    return re.findall(r"prefix: '\$\{stateContainerName\}/([^']*)'", rules)


def test_lifecycle_expires_detection_state_only_once_no_alert_can_need_it() -> None:
    # The alert state and the sent markers matter only while their alert's dedup period is open: after it, a match
    # opens a fresh alert (new id) and nothing re-queues the old one. Both are written at or after the period's
    # start, so older than the longest period a rule may have, they are safe to delete.
    from detections.alerts import PREFIX as ALERT_STATE_PREFIX
    from detections.delivery import OUTBOX, SENT
    from detections.loader import MAX_DEDUP_MINUTES
    from detections.scheduled import SCHEDULE_PREFIX

    rules = bicep_facts()["vars"]["lifecycleRules"]["text"]
    for prefix in (ALERT_STATE_PREFIX, SENT):
        assert _deletes(rules, prefix, "detectionStateRetentionDays"), f"no rule deleting {prefix}"
    assert decorator("detectionStateRetentionDays", "minValue") * 24 * 60 >= MAX_DEDUP_MINUTES
    assert main_param(var_file("lifecycleRules"), "detectionStateRetentionDays") == "detectionStateRetentionDays"
    # Undelivered alerts wait in the outbox until a destination takes them, however long; a rule's last run is one
    # small blob per rule.
    for kept in (OUTBOX, SCHEDULE_PREFIX):
        covering = [p for p in _state_prefixes(rules) if kept.startswith(p)]
        assert not covering, f"a lifecycle rule on {covering} would delete {kept}"


def test_matched_markers_outlive_every_way_a_version_can_come_back() -> None:
    # A matched marker is what keeps a version a rule already matched from alerting again (detections/matched.py):
    # deleting it while the version can still land again would make a second alert for it.
    from detections.matched import PREFIX as MATCHED_PREFIX
    from shared.core.settings import Settings

    facts = bicep_facts()
    rules = facts["vars"]["lifecycleRules"]["text"]
    # While the lake is kept (the default), so are the markers: a backfill over any old day is covered.
    always, lake_deleted = rules.split("lakeDeleteAfterDays > 0 ? [", 1)
    assert not [p for p in _state_prefixes(always) if MATCHED_PREFIX.startswith(p)], "markers deleted with the lake kept"
    assert [p for p in _state_prefixes(lake_deleted) if MATCHED_PREFIX.startswith(p)] == [MATCHED_PREFIX]
    assert _deletes(lake_deleted, MATCHED_PREFIX, "matchedStateRetentionDays")
    for name in ("lakeDeleteAfterDays", "claimCheckRetentionDays", "quarantineRetentionDays"):
        assert main_param(var_file("lifecycleRules"), name) == name, name

    # With the lake deleted after some days: at least that, and at least as long as graphlake's own storage can
    # bring a version back, over every value the parameters may take. A re-sent version comes at most
    # PULL_LOOKBACK_DAYS (a lost watermark) or RECONCILE_LOOKBACK_HOURS after it first landed, waits in the hub at
    # most as long as its claim check is kept (longer than the hub's retention), then in quarantine for replay.
    defaults = Settings.model_fields
    resend = max(defaults["pull_lookback_days"].default, defaults["reconcile_lookback_hours"].default / 24)
    assert decorator("claimCheckRetentionDays", "minValue") > decorator("eventHubRetentionDays", "maxValue")
    variables = {name: facts["vars"][name] for name in ("matchedStateRetentionDays", "resendDays")}
    resend_days = int(variables["resendDays"]["value"])
    assert resend_days >= resend + 1, "resendDays must cover the pull's and the reconciliation's look-back"
    expression = compile(variables["matchedStateRetentionDays"]["text"], "matchedStateRetentionDays", "eval")

    def bounds(param: str) -> set[int]:
        default = int(facts["params"][param]["default"]["value"])
        return {decorator(param, "minValue") or 1, default, decorator(param, "maxValue")} - {0}

    for lake in bounds("lakeDeleteAfterDays"):
        for claim in bounds("claimCheckRetentionDays"):
            for quarantine in bounds("quarantineRetentionDays"):
                days = eval(expression, {"max": max}, {  # noqa: S307 - Bicep's arithmetic, Python's syntax
                    "lakeDeleteAfterDays": lake, "claimCheckRetentionDays": claim,
                    "quarantineRetentionDays": quarantine, "resendDays": resend_days})
                assert days > lake and days > resend + claim + quarantine, (lake, claim, quarantine, days)


def test_a_dedup_period_longer_than_the_lifecycle_allows_is_refused(tmp_path: Path) -> None:
    from detections.loader import MAX_DEDUP_MINUTES, load_rules

    for minutes in (MAX_DEDUP_MINUTES, MAX_DEDUP_MINUTES + 1):
        (tmp_path / f"r{minutes}.py").write_text("def rule(event):\n    return True\n")
        (tmp_path / f"r{minutes}.yml").write_text(
            f"AnalysisType: rule\nFilename: r{minutes}.py\nRuleID: Custom.D{minutes}\n"
            f"LogTypes: [MicrosoftGraph.SecurityAlertV2]\nSeverity: Low\nDedupPeriodMinutes: {minutes}\n")
    rule_set = load_rules(tmp_path, with_pack=False)
    assert [r.rule_id for r in rule_set.rules] == [f"Custom.D{MAX_DEDUP_MINUTES}"]
    [refusal] = rule_set.refused
    assert "DedupPeriodMinutes" in str(refusal) and str(MAX_DEDUP_MINUTES) in str(refusal), refusal


def test_diagnostic_settings_send_blob_and_event_hubs_logs_to_the_workspace() -> None:
    diagnostics = resources("Microsoft.Insights/diagnosticSettings")
    settings = {r["body"]["value"]["scope"]["text"]: r["body"]["value"]["properties"]["value"] for r in diagnostics}
    assert set(settings) == {"blobService", "eventHubNamespace"}, settings
    for scope, props in settings.items():
        assert props["workspaceId"]["text"] == "logAnalytics.id", scope
    # In a module, those are `existing` references: to the blob service, namespace and workspace deployed here.
    for r in diagnostics:
        for symbol in (r["body"]["value"]["scope"]["text"], "logAnalytics"):
            assert (denotes(r["file"], symbol) or {}).get("symbol") == symbol, f"{r['file']}: {symbol}"
    blob_logs = settings["blobService"]["logs"]["text"]
    assert "'StorageWrite'" in blob_logs and "'StorageDelete'" in blob_logs
    assert "'allLogs'" in settings["eventHubNamespace"]["logs"]["text"]


def test_name_parameters_have_the_lengths_azure_accepts() -> None:
    for name in ("lakeContainerName", "stateContainerName", "deploymentContainerName"):
        assert (decorator(name, "minLength"), decorator(name, "maxLength")) == (3, 63), name
    assert decorator("eventHubConsumerGroupName", "maxLength") <= 50
    assert decorator("eventHubName", "maxLength") <= 256
    assert decorator("logsEventHubConsumerGroupName", "maxLength") <= 50
    assert decorator("logsEventHubName", "maxLength") <= 256
    # Those parameters are the names the resources get (in a module: what main.bicep passes it).
    for type_, names in (("Microsoft.Storage/storageAccounts/blobServices/containers",
                          {"lakeContainerName", "stateContainerName", "deploymentContainerName"}),
                         ("Microsoft.EventHub/namespaces/eventhubs", {"eventHubName", "logsEventHubName"}),
                         ("Microsoft.EventHub/namespaces/eventhubs/consumergroups",
                          {"eventHubConsumerGroupName", "logsEventHubConsumerGroupName"})):
        assert {name_in_main(r) for r in resources(type_)} == names, type_
