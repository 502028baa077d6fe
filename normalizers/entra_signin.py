"""Entra ID sign-in logs as Azure Monitor streams them (diagnostic setting of `microsoft.aadiam`): interactive,
non-interactive, service principal and managed identity sign-ins, one table. The record is Microsoft's, envelope
and `properties` (the Graph signIn resource); this table says which of its values are indicators.

Left out on purpose: `properties.resourceId` and `resourceServicePrincipalId` (the app signed in to: Graph or
Exchange for nearly every sign-in, so as a pivot it would tie them all together), the tenant ids (every record of a
tenant has them), display names (not identifiers), and a managed identity's
`managedServiceIdentity.associatedResourceId` (an ARM resource id, which no p_any column holds; the identity itself
is its `servicePrincipalId`).
"""

from __future__ import annotations

from normalizers.evidence import ACTOR_ID, IP, UPN

TABLE = "entra_signin_logs"
# Panther's log type for Entra sign-in and audit records as streamed, so its Azure rules port.
LOG_TYPE = "Azure.Audit"
CATEGORIES = ("SignInLogs", "NonInteractiveUserSignInLogs", "ServicePrincipalSignInLogs", "ManagedIdentitySignInLogs")

INDICATORS = {
    "callerIpAddress": IP,
    "properties": {
        "ipAddress": IP,
        "ipAddressFromResourceProvider": IP,
        "userPrincipalName": UPN,
        "alternateSignInName": UPN,
        "signInIdentifier": UPN,
        "userId": ACTOR_ID,
        "appId": ACTOR_ID,
        "servicePrincipalId": ACTOR_ID,
        "deviceDetail": {"deviceId": ACTOR_ID},
    },
}
