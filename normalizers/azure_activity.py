"""The Azure Activity log as a subscription's diagnostic setting streams it: control-plane operations on Azure
resources (Administrative), Defender for Cloud's (Security), policy evaluations (Policy), service and resource
health, alerts, recommendations, autoscale. The record is Microsoft's; `identity` is an object here (the caller's
token claims and the role assignment that authorized the call), kept whole as JSON text.

`Write`, `Delete` and `Action` are the categories the legacy log profiles wrote for Administrative operations;
an archive of those lands here too.
"""

from __future__ import annotations

from normalizers.evidence import ACTOR_ID, IP, UPN

TABLE = "azure_activity_logs"
# Panther's log type for the Activity log, so its Azure activity rules port.
LOG_TYPE = "Azure.MonitorActivity"
CATEGORIES = ("Administrative", "Security", "Policy", "ServiceHealth", "Alert", "Recommendation", "Autoscale",
              "ResourceHealth", "Write", "Delete", "Action")

_CLAIMS = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"
INDICATORS = {
    "callerIpAddress": IP,
    "identity": {
        "claims": {
            f"{_CLAIMS}upn": UPN,
            "ipaddr": IP,
            "appid": ACTOR_ID,
            "http://schemas.microsoft.com/identity/claims/objectidentifier": ACTOR_ID,
        },
        "authorization": {"evidence": {"principalId": ACTOR_ID}},
    },
}
