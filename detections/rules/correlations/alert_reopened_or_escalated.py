def title(event):
    if event["change"] == "reopened":
        return f"Alert reopened: {event['title']} (was resolved, now {event['status']})"
    return f"Alert severity raised: {event['title']} ({event['previous_severity']} to {event['severity']})"


def dedup(event):
    return f"{event['id']}|{event['change']}"


def severity(event):
    return "HIGH" if event["severity"] == "high" else "DEFAULT"


def alert_context(event):
    return {"alert_id": event["id"], "change": event["change"], "status": event["status"],
            "previous_status": event["previous_status"], "severity": event["severity"],
            "previous_severity": event["previous_severity"], "provider": event["serviceSource"],
            "alertWebUrl": event["alertWebUrl"]}
