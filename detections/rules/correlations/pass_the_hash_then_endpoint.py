def title(event):
    return f"Pass-the-hash then an endpoint alert on {event['device']} within two hours"


def dedup(event):
    return f"{event['id']}|{event['device']}"


def alert_context(event):
    return {"pass_the_hash_alert": event["id"], "device": event["device"],
            "endpoint_alerts": event["endpoint_alert_ids"], "first_endpoint_alert": str(event["first_endpoint_alert"])}
