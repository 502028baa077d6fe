"""One Graph alert (parsed into dicts) to one lake row: typed columns, Panther p_ fields, p_any indicator lists.

`normalize_alert` is the mapping, read top to bottom. `AlertBatch` keeps the rows of a batch for one Arrow table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timezone
from functools import lru_cache

import orjson
import pyarrow as pa

from normalizers import indicators
from normalizers.evidence import (
    ACTOR_ID,
    DNS_DOMAIN,
    EMAIL,
    HASH,
    HOST,
    IP,
    SENDER_EMAIL,
    UPN,
    URL,
    USERNAME,
    Found,
    evidence_indicators,
    key_name_indicators,
)
from normalizers.names import LOG_TYPE
from normalizers.providers import provider_for
from normalizers.schema import SCHEMA, SCHEMA_VERSION, rows_to_table
from shared.core.json_text import as_text, json_text
from shared.core.timestamps import parse_graph_time

_UTC = timezone.utc


class NotAnAlert(ValueError):
    """The input is not a Graph alert (not an object, no id, no readable timestamp); the caller quarantines it."""


# Graph properties by the column type they land in, names kept exactly as Graph spells them. Adding a property
# is one name here and its column in schema.py; a property named nowhere lands in p_unmapped.
STRING_PROPERTIES = (
    "id", "providerAlertId", "incidentId", "tenantId", "title", "description", "recommendedActions",
    "category", "severity", "status", "classification", "determination", "serviceSource",
    "detectionSource", "productName", "detectorId", "alertPolicyId", "assignedTo", "actorDisplayName",
    "threatDisplayName", "threatFamilyName", "investigationState", "alertWebUrl", "incidentWebUrl",
)
STRING_LIST_PROPERTIES = ("categories", "mitreTechniques", "systemTags")
TIMESTAMP_PROPERTIES = (
    "createdDateTime", "lastUpdateDateTime", "resolvedDateTime", "firstActivityDateTime",
    "lastActivityDateTime",
)
# Kept as JSON text: evidence is polymorphic and open-ended, and must survive exactly (unknown types too).
JSON_PROPERTIES = ("comments", "evidence", "additionalData", "customDetails")

# p_event_time is the first of these that reads as a time: a function of the alert alone, so that every
# delivery of a version lands in the same day partition. createdDateTime first: it is the same for every version.
EVENT_TIME_PROPERTIES = (
    "createdDateTime", "firstActivityDateTime", "lastActivityDateTime", "lastUpdateDateTime", "resolvedDateTime",
)

# `@odata.type` of the alert itself says only "this is an alert", so it is not unmapped.
_ALERT_ODATA_TYPES = frozenset({"#microsoft.graph.security.alert", "microsoft.graph.security.alert"})
_MAPPED_PROPERTIES = frozenset(
    STRING_PROPERTIES + STRING_LIST_PROPERTIES + TIMESTAMP_PROPERTIES + JSON_PROPERTIES + ("@odata.type",))
# No top-level string property is read for indicators: assignedTo names the analyst owning the alert, and
# alertWebUrl/incidentWebUrl link every alert to the portal; as pivots they would match everything.

_EMPTY_ROW = dict.fromkeys(SCHEMA.names)
_IPS, _DOMAINS, _USERNAMES, _EMAILS = (indicators.IP_ADDRESSES, indicators.DOMAIN_NAMES, indicators.USERNAMES,
                                       indicators.EMAILS)
_URLS, _ACTOR_IDS, _HASH_COLUMNS = indicators.URLS, indicators.ACTOR_IDS, indicators.HASHES


def normalize_alert(alert: object, *, source_id: str | None, source_label: str, parse_time: datetime,
                    pull_time: datetime | None = None) -> dict:
    """One lake row (keys exactly SCHEMA's names, in its order) for one version of one Graph alert.

    Raises NotAnAlert for input that is not a Graph alert. `source_id` None takes the alert's tenantId. `pull_time`:
    when the pull read this version from Graph (None for a version from a file).
    """
    if type(alert) is not dict:
        raise NotAnAlert(f"expected a JSON object, got {type(alert).__name__}")
    alert_id = alert.get("id")
    if type(alert_id) is not str or not alert_id:
        raise NotAnAlert("alert has no id")
    odata_type = alert.get("@odata.type")
    if odata_type is not None and odata_type not in _ALERT_ODATA_TYPES:
        raise NotAnAlert(f"@odata.type is {odata_type!r}, not a security alert")
    version = alert.get("lastUpdateDateTime") or alert.get("createdDateTime")
    if not version:
        raise NotAnAlert(f"alert {alert_id} has neither lastUpdateDateTime nor createdDateTime")

    row = _EMPTY_ROW.copy()  # Keys in SCHEMA's order.
    for name in STRING_PROPERTIES:
        row[name] = as_text(alert.get(name))
    for name in STRING_LIST_PROPERTIES:
        row[name] = _as_string_list(alert.get(name))
    unreadable = {}
    for name in TIMESTAMP_PROPERTIES:
        raw = alert.get(name)
        row[name] = parsed = parse_graph_time(raw)
        if parsed is None and raw is not None:
            unreadable[name] = raw  # Kept in p_unmapped, not nulled away.
    for name in JSON_PROPERTIES:
        value = alert.get(name)
        row[name] = None if value is None else json_text(value)
    unmapped = ({} if alert.keys() <= _MAPPED_PROPERTIES
                else {name: value for name, value in alert.items() if name not in _MAPPED_PROPERTIES})
    unmapped.update(unreadable)
    row["p_unmapped"] = json_text(unmapped) if unmapped else None

    event_time = next((row[name] for name in EVENT_TIME_PROPERTIES if row[name] is not None), None)
    if event_time is None:
        raise NotAnAlert(f"alert {alert_id} has no readable timestamp: " + ", ".join(
            f"{name} {raw!r}" for name, raw in unreadable.items()))
    tenant_id = row["tenantId"]
    row["p_log_type"] = LOG_TYPE
    row["p_row_id"] = row_id(tenant_id, alert_id, as_text(version), row["serviceSource"])
    row["p_event_time"] = event_time
    row["p_parse_time"] = parse_time if parse_time.tzinfo is not None else parse_time.replace(tzinfo=_UTC)
    row["p_pull_time"] = pull_time
    row["p_source_id"] = source_id or tenant_id or ""
    row["p_source_label"] = source_label
    row["p_schema_version"] = SCHEMA_VERSION
    row.update(_indicator_lists(alert))
    return row


def row_id(tenant_id: str | None, alert_id: str, last_update: str | None, service_source: str | None) -> str:
    """Deterministic p_row_id: one id per alert version, so a re-delivered version deduplicates.

    An alert is (tenantId, serviceSource, id): two products can report one id, even with one lastUpdateDateTime,
    and both versions must survive the dedup. Without a serviceSource the key is the one used before it was part
    of it (legacy_row_id), so such rows keep their ids."""
    if not service_source:
        return legacy_row_id(tenant_id, alert_id, last_update)
    key = f"{tenant_id or ''}\x1f{alert_id}\x1f{last_update or ''}\x1f{service_source}".encode()
    return hashlib.blake2b(key, digest_size=16).hexdigest()


def legacy_row_id(tenant_id: str | None, alert_id: str, last_update: str | None) -> str:
    """The p_row_id lakes written before serviceSource was part of the key hold: the audit still recognises it."""
    key = f"{tenant_id or ''}\x1f{alert_id}\x1f{last_update or ''}".encode()
    return hashlib.blake2b(key, digest_size=16).hexdigest()


def _indicator_lists(alert: dict) -> dict[str, list[str]]:
    """The p_any columns that have values: canonical, deduplicated and sorted (empty ones stay None, as Panther
    omits them)."""
    found: Found = []
    evidence = alert.get("evidence")
    if type(evidence) is list:
        evidence_indicators(evidence, found)
    for name in provider_for(alert.get("serviceSource")).read_by_key_name:
        value = alert.get(name)
        if value:
            key_name_indicators(value, None, found)
    return canonical_lists(found)


def canonical_lists(found: Found) -> dict[str, list[str]]:
    """The p_any columns of (kind, raw value) pairs: canonical, deduplicated and sorted; a column without values is
    left out (None in the row, as Panther omits it)."""
    values: dict[str, set[str]] = {}
    for kind, raw in found:
        for column, value in canonical(kind, raw):
            values.setdefault(column, set()).add(value)
    return {column: sorted(found_values) for column, found_values in values.items()}


# Alerts repeat the same hosts, users and addresses: each raw value is canonicalised once while it recurs.
@lru_cache(maxsize=65536)
def canonical(kind: str, raw: str) -> tuple[tuple[str, str], ...]:
    """(p_any column, canonical value) pairs of one raw value of an indicator kind; () when it is not valid."""
    if kind == IP:
        ip = indicators.canonical_ip(raw)
        return ((_IPS, ip),) if ip and not indicators.address_noise(ip) else ()
    if kind == HOST:
        ip = indicators.canonical_ip(raw)
        if ip:
            return () if indicators.address_noise(ip) else ((_IPS, ip),)
        domain = indicators.canonical_domain(raw)
        return ((_DOMAINS, domain),) if domain else ()
    if kind == DNS_DOMAIN:
        domain = indicators.canonical_domain(raw)
        return ((_DOMAINS, domain),) if domain and "." in domain else ()
    if kind == URL:
        parsed = indicators.split_url(raw)
        if parsed is None:
            return ()
        url, host, host_is_ip = parsed
        if host_is_ip and indicators.address_noise(host):
            return ((_URLS, url),)
        return (_URLS, url), (_IPS if host_is_ip else _DOMAINS, host)
    if kind == EMAIL:
        email = indicators.canonical_email(raw)
        return ((_EMAILS, email),) if email else ()
    if kind == SENDER_EMAIL:  # Sender domains are worth a pivot; recipient domains are the tenant's own.
        email = indicators.canonical_email(raw)
        return ((_EMAILS, email), (_DOMAINS, email.rpartition("@")[2])) if email else ()
    if kind == UPN:  # A username, and an email when it has that shape.
        username = indicators.canonical_username(raw)
        if username is None or indicators.is_well_known_local_principal(username):
            return ()
        email = indicators.canonical_email(raw)
        return ((_USERNAMES, username), (_EMAILS, email)) if email else ((_USERNAMES, username),)
    if kind == USERNAME:
        username = indicators.canonical_username(raw)
        return ((_USERNAMES, username),) if username and not indicators.is_well_known_local_principal(username) \
            else ()
    if kind == HASH:
        hashed = indicators.canonical_hash(raw)
        return ((_HASH_COLUMNS[hashed[0]], hashed[1]),) if hashed else ()
    if kind == ACTOR_ID:
        actor_id = indicators.canonical_actor_id(raw)
        return ((_ACTOR_IDS, actor_id),) if actor_id and not indicators.is_well_known_local_principal(actor_id) \
            else ()
    raise ValueError(f"unknown indicator kind {kind!r}")


def _as_string_list(value: object) -> list[str] | None:
    if value is None:
        return None
    return [as_text(item) for item in (value if type(value) is list else [value]) if item is not None]


class AlertBatch:
    """The rows of a batch of alerts, for one Arrow table: `add` each alert, then take `table()`."""

    def __init__(self, parse_time: datetime) -> None:
        self.parse_time = parse_time
        self.rows: list[dict] = []

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, alert: object, *, source_id: str | None, source_label: str,
            pull_time: datetime | None = None) -> str:
        """Normalize one alert version into the batch (see normalize_alert); its p_row_id."""
        row = normalize_alert(alert, source_id=source_id, source_label=source_label, parse_time=self.parse_time,
                              pull_time=pull_time)
        self.rows.append(row)
        return row["p_row_id"]

    def in_event_time_order(self, indices: Sequence[int] | None = None) -> list[int]:
        """The indices (default: all) in the lake's row order, (p_event_time, p_row_id)."""
        rows = self.rows
        return sorted(range(len(rows)) if indices is None else indices,
                      key=lambda index: (rows[index]["p_event_time"], rows[index]["p_row_id"]))

    def table(self, indices: Sequence[int] | None = None) -> pa.Table:
        """The batch (or the rows at `indices`, in that order) as one table with SCHEMA."""
        return rows_to_table(self.rows if indices is None else [self.rows[index] for index in indices])


def new_batch(parse_time: datetime) -> AlertBatch:
    return AlertBatch(parse_time)
