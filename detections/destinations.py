"""Alert destinations from ALERT_DESTINATIONS: a JSON list of {"type": "webhook" | "teams" | "slack", ...}.

- webhook: the alert as JSON, POSTed, with its `delivery_id` (the alert id, the same on every retry) in the body and
  in `X-Graphlake-Delivery`; with `secret_setting`, `X-Graphlake-Timestamp: <unix seconds>` and an HMAC-SHA256 of
  `<timestamp>.<body>` keyed with that setting's value in `X-Graphlake-Signature-256: sha256=<hex>`. The receiver
  recomputes it, refuses a timestamp older than five minutes and drops a delivery id it has seen
  (`verify_signature` is that check), as Slack's and Stripe's receivers do.
- teams: a Teams Workflows ("When a Teams webhook request is received") URL; a message with one Adaptive Card.
- slack: a Slack incoming webhook; a message with `text` and Block Kit `blocks`.
Every kind carries `X-Graphlake-Delivery`; the card and the message show the alert id as a fact.

URLs of Teams and Slack webhooks are secrets: give `url_setting`, the name of an app setting holding a Key Vault
reference, rather than `url`. Plain http is accepted only for a loopback host.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tenacity import RetryCallState, Retrying, retry_if_exception, wait_exponential

from shared.core.blob_url import is_loopback_host
from shared.core.errors import ConfigError, one_line

SIGNATURE_HEADER = "X-Graphlake-Signature-256"
TIMESTAMP_HEADER = "X-Graphlake-Timestamp"
DELIVERY_HEADER = "X-Graphlake-Delivery"
REPLAY_TOLERANCE_SECONDS = 300
TIMEOUT_SECONDS = 10.0
_SEVERITY_COLOUR = {"Critical": "attention", "High": "attention", "Medium": "warning", "Low": "accent",
                    "Info": "default"}


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["webhook", "teams", "slack"]
    name: str = ""
    url: str = ""
    url_setting: str = ""
    secret_setting: str = ""
    attempts: int = Field(3, ge=1, le=10)
    backoff_seconds: float = Field(1.0, ge=0, le=60)


@dataclass(frozen=True)
class Destination:
    name: str
    kind: str
    url: str
    secret: bytes | None = None
    attempts: int = 3  # tries per run before the alert waits for the next run
    backoff_seconds: float = 1.0  # first wait between tries; doubles each time

    def request(self, alert: Mapping[str, Any], now: float | None = None) -> tuple[bytes, dict[str, str]]:
        payload = {"webhook": _webhook_payload, "teams": teams_message, "slack": slack_message}[self.kind](alert)
        body = orjson.dumps(payload, default=str)
        # On every kind: Teams' and Slack's message schemas have no field for it and neither service drops a repeat,
        # but a relay in front of them (or a receiver's log) can.
        headers = {"Content-Type": "application/json", DELIVERY_HEADER: delivery_id(alert)}
        if self.secret is not None:
            stamp = str(int(time.time() if now is None else now))
            headers[TIMESTAMP_HEADER] = stamp
            headers[SIGNATURE_HEADER] = _signature(self.secret, stamp, body)
        return body, headers


def delivery_id(alert: Mapping[str, Any]) -> str:
    """The idempotency key: the alert id, fixed when the alert's period opened, so every retry, every run that sends
    the alert again and every re-delivery of its matches carries the same one."""
    return str(alert["alert_id"])


def _webhook_payload(alert: Mapping[str, Any]) -> dict[str, Any]:
    return {**alert, "delivery_id": delivery_id(alert)}


def _signature(secret: bytes, stamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, headers: Mapping[str, str], body: bytes, *, now: float | None = None,
                     tolerance_seconds: float = REPLAY_TOLERANCE_SECONDS) -> bool:
    """The receiver's check of a signed webhook: the signature matches the timestamp and the body, and the timestamp
    is recent. A receiver also drops a `X-Graphlake-Delivery` id it has already taken (retries resend it)."""
    stamp, signature = headers.get(TIMESTAMP_HEADER, ""), headers.get(SIGNATURE_HEADER, "")
    if not stamp.isdigit() or not signature:
        return False
    if abs((time.time() if now is None else now) - int(stamp)) > tolerance_seconds:
        return False
    return hmac.compare_digest(_signature(secret, stamp, body), signature)


class DeliveryFailed(Exception):
    """A destination refused or could not be reached, after retries; the message is one line."""


class AlertRefused(DeliveryFailed):
    """The destination refused this alert for what it holds: the destination itself works, and the other alerts
    go on."""


# Answers about the request's body rather than the destination (401, 403 and 404 are the destination's setup).
_BODY_REFUSED = frozenset({400, 413, 422})


def parse_destinations(text: str, named_setting: Callable[[str], str | None]) -> list[Destination]:
    """ALERT_DESTINATIONS' destinations; `named_setting` gives the settings it names (`Settings.named_setting`)."""
    if not text.strip():
        return []
    try:
        raw = orjson.loads(text)
        if not isinstance(raw, list):
            raise TypeError("not a list")
        specs = [_Spec.model_validate(item) for item in raw]
    except (orjson.JSONDecodeError, ValidationError, TypeError) as exc:
        raise ConfigError(f"ALERT_DESTINATIONS is not a JSON list of destinations: {_first(exc)}") from None
    out = []
    for index, spec in enumerate(specs):
        name = spec.name or f"{spec.type}-{index + 1}"
        url = spec.url or ((named_setting(spec.url_setting) or "") if spec.url_setting else "")
        where = f"ALERT_DESTINATIONS {name}"
        if not url:
            raise ConfigError(f"{where}: no url (give url, or url_setting naming a setting that holds it)")
        _check_url(url, where)
        secret = None
        if spec.secret_setting:
            if spec.type != "webhook":
                raise ConfigError(f"{where}: secret_setting signs webhook bodies only")
            value = named_setting(spec.secret_setting) or ""
            if not value:
                raise ConfigError(f"{where}: setting {spec.secret_setting} (its HMAC key) is empty")
            secret = value.encode()
        out.append(Destination(name, spec.type, url, secret, spec.attempts, spec.backoff_seconds))
    if len({d.name for d in out}) != len(out):
        raise ConfigError("ALERT_DESTINATIONS has two destinations with the same name")
    return out


