from detections.helpers import deep_get


def _honeytokens(event):
    """Accounts the alert's evidence marks as honeytokens (Defender for Identity tags them so)."""
    found = []
    for item in event.get("evidence") or []:
        marks = [str(t).lower() for t in [*(item.get("tags") or []), *(item.get("detailedRoles") or [])]]
        if "honeytoken" in marks:
            name = deep_get(item, "userAccount", "userPrincipalName") or deep_get(item, "userAccount", "accountName")
            found.append(str(name or "unknown").lower())
    return found


def rule(event):
    return bool(_honeytokens(event)) or event.get("detectorId") == "HoneytokenActivitySecurityAlert"


def title(event):
    accounts = _honeytokens(event) or ["a honeytoken account"]
    return f"Honeytoken {accounts[0]} was used: {event.get('title')}"


def dedup(event):
    # Each version of the alert is a row: one alert per honeytoken, not one per update.
    accounts = _honeytokens(event)
    return accounts[0] if accounts else event.get("id")


def alert_context(event):
    return {
        "honeytokens": _honeytokens(event),
        "alert_id": event.get("id"),
        "status": event.get("status"),
        "devices": event.get("p_any_domain_names") or [],
        "ips": event.get("p_any_ip_addresses") or [],
        "alertWebUrl": event.get("alertWebUrl"),
    }
