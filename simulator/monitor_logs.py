"""The simulated tenant's Azure Monitor logs: what its diagnostic settings would stream to an Event Hub.

Entra sign-ins (interactive, non-interactive, service principal, managed identity), Entra audit logs, Entra ID
Protection's risky users and risk events, and the subscription's Activity log, each record in the shape of Microsoft's
Azure Monitor schema pages (envelope `time`, `category`, `operationName`, `resultType`, `callerIpAddress`,
`correlationId`, `identity`, `Level`, ... and the event itself under `properties`), with values of our own.

The records agree with the tenant's alerts, so a pivot from an alert finds its traces in the logs:
  - an "Anonymous IP address" alert's user signs in from the alert's address, flagged anonymizedIPAddress;
  - a pass-the-hash alert's address appears in sign-ins of the alert's user;
  - a user named by an Entra ID Protection alert is a risky user with risk events from the alert's address;
  - a "Suspicious additions to sensitive groups" alert (Defender for Identity) is preceded by the audit record of
    its actor adding the added user to a directory role;
  - a Defender for Cloud alert on an Azure resource is preceded by an Activity log operation on that resource from
    the alert's address.
Around them, background traffic from the tenant's users, apps and managed identities. Some records carry the
variations real ones do (`quirks`): a time with an offset instead of `Z`, `durationMs` and `Level` as a string or a
number, `properties.createdDateTime` in a local offset; each still names the same instant.

`event_hub_bodies` packs records as Azure Monitor sends them: `{"records": [...]}` bodies of one category each,
under Event Hubs' event size limit, and `send_bodies` sends them to an Event Hub sink, one event a body;
`faulty_bodies` gives the bad bodies a reader must quarantine, some with good records beside the bad one.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from azure.eventhub import EventData

from simulator.directory import User, country, external_ip, guid
from simulator.tenant import Tenant
from simulator.timefmt import TICKS_PER_SECOND, format_ticks, parse_literal

ANONYMOUS_IP_TITLE = "Anonymous IP address"
PASS_THE_HASH_TITLE = "Suspected identity theft (pass-the-hash)"
ROLE_CHANGE_TITLE = "Suspicious additions to sensitive groups"
IDENTITY_PROTECTION = "azureAdIdentityProtection"
DEFENDER_FOR_CLOUD = "microsoftDefenderForCloud"

SIGN_IN_CATEGORIES = ("SignInLogs", "NonInteractiveUserSignInLogs", "ServicePrincipalSignInLogs",
                      "ManagedIdentitySignInLogs")
ENTRA_CATEGORIES = (*SIGN_IN_CATEGORIES, "AuditLogs", "RiskyUsers", "UserRiskEvents")
ACTIVITY_CATEGORIES = ("Administrative", "Security", "Policy")
# Azure Monitor sends a body of at most 256 KB, more bodies when a five-minute batch is larger ("Azure AD activity
# logs in Azure Monitor", Event hub messages for activity logs); Event Hubs Standard would take 1 MB.
MAX_BODY_BYTES = 256 * 1024

_MINUTE = 60 * TICKS_PER_SECOND
_HOUR = 60 * _MINUTE
_APPS = (("00000002-0000-0ff1-ce00-000000000000", "Office 365 Exchange Online"),
         ("00000003-0000-0ff1-ce00-000000000000", "Microsoft Graph"),
         ("c44b4083-3bb0-49c1-b47d-974e53cbdf3c", "Azure Portal"),
         ("4765445b-32c6-49b0-83e6-1d93765276ca", "OfficeHome"),
         ("1fec8e78-bce4-4aaf-ab1b-5451cc387264", "Microsoft Teams"))
_AGENTS = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 "
           "Safari/537.36 Edg/131.0", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 "
           "(KHTML, like Gecko) Version/18.1 Safari/605.1.15", "Microsoft Office/16.0 (Windows NT 10.0)")
_OFFICE_NETS = ("198.51.100.10", "198.51.100.11", "198.51.100.12")
_ROLES = (("62e90394-69f5-4237-9190-012177145e10", "Global Administrator"),
          ("e8611ab8-c189-46e8-94e1-60213ab1f814", "Privileged Role Administrator"),
          ("194ae4cb-b126-40b2-bd5b-6091b380977d", "Security Administrator"))
_ADMIN_OPERATIONS = ("MICROSOFT.COMPUTE/VIRTUALMACHINES/WRITE", "MICROSOFT.STORAGE/STORAGEACCOUNTS/LISTKEYS/ACTION",
                     "MICROSOFT.KEYVAULT/VAULTS/WRITE", "MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/WRITE",
                     "MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/SECURITYRULES/WRITE")


@dataclass(frozen=True, slots=True)
class Pivot:
    """What an alert promises the logs hold: this user (and the user it acted on), this address, before this time."""
    alert_id: str
    title: str
    service_source: str
    upn: str | None
    ip: str | None
    first_activity: int  # ticks
    target_upn: str | None = None
    resource_id: str | None = None


def pivots(tenant: Tenant) -> list[Pivot]:
    """The tenant's alerts as Graph serves them, reduced to what the logs must agree with."""
    found = []
    # With Graph's evolvable enums in full: otherwise Defender for Cloud's serviceSource reads unknownFutureValue.
    for alert in tenant.query(top=max(tenant.alert_count, 1), include_unknown_enum_members=True).alerts:
        evidence = alert.get("evidence") or []
        upns = [e["userAccount"]["userPrincipalName"] for e in evidence
                if e.get("@odata.type", "").endswith("userEvidence")
                and (e.get("userAccount") or {}).get("userPrincipalName")]
        ips = [e["ipAddress"] for e in evidence if e.get("@odata.type", "").endswith("ipEvidence")]
        resources = [e["resourceId"] for e in evidence if e.get("@odata.type", "").endswith("azureResourceEvidence")
                     and "attacked" in e.get("roles", [])]
        first = parse_literal(alert.get("firstActivityDateTime") or alert["createdDateTime"])
        found.append(Pivot(alert["id"], alert["title"], alert.get("serviceSource") or "",
                           upns[0] if upns else None, ips[0] if ips else None, first,
                           # A sensitive-group alert names its actor first, then the user added.
                           upns[1] if alert["title"] == ROLE_CHANGE_TITLE and len(upns) > 1 else None,
                           resources[0] if resources else None))
    return found