def route(alert: Mapping[str, Any], destinations: list[Destination]) -> tuple[list[str] | None, list[str]]:
    """The names of the destinations the alert goes to (None: every one; []: none, it is not sent) and what is wrong
    with what the rule asked for. As Panther: `destinations()` returning [] sends nothing; naming a destination that
    does not exist makes it fall back to the rule's default, its OutputIds (else every destination)."""
    known = {d.name for d in destinations}
    problems = []
    asked = alert.get("destinations")
    if asked is not None:
        if not asked:
            return [], []
        unknown = unknown_names(asked, destinations)
        if not unknown:
            return list(dict.fromkeys(asked)), []
        problems.append(f"rule {alert.get('rule_id')}: destinations() named unknown destination(s) "
                        f"{', '.join(unknown)}; its OutputIds (else every destination) used instead")
    output_ids = alert.get("output_ids") or []
    if not output_ids:
        return None, problems
    unknown = unknown_names(output_ids, destinations)
    if unknown:
        problems.append(f"rule {alert.get('rule_id')}: OutputIds names unknown destination(s) {', '.join(unknown)}"
                        " (ALERT_DESTINATIONS names: " + (", ".join(sorted(known)) or "none") + ")")
    return [n for n in dict.fromkeys(output_ids) if n in known], problems


def unknown_names(names: Iterable[str], destinations: list[Destination]) -> list[str]:
    """The names (OutputIds, destinations()'s) that no destination of ALERT_DESTINATIONS has."""
    known = {d.name for d in destinations}
    return [n for n in names if n not in known]


