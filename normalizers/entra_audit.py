"""Entra ID audit logs as Azure Monitor streams them (category `AuditLogs`): directory changes, who made them
(`initiatedBy`: a user or an app) and what they changed (`targetResources`: users, groups, apps, service principals,
roles, policies). The record is Microsoft's, envelope and `properties` (the Graph directoryAudit resource).

Targets count as indicators too: "where else does this account show up" must find the role change made to it, not
only the ones it made.
"""

from __future__ import annotations

from normalizers.evidence import ACTOR_ID, IP, UPN

TABLE = "entra_audit_logs"
LOG_TYPE = "Azure.Audit"
CATEGORIES = ("AuditLogs",)

INDICATORS = {
    "callerIpAddress": IP,
    "properties": {
        "initiatedBy": {
            "user": {"id": ACTOR_ID, "userPrincipalName": UPN, "ipAddress": IP},
            "app": {"appId": ACTOR_ID, "servicePrincipalId": ACTOR_ID},
        },
        "targetResources": {"id": ACTOR_ID, "userPrincipalName": UPN},
    },
}
