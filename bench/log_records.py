"""Sign-in records made to order for the benches: the shape of Entra's interactive and non-interactive sign-ins as
Azure Monitor streams them (see normalizers/golden/logs/entra_signin_logs.input.json), with a tenant's variety of
users, addresses, apps and devices. Deterministic for a seed."""

from __future__ import annotations

import datetime as dt
import random
import uuid

import orjson

TENANT = "5f0e1d2c-3b4a-4968-8776-a5b4c3d2e1f0"
APPS = [("4765445b-32c6-49b0-83e6-1d93765276ca", "OfficeHome"), ("d3590ed6-52b3-4102-aeff-aad2292ab01c",
        "Microsoft Office"), ("00000002-0000-0ff1-ce00-000000000000", "Office 365 Exchange Online"),
        ("1fec8e78-bce4-4aaf-ab1b-5451cc387264", "Microsoft Teams"), ("27922004-5251-4030-b22d-91ecd9a37ea4",
        "Outlook Mobile")]
ERRORS = [0] * 18 + [50126, 50074, 50140, 70044]


class SignIns:
    """`records(count, day)`: sign-ins spread over one UTC day, 30% interactive, the rest non-interactive."""

    def __init__(self, users: int = 10_000, seed: int = 20) -> None:
        self.random = random.Random(seed)
        self.users = [(f"user{n:05d}@contoso.com", str(uuid.UUID(int=self.random.getrandbits(128), version=4)),
                       str(uuid.UUID(int=self.random.getrandbits(128), version=4))) for n in range(users)]
        # Each user signs in from a few addresses: office egress, home, mobile.
        self.addresses = [f"198.51.{n // 250}.{n % 250 + 1}" for n in range(2000)] + \
                         [f"2001:db8:{n:x}::{n % 97 + 1:x}" for n in range(500)]

    def record(self, moment: dt.datetime) -> dict:
        r = self.random
        upn, user_id, device_id = r.choice(self.users)
        app_id, app_name = r.choice(APPS)
        ip = r.choice(self.addresses)
        error = r.choice(ERRORS)
        interactive = r.random() < 0.3
        request = str(uuid.UUID(int=r.getrandbits(128), version=4))
        time = moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
        return {
            "time": time, "resourceId": f"/tenants/{TENANT}/providers/Microsoft.aadiam",
            "operationName": "Sign-in activity", "operationVersion": "1.0",
            "category": "SignInLogs" if interactive else "NonInteractiveUserSignInLogs", "tenantId": TENANT,
            "resultType": str(error), "resultSignature": "None", "resultDescription": "" if not error else
            "Invalid username or password or Invalid on-premise username or password.", "durationMs": 0,
            "callerIpAddress": ip, "correlationId": request, "identity": upn.split("@")[0], "Level": 4,
            "location": "US",
            "properties": {
                "id": request, "createdDateTime": time.replace("Z", "+00:00"), "userDisplayName": upn.split("@")[0],
                "userPrincipalName": upn, "userId": user_id, "appId": app_id, "appDisplayName": app_name,
                "ipAddress": ip, "status": {"errorCode": error}, "clientAppUsed": "Browser" if interactive else
                "Mobile Apps and Desktop clients", "userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
                "deviceDetail": {"deviceId": device_id, "operatingSystem": "Windows10", "browser": "Edge 124.0.0",
                                 "trustType": "Azure AD joined"},
                "location": {"city": "Redmond", "state": "Washington", "countryOrRegion": "US",
                             "geoCoordinates": {"latitude": 47.68, "longitude": -122.12}},
                "correlationId": request, "conditionalAccessStatus": "notApplied", "originalRequestId": request,
                "isInteractive": interactive, "tokenIssuerType": "AzureAD", "authenticationRequirement":
                "multiFactorAuthentication" if interactive else "singleFactorAuthentication",
                "riskLevelDuringSignIn": "none", "riskLevelAggregated": "none", "riskState": "none",
                "riskDetail": "none", "resourceDisplayName": "Microsoft Graph",
                "resourceId": "00000003-0000-0000-c000-000000000000", "appliedConditionalAccessPolicies": [],
                "authenticationDetails": [], "mfaDetail": {}, "homeTenantId": TENANT, "resourceTenantId": TENANT,
            },
        }

    def records(self, count: int, day: dt.date) -> list[dict]:
        start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
        step = 86_400 / count
        return [self.record(start + dt.timedelta(seconds=n * step)) for n in range(count)]


def bodies(records: list[dict], per_event: int = 50) -> list[bytes]:
    """Event Hub bodies as a diagnostic setting sends them: {"records": [...]} of `per_event` records."""
    return [orjson.dumps({"records": records[i:i + per_event]}) for i in range(0, len(records), per_event)]