def send(destination: Destination, alert: Mapping[str, Any], client: httpx.Client, *,
         deadline: float | None = None) -> None:
    """POST the alert, retrying connection errors, timeouts, 408, 429 and 5xx with exponential backoff; with a
    `deadline` (time.monotonic()), no request and no wait goes past it."""
    body, headers = destination.request(alert)
    attempts, wait_seconds = destination.attempts, destination.backoff_seconds
    backoff = wait_exponential(multiplier=wait_seconds, max=30 * wait_seconds)

    def left() -> float | None:
        return None if deadline is None else deadline - time.monotonic()

    def post() -> None:
        remaining = left()
        if remaining is not None and remaining <= 0:
            raise _OutOfTime()
        timeout = TIMEOUT_SECONDS if remaining is None else min(TIMEOUT_SECONDS, remaining)
        response = client.post(destination.url, content=body, headers=headers, timeout=timeout)
        if response.status_code >= 300:
            raise _Status(response.status_code, response.text[:200])

    def stop(state: RetryCallState) -> bool:
        remaining = left()
        return state.attempt_number >= attempts or (remaining is not None and remaining <= 0)

    def wait(state: RetryCallState) -> float:
        remaining = left()
        return backoff(state) if remaining is None else max(0.0, min(backoff(state), remaining))

    try:
        for attempt in Retrying(stop=stop, reraise=True, retry=retry_if_exception(_retryable), wait=wait):
            with attempt:
                post()
    except _Status as exc:
        said = f": {one_line(exc.text)}" if exc.text.strip() else ""
        if exc.status in _BODY_REFUSED:
            raise AlertRefused(f"{destination.name} refused alert {alert.get('alert_id')} with HTTP {exc.status}"
                               f"{said}") from None
        raise DeliveryFailed(f"{destination.name} answered HTTP {exc.status}{said}") from None
    except _OutOfTime:
        raise DeliveryFailed(f"{destination.name} did not answer within landing's time for deliveries") from None
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"{destination.name} unreachable: {one_line(exc, with_type=True)}") from None


class _OutOfTime(Exception):
    pass


class _Status(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}")
        self.status, self.text = status, text


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, _Status):
        return exc.status >= 500 or exc.status in (408, 429)
    return isinstance(exc, httpx.TransportError)


def _check_url(url: str, where: str) -> None:
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigError(f"{where}: url is not a URL") from None
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname and is_loopback_host(parts.hostname):
        return
    raise ConfigError(f"{where}: url must be https (plain http only for localhost)")


def _first(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        return f"{where}: {err['msg']}" if where else err["msg"]
    return one_line(exc)


def _facts(alert: Mapping[str, Any]) -> list[tuple[str, str]]:
    events = alert.get("events") or []
    first = events[0] if events else {}
    facts = [("Rule", str(alert.get("rule_id"))), ("Severity", str(alert.get("severity"))),
             ("Matches", f"{alert.get('match_count')} (threshold {alert.get('threshold')})"),
             ("First match", str(alert.get("created"))), ("Alert id", str(alert.get("alert_id")))]
    if first.get("serviceSource"):
        facts.append(("Provider", str(first["serviceSource"])))
    if first.get("title"):
        facts.append(("Graph alert", str(first["title"])))
    return facts


def teams_message(alert: Mapping[str, Any]) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": str(alert.get("title")), "weight": "Bolder", "size": "Medium", "wrap": True,
         "color": _SEVERITY_COLOUR.get(str(alert.get("severity")), "default")},
        {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in _facts(alert)]},
    ]
    if alert.get("runbook"):
        body.append({"type": "TextBlock", "text": f"Runbook: {alert['runbook']}", "wrap": True})
    card: dict[str, Any] = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
                            "version": "1.4", "body": body}
    url = next((e.get("alertWebUrl") for e in alert.get("events") or [] if e.get("alertWebUrl")), None)
    if url:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open in Microsoft Defender", "url": url}]
    return {"type": "message", "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}]}


def slack_message(alert: Mapping[str, Any]) -> dict[str, Any]:
    title = f"[{alert.get('severity')}] {alert.get('title')}"
    fields = [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in _facts(alert)]
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
                                    {"type": "section", "fields": fields[:10]}]
    url = next((e.get("alertWebUrl") for e in alert.get("events") or [] if e.get("alertWebUrl")), None)
    if url:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"<{url}|Open in Microsoft Defender>"}})
    return {"text": title, "blocks": blocks}
