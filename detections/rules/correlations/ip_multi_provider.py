def title(event):
    return f"{event['ip']} in alerts from {len(event['providers'])} providers within an hour"


def dedup(event):
    return event["ip"]


def alert_context(event):
    return {"ip": event["ip"], "providers": event["providers"], "alert_ids": event["alert_ids"],
            "window_start": str(event["p_event_time"])}
