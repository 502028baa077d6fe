def title(event):
    return f"Risky sign-in by {event['user']}, then an alert on them: {event['title']}"


def dedup(event):
    return f"{event['user']}|{event['id']}"


def alert_context(event):
    return {"user": event["user"], "alert": event["id"], "alert_title": event["title"],
            "provider": event["serviceSource"], "first_risk": str(event["risk_time"]),
            "risk_sources": event["risk_sources"]}