def pass_the_hash(alerts: list[Pivot]) -> Pivot | None:
    """The newest pass-the-hash alert whose address and user the logs show signing in (see `records`): where the
    seed document's investigation starts."""
    found = [p for p in alerts if p.title == PASS_THE_HASH_TITLE and p.ip and p.upn]
    return max(found, key=lambda p: p.first_activity, default=None)


class MonitorLogs:
    """Diagnostic records of one tenant over the `days` before its clock; deterministic for a seed."""

    def __init__(self, tenant: Tenant, seed: int = 11, days: float = 1.0, sign_ins_per_user: float = 4.0,
                 quirks: bool = True) -> None:
        self.tenant = tenant
        self.directory = tenant.directory
        self.seed = seed
        self.rng = random.Random(seed)
        self.end = tenant.clock
        self.start = self.end - int(days * 24 * _HOUR)
        self.sign_ins_per_user = sign_ins_per_user
        self.quirks = quirks
        self.resource_id = f"/tenants/{tenant.tenant_id}/providers/Microsoft.aadiam"
        self.subscription = f"/SUBSCRIPTIONS/{self.directory.subscription_id.upper()}"
        users = self.directory.users
        self.apps = list(_APPS)
        self.service_principals = [(a.app_id, a.object_id, a.name) for a in self.directory.oauth_apps]
        self.managed_identities = [(guid(self.rng), guid(self.rng), name)
                                   for name in ("id-graphlake", "id-contoso-web", "id-backup-runner")]
        self.user_by_upn = {u.upn: u for u in users}

    # --- the whole stream -----------------------------------------------------------------------------------

    def records(self, alerts: list[Pivot] | None = None) -> list[dict]:
        """Every record, oldest first; the same ones on every call. `alerts`: the tenant's `pivots`, when the caller
        has them already."""
        self.rng = random.Random(self.seed)
        out: list[dict] = []
        for pivot in pivots(self.tenant) if alerts is None else alerts:
            out += self._for_alert(pivot)
        out += self._background()
        out.sort(key=lambda r: parse_literal(r["time"]))
        if self.quirks:
            for record in out:
                if self.rng.random() < 0.1:
                    _vary(record, self.rng)
        return out

    def _for_alert(self, p: Pivot) -> list[dict]:
        before = p.first_activity - self.rng.randrange(1, 30) * _MINUTE
        if p.service_source == DEFENDER_FOR_CLOUD and p.resource_id and p.ip:
            return [self.activity(self.rng.choice(self.directory.users), before, p.resource_id, p.ip)]
        if p.upn is None:
            return []
        who = self._user(p.upn)
        if p.service_source == IDENTITY_PROTECTION and p.ip:
            risk = "anonymizedIPAddress" if p.title == ANONYMOUS_IP_TITLE else "unfamiliarFeatures"
            sign_in = self.user_sign_in(who, before, p.ip, interactive=True, risk=(risk, "medium"))
            return [sign_in, *self._risk(who, p.ip, before, risk, sign_in)]
        if p.title == PASS_THE_HASH_TITLE and p.ip:
            return [self.user_sign_in(who, before, p.ip, interactive=False)]
        if p.title == ROLE_CHANGE_TITLE and p.target_upn:
            return [self.role_assignment(who, self._user(p.target_upn), before)]
        return []

    def _user(self, upn: str) -> User:
        known = self.user_by_upn.get(upn)
        if known:
            return known
        # A user the directory does not list (an alert may name a guest): enough of one for a record.
        return User(account_name=upn.split("@")[0], display_name=upn, upn=upn, sid="", aad_id=guid(self.rng),
                    ad_guid="")

    def _background(self) -> list[dict]:
        rng, out = self.rng, []
        span = max(self.end - self.start, 1)
        users = self.directory.users
        count = int(len(users) * self.sign_ins_per_user)
        for _ in range(count):
            who, at = rng.choice(users), self.start + rng.randrange(span)
            address = rng.choice(_OFFICE_NETS) if rng.random() < 0.7 else external_ip(rng)
            out.append(self.user_sign_in(who, at, address, interactive=rng.random() < 0.25))
        for _ in range(count // 4):
            out.append(self.app_sign_in(self.start + rng.randrange(span), managed=rng.random() < 0.5))
        for _ in range(max(count // 20, 1)):
            out.append(self.user_update(rng.choice(self.directory.admins), rng.choice(users),
                                        self.start + rng.randrange(span)))
        for _ in range(max(count // 10, 1)):
            out.append(self.activity(rng.choice(self.directory.admins), self.start + rng.randrange(span)))
        return out

    # --- Entra sign-ins ---------------------------------------------------------------------------------------

    def _envelope(self, category: str, at: int, operation: str, ip: str, correlation: str, identity: str) -> dict:
        return {"time": format_ticks(at), "resourceId": self.resource_id, "operationName": operation,
                "operationVersion": "1.0", "category": category, "tenantId": self.tenant.tenant_id,
                "resultType": "0", "resultSignature": "None", "resultDescription": "", "durationMs": 0,
                "callerIpAddress": ip, "correlationId": correlation, "identity": identity, "Level": 4,
                "location": "US"}

    def user_sign_in(self, who: User, at: int, ip: str, interactive: bool,
                     risk: tuple[str, str] | None = None) -> dict:
        rng = self.rng
        correlation = guid(rng)
        app_id, app = rng.choice(self.apps)
        failed = risk is None and rng.random() < 0.06
        record = self._envelope("SignInLogs" if interactive else "NonInteractiveUserSignInLogs", at,
                                "Sign-in activity", ip, correlation, who.display_name)
        if failed:
            record.update(resultType="50126", resultDescription="Invalid username or password or Invalid on-premise "
                          "username or password.")
        record["properties"] = {
            "id": guid(rng), "createdDateTime": format_ticks(at), "userDisplayName": who.display_name,
            "userPrincipalName": who.upn, "userId": who.aad_id, "userType": "Member", "appId": app_id,
            "appDisplayName": app, "ipAddress": ip, "clientAppUsed": "Browser" if interactive else "Mobile Apps and "
            "Desktop clients", "userAgent": rng.choice(_AGENTS), "correlationId": correlation,
            "conditionalAccessStatus": "success" if not failed else "notApplied", "isInteractive": interactive,
            "tokenIssuerType": "AzureAD", "tokenIssuerName": "", "authenticationRequirement":
                "multiFactorAuthentication" if interactive else "singleFactorAuthentication",
            "resourceDisplayName": app, "resourceId": guid(rng), "homeTenantId": self.tenant.tenant_id,
            "status": {"errorCode": int(record["resultType"]),
                       **({"failureReason": record["resultDescription"]} if failed else {})},
            "deviceDetail": {"deviceId": "", "displayName": "", "operatingSystem": "Windows10", "browser": "Edge 131.0",
                             "isCompliant": False, "isManaged": False, "trustType": ""},
            "location": {"city": "", "state": "", "countryOrRegion": country(rng) if ip not in _OFFICE_NETS else "US",
                         "geoCoordinates": {}},
            "riskDetail": "none", "riskLevelAggregated": risk[1] if risk else "none",
            "riskLevelDuringSignIn": risk[1] if risk else "none", "riskState": "atRisk" if risk else "none",
            "riskEventTypes": [risk[0]] if risk else [], "riskEventTypes_v2": [risk[0]] if risk else [],
            "processingTimeInMilliseconds": rng.randrange(20, 400), "appliedConditionalAccessPolicies": [],
            "authenticationDetails": [], "networkLocationDetails": [],
        }
        return record

    def app_sign_in(self, at: int, managed: bool) -> dict:
        rng = self.rng
        app_id, object_id, name = rng.choice(self.managed_identities if managed else self.service_principals)
        correlation = guid(rng)
        ip = "" if managed else rng.choice(_OFFICE_NETS)
        category = "ManagedIdentitySignInLogs" if managed else "ServicePrincipalSignInLogs"
        record = self._envelope(category, at, "Sign-in activity", ip, correlation, name)
        resource_app, resource = rng.choice(self.apps)
        record["properties"] = {
            "id": guid(rng), "createdDateTime": format_ticks(at), "appId": app_id, "appDisplayName": name,
            "servicePrincipalId": object_id, "servicePrincipalName": name, "ipAddress": ip,
            "correlationId": correlation, "resourceDisplayName": resource, "resourceId": resource_app,
            "status": {"errorCode": 0}, "location": {"countryOrRegion": "US" if ip else ""},
            "isInteractive": False, "tokenIssuerType": "AzureAD",
            **({"managedIdentityType": "userAssigned"} if managed else {"servicePrincipalCredentialKeyId": guid(rng),
                                                                      "clientCredentialType": "clientSecret"}),
        }
        return record

    # --- Entra audit logs and ID Protection --------------------------------------------------------------------

    def _audit(self, actor: User, target: User, at: int, activity: str, category: str, operation_type: str,
               modified: list[dict]) -> dict:
        rng = self.rng
        correlation = guid(rng)
        ip = rng.choice(_OFFICE_NETS)
        record = self._envelope("AuditLogs", at, activity, ip, correlation, actor.display_name)
        record["properties"] = {
            "id": f"Directory_{correlation.upper()}_{rng.randrange(10**5, 10**6)}", "category": category,
            "correlationId": correlation, "result": "success", "resultReason": "", "activityDisplayName": activity,
            "activityDateTime": format_ticks(at), "loggedByService": "Core Directory",
            "operationType": operation_type,
            "initiatedBy": {"user": {"id": actor.aad_id, "displayName": None, "userPrincipalName": actor.upn,
                                     "ipAddress": ip, "roles": []}},
            "targetResources": [{"id": target.aad_id, "displayName": None, "type": "User",
                                 "userPrincipalName": target.upn, "modifiedProperties": modified,
                                 "administrativeUnits": []}],
            "additionalDetails": [{"key": "UserType", "value": "Member"}],
        }
        return record

    def role_assignment(self, actor: User, target: User, at: int) -> dict:
        role_id, role = self.rng.choice(_ROLES)
        return self._audit(actor, target, at, "Add member to role", "RoleManagement", "Assign", [
            {"displayName": "Role.ObjectID", "oldValue": None, "newValue": f"\"{role_id}\""},
            {"displayName": "Role.DisplayName", "oldValue": None, "newValue": f"\"{role}\""}])

    def user_update(self, actor: User, target: User, at: int) -> dict:
        return self._audit(actor, target, at, "Update user", "UserManagement", "Update", [
            {"displayName": "JobTitle", "oldValue": "[]", "newValue": "[\"Analyst\"]"}])

    def _risk(self, who: User, ip: str, at: int, risk_type: str, sign_in: dict) -> list[dict]:
        rng = self.rng
        detected = at + rng.randrange(1, 10) * _MINUTE
        event = self._envelope("UserRiskEvents", detected, "User Risk Detection", ip, sign_in["correlationId"],
                               who.display_name)
        event["properties"] = {
            "id": f"{rng.getrandbits(256):064x}", "requestId": sign_in["properties"]["id"],
            "correlationId": sign_in["correlationId"], "riskEventType": risk_type, "riskState": "atRisk",
            "riskLevel": "medium", "riskDetail": "none", "source": "IdentityProtection",
            "detectionTimingType": "realtime", "activity": "signin", "tokenIssuerType": "AzureAD",
            "ipAddress": ip, "activityDateTime": format_ticks(at), "detectedDateTime": format_ticks(detected),
            "lastUpdatedDateTime": format_ticks(detected), "userId": who.aad_id, "userDisplayName": who.display_name,
            "userPrincipalName": who.upn, "additionalInfo": "[{\"Key\":\"userAgent\",\"Value\":\"Tor Browser\"}]",
            "location": sign_in["properties"]["location"],
        }
        risky = self._envelope("RiskyUsers", detected, "Risky user", "", guid(rng), who.display_name)
        risky["properties"] = {
            "id": who.aad_id, "isDeleted": False, "isProcessing": False, "riskLastUpdatedDateTime":
                format_ticks(detected), "riskLevel": "medium", "riskState": "atRisk", "riskDetail": "none",
            "userDisplayName": who.display_name, "userPrincipalName": who.upn,
        }
        return [event, risky]

    # --- Azure Activity log ------------------------------------------------------------------------------------

    def activity(self, who: User, at: int, resource_id: str | None = None, ip: str | None = None) -> dict:
        """An Activity log record; on `resource_id` from `ip` (an alert's), an Administrative operation on it."""
        rng = self.rng
        operation = rng.choice(_ADMIN_OPERATIONS)
        category = "Administrative" if resource_id else rng.choices(ACTIVITY_CATEGORIES, (8, 1, 1))[0]
        if category == "Security":
            operation = "MICROSOFT.SECURITY/LOCATIONS/ALERTS/ACTIVATE/ACTION"
        elif category == "Policy":
            operation = "MICROSOFT.AUTHORIZATION/POLICIES/AUDIT/ACTION"
        if resource_id:
            # The Activity log writes resource ids upper case; the alert's evidence keeps Azure's own case.
            resource = resource_id.upper()
            provider, kind = resource.split("/PROVIDERS/", 1)[1].split("/")[:2]
            operation = f"{provider}/{kind}/" + ("LISTKEYS/ACTION" if kind == "STORAGEACCOUNTS" else "WRITE")
        else:
            provider, kind = operation.split("/")[0:2]
            resource = f"{self.subscription}/RESOURCEGROUPS/RG-PROD/PROVIDERS/{provider}/{kind}/RES{rng.randrange(1, 40):02d}"
        ip = ip or (rng.choice(_OFFICE_NETS) if rng.random() < 0.8 else external_ip(rng))
        correlation = guid(rng)
        return {
            "time": format_ticks(at), "resourceId": resource, "operationName": operation, "category": category,
            "resultType": "Success", "resultSignature": "Succeeded.OK", "durationMs": str(rng.randrange(10, 3000)),
            "callerIpAddress": ip, "correlationId": correlation, "level": "Information", "location": "global",
            "identity": {
                "authorization": {"scope": resource, "action": operation.lower().replace("microsoft.", "Microsoft.", 1),
                                  "evidence": {"role": "Contributor", "roleAssignmentScope": self.subscription.lower(),
                                               "principalType": "User", "principalId": who.aad_id.replace("-", "")}},
                "claims": {"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn": who.upn,
                           "name": who.display_name, "ipaddr": ip,
                           "http://schemas.microsoft.com/identity/claims/objectidentifier": who.aad_id},
            },
            "properties": {"statusCode": "OK", "serviceRequestId": guid(rng), "eventCategory": category,
                           "entity": resource, "message": operation.lower(), "hierarchy": self.tenant.tenant_id},
        }


def _vary(record: dict, rng: random.Random) -> None:
    """One of the variations real records carry, the instant and the value unchanged."""
    kind = rng.randrange(4)
    if kind == 0 and record["time"].endswith("Z"):
        record["time"] = record["time"][:-1] + "+00:00"
    elif kind == 1:
        duration = record["durationMs"]
        record["durationMs"] = int(duration) if isinstance(duration, str) else str(duration)
    elif kind == 2 and "Level" in record:
        record["Level"] = str(record["Level"])
    elif kind == 3 and "createdDateTime" in record.get("properties", {}):
        at = parse_literal(record["properties"]["createdDateTime"])
        hours = rng.choice((-8, -5, 1, 2, 9))
        local = format_ticks(at + hours * _HOUR)[:-1]
        record["properties"]["createdDateTime"] = f"{local}{'+' if hours >= 0 else '-'}{abs(hours):02d}:00"


def faulty_bodies(records: list[dict]) -> list[tuple[str, bytes, int]]:
    """Bodies a reader of the logs hub must not trust, as (what is wrong, body, good records in it): whatever it does
    with the bad, the good records beside it must land."""
    good = records[:2]
    assert len(good) == 2, "two records are needed to build the faulty bodies"

    def body(*items: object) -> bytes:
        return orjson.dumps({"records": list(items)})

    def timeless(record: dict, **envelope: object) -> dict:
        # Without its properties' own times too: a reader rightly falls back on those (createdDateTime, ...) when
        # the envelope's time is missing or unreadable, and the record is bad only when it has none.
        properties = {k: v for k, v in (record.get("properties") or {}).items() if not k.endswith("DateTime")}
        return {**{k: v for k, v in record.items() if k != "time"}, **envelope, "properties": properties}

    no_time = timeless(good[0])
    return [
        ("not JSON (a body cut short)", body(*good)[:-7], 0),
        ("no records array", orjson.dumps({"value": good}), 0),
        ("records is not a list", orjson.dumps({"records": good[0]}), 0),
        ("a record that is not an object, beside good ones", body(good[0], "SignInLogs", good[1]), 2),
        ("a record without time, beside good ones", body(good[0], no_time, good[1]), 2),
        ("a time that is no timestamp, beside good ones", body(good[0], timeless(good[1], time="yesterday"), good[1]),
         2),
        ("a category no table holds, beside good ones", body(good[0], {**good[1], "category": "ProvisioningLogs"},
                                                             good[1]), 2),
        ("a record without category, beside good ones", body(good[0], {k: v for k, v in good[1].items()
                                                                       if k != "category"}, good[1]), 2),
    ]


def event_hub_bodies(records: Iterable[dict], max_bytes: int = MAX_BODY_BYTES) -> Iterator[bytes]:
    """Event Hub bodies as Azure Monitor sends them: `{"records": [...]}`, one category per body, in record order
    within a category, each body at most max_bytes (a record larger than that goes alone)."""
    by_category: dict[str, list[bytes]] = {}
    for record in records:
        by_category.setdefault(record["category"], []).append(orjson.dumps(record))
    head, tail = b'{"records":[', b"]}"
    for encoded in by_category.values():
        batch: list[bytes] = []
        size = len(head) + len(tail)
        for item in encoded:
            if batch and size + len(item) + 1 > max_bytes:
                yield head + b",".join(batch) + tail
                batch, size = [], len(head) + len(tail)
            batch.append(item)
            size += len(item) + 1
        if batch:
            yield head + b",".join(batch) + tail


def send_bodies(sink: Any, hub: str, bodies: Iterable[bytes]) -> int:
    """Send the bodies to `hub` of `sink` (an Event Hub sink: `create_batch(hub, partition_key)`, `send(hub,
    batch)`) as a diagnostic setting does: one event a body, no partition key, in the sink's own batches, each sent
    when the next body would not fit it. The number of batches sent."""
    sent, batch = 0, sink.create_batch(hub, None)
    for body in bodies:
        event = EventData(body)
        try:
            batch.add(event)
        except ValueError:  # full: a body is at most MAX_BODY_BYTES, which an empty batch holds
            sink.send(hub, batch)
            sent, batch = sent + 1, sink.create_batch(hub, None)
            batch.add(event)
    if len(batch):
        sink.send(hub, batch)
        sent += 1
    return sent


__all__ = ["ACTIVITY_CATEGORIES", "ENTRA_CATEGORIES", "MonitorLogs", "Pivot", "event_hub_bodies", "faulty_bodies",
           "pass_the_hash", "pivots", "send_bodies"]
