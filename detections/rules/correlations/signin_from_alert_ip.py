def title(event):
    outcome = "signed in" if event["succeeded"] else "tried to sign in"
    return f"{event['user'] or 'An identity'} {outcome} from {event['ip']}, an address named in an alert"


def dedup(event):
    return f"{event['ip']}|{event['user']}"


def alert_context(event):
    return {"ip": event["ip"], "user": event["user"], "sign_ins": event["sign_ins"],
            "succeeded": event["succeeded"], "alerts": event["alert_ids"], "first_sign_in": str(event["p_event_time"])}
