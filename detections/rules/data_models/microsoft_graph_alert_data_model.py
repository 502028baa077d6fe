"""Panther's standard fields for a Graph alert, from its evidence (alerts_v2's evidence types and roles)."""

from collections.abc import Mapping

from detections.event import deep_get

USER = "#microsoft.graph.security.userEvidence"
IP = "#microsoft.graph.security.ipEvidence"
CONNECTION = "#microsoft.graph.security.networkConnectionEvidence"
DEVICE = "#microsoft.graph.security.deviceEvidence"
# Graph's evidenceRole values that put an IP on either side of what happened.
SOURCE_ROLES = {"source", "attacker", "commandAndControl"}
DESTINATION_ROLES = {"destination", "attacked", "compromised"}


def _evidence(event):
    # graphlake's event gives the parsed evidence as it is (read-only by convention here): the rule's udm calls
    # do not pay for wrapping every item again on each call.
    raw = getattr(event, "raw", None)
    if raw is not None:
        try:
            return raw("evidence") or []
        except KeyError:
            return []
    return event.get("evidence") or []


def _items(event, odata_type):
    return [item for item in _evidence(event) if isinstance(item, dict | Mapping)
            and item.get("@odata.type") == odata_type]


def _roles(item):
    return set(item.get("roles") or ()) | {item.get("role") or ""}


def get_actor_user(event):
    for item in _items(event, USER):
        account = item.get("userAccount") or {}
        found = account.get("userPrincipalName") or account.get("accountName")
        if found:
            return found
    return None


def get_source_ip(event):
    for item in _items(event, CONNECTION):
        found = deep_get(item, "sourceAddress", "ipAddress")
        if found:
            return found
    ips = [item for item in _items(event, IP) if item.get("ipAddress")]
    for item in ips:
        if _roles(item) & SOURCE_ROLES:
            return item["ipAddress"]
    # Without roles, the first IP not named as the destination: most alerts name only the attacker's address.
    return next((item["ipAddress"] for item in ips if not _roles(item) & DESTINATION_ROLES), None)


def get_destination_ip(event):
    for item in _items(event, CONNECTION):
        found = deep_get(item, "destinationAddress", "ipAddress")
        if found:
            return found
    return next((item["ipAddress"] for item in _items(event, IP)
                 if item.get("ipAddress") and _roles(item) & DESTINATION_ROLES), None)


def get_hostname(event):
    for item in _items(event, DEVICE):
        found = item.get("deviceDnsName") or item.get("hostName")
        if found:
            return found
    return None
