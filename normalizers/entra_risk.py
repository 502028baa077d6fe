"""Entra ID Protection's records as Azure Monitor streams them: risky users and service principals (their current
risk, one record per change) and the risk detections behind them. The record is Microsoft's, envelope and
`properties` (the Graph riskyUser, riskDetection, riskyServicePrincipal and servicePrincipalRiskDetection
resources).

`properties.id` is the user's or service principal's object id in RiskyUsers and RiskyServicePrincipals, and a
detection's own id (not a GUID, so not an actor id) in the risk events: the actor-id form keeps only the first.
"""

from __future__ import annotations

from normalizers.evidence import ACTOR_ID, IP, UPN

TABLE = "entra_risk_events"
LOG_TYPE = "Azure.Audit"
CATEGORIES = ("RiskyUsers", "UserRiskEvents", "RiskyServicePrincipals", "ServicePrincipalRiskEvents")

INDICATORS = {
    "callerIpAddress": IP,
    "properties": {
        "id": ACTOR_ID,
        "ipAddress": IP,
        "userPrincipalName": UPN,
        "userId": ACTOR_ID,
        "appId": ACTOR_ID,
        "servicePrincipalId": ACTOR_ID,
    },
}
