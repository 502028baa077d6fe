"""alerts_v2 enums in declaration order, and Graph's evolvable-enum rule.

Graph hides members declared after `unknownFutureValue` unless the request sends
`Prefer: include-unknown-enum-members`; without it they read as `unknownFutureValue` (graph-alerts-v2.md §3).
Declaration order also gives OData's ordering for `gt`/`lt` on enums.
"""

from __future__ import annotations

SENTINEL = "unknownFutureValue"

SEVERITY = ("unknown", "informational", "low", "medium", "high", SENTINEL)
STATUS = ("unknown", "new", "inProgress", "resolved", SENTINEL)
CLASSIFICATION = ("unknown", "falsePositive", "truePositive", "informationalExpectedActivity", SENTINEL)
# The v1.0 prose list; the table on the same page uses other names (reference §3), consumers keep strings.
DETERMINATION = (
    "unknown", "apt", "malware", "securityPersonnel", "securityTesting", "unwantedSoftware", "other",
    "multiStagedAttack", "compromisedUser", "phishing", "maliciousUserActivity", "clean", "insufficientData",
    "confirmedUserActivity", "lineOfBusinessApplication", SENTINEL)
SERVICE_SOURCE = (
    "unknown", "microsoftDefenderForEndpoint", "microsoftDefenderForIdentity", "microsoftDefenderForCloudApps",
    "microsoftDefenderForOffice365", "microsoft365Defender", "azureAdIdentityProtection", "microsoftAppGovernance",
    "dataLossPrevention", SENTINEL, "microsoftDefenderForCloud", "microsoftSentinel")
DETECTION_SOURCE = (
    "unknown", "microsoftDefenderForEndpoint", "antivirus", "smartScreen", "customTi",
    "microsoftDefenderForOffice365", "automatedInvestigation", "microsoftThreatExperts", "customDetection",
    "microsoftDefenderForIdentity", "cloudAppSecurity", "microsoft365Defender", "azureAdIdentityProtection", "manual",
    "microsoftDataLossPrevention", "appGovernancePolicy", "appGovernanceDetection", SENTINEL,
    "microsoftDefenderForCloud", "microsoftDefenderForIoT", "microsoftDefenderForServers",
    "microsoftDefenderForStorage", "microsoftDefenderForDNS", "microsoftDefenderForDatabases",
    "microsoftDefenderForContainers", "microsoftDefenderForNetwork", "microsoftDefenderForAppService",
    "microsoftDefenderForKeyVault", "microsoftDefenderForResourceManager", "microsoftDefenderForApiManagement",
    "nrtAlerts", "scheduledAlerts", "microsoftDefenderThreatIntelligenceAnalytics", "builtInMl",
    "microsoftInsiderRiskManagement", "microsoftThreatIntelligence", "microsoftDefenderForAIServices",
    "securityCopilot", "microsoftSentinel")
REMEDIATION_STATUS = (
    "none", "remediated", "prevented", "blocked", "notFound", SENTINEL,
    "active", "pendingApproval", "declined", "unremediated", "running", "partiallyRemediated")


def _hidden(members: tuple[str, ...]) -> frozenset[str]:
    return frozenset(members[members.index(SENTINEL) + 1:])


HIDDEN_SERVICE_SOURCE = _hidden(SERVICE_SOURCE)
HIDDEN_DETECTION_SOURCE = _hidden(DETECTION_SOURCE)
HIDDEN_REMEDIATION_STATUS = _hidden(REMEDIATION_STATUS)


def without_unknown_members(alert: dict) -> dict:
    """The alert as a client that did not send the Prefer header sees it (a copy; the input is left alone)."""
    out = dict(alert)
    if out.get("serviceSource") in HIDDEN_SERVICE_SOURCE:
        out["serviceSource"] = SENTINEL
    if out.get("detectionSource") in HIDDEN_DETECTION_SOURCE:
        out["detectionSource"] = SENTINEL
    evidence = out.get("evidence") or []
    if any(item.get("remediationStatus") in HIDDEN_REMEDIATION_STATUS for item in evidence):
        out["evidence"] = [
            {**item, "remediationStatus": SENTINEL} if item.get("remediationStatus") in HIDDEN_REMEDIATION_STATUS
            else item
            for item in evidence]
    return out


def needs_masking(alert: dict) -> bool:
    return (alert.get("serviceSource") in HIDDEN_SERVICE_SOURCE
            or alert.get("detectionSource") in HIDDEN_DETECTION_SOURCE
            or any(item.get("remediationStatus") in HIDDEN_REMEDIATION_STATUS for item in alert.get("evidence") or []))
