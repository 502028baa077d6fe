from detections.helpers import lookup_values


def _vips_in(event):
    # vip_users.csv, column `user`: a UPN, email or account name per line; yours (in RULES_DIR) and the pack's.
    vips = lookup_values("vip_users.csv", "user")
    return sorted({n for n in [*(event.get("p_any_usernames") or []), *(event.get("p_any_emails") or [])] if n in vips})


def rule(event):
    return (event.get("severity") or "").lower() != "informational" and bool(_vips_in(event))


def title(event):
    return f"Alert on VIP {_vips_in(event)[0]}: {event.get('title')}"


def dedup(event):
    return f"{_vips_in(event)[0]}|{event.get('id')}"


def alert_context(event):
    return {"vips": _vips_in(event), "alert_id": event.get("id"), "provider": event.get("serviceSource"),
            "severity": event.get("severity"), "status": event.get("status"), "alertWebUrl": event.get("alertWebUrl")}
