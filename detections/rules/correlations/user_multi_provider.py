def title(event):
    return f"{event['user']} in alerts from {len(event['providers'])} providers within an hour"


def dedup(event):
    return event["user"]


def alert_context(event):
    return {"user": event["user"], "providers": event["providers"], "alert_ids": event["alert_ids"],
            "window_start": str(event["p_event_time"])}
