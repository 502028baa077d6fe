from detections.helpers import deep_walk


def rule(event):
    # Every version of an alert is a row; only a version still "new" passes, and dedup on the id keeps an alert
    # updated several times while new to one alert.
    return event.get("status") == "new" and (event.get("severity") or "").lower() not in ("informational", "")


def title(event):
    return f"Microsoft Graph Alert ({event.get('title')})"


def dedup(event):
    return event.get("id")


def severity(event):
    graph = (event.get("severity") or "").lower()
    return {"low": "LOW", "medium": "MEDIUM", "high": "HIGH"}.get(graph, "DEFAULT")


def alert_context(event):
    return {
        "provider": event.get("serviceSource"),
        "category": event.get("category"),
        "description": event.get("description"),
        "alertWebUrl": event.get("alertWebUrl"),
        "users": deep_walk(event, "evidence", "userAccount", "userPrincipalName", default=[]),
        "ips": event.get("p_any_ip_addresses") or [],
    }
