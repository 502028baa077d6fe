"""One alert: a fixed body, a list of versions, and the JSON Graph prints for a version.

The body (title, evidence, …) never changes after creation; versions carry what moves (status, classification,
assignment, comments, lastUpdateDateTime). Bodies are rebuilt on demand from a per-alert seed rather than kept as
dicts, which is what lets a 100,000-alert tenant start in seconds and stay small; `BodyCache` keeps the JSON of
recently served bodies.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from dataclasses import dataclass, field

import orjson

from simulator.catalog import Provider, Template
from simulator.directory import Directory
from simulator.enums import needs_masking, without_unknown_members
from simulator.scenes import Ctx, activity_span
from simulator.timefmt import TICKS_PER_SECOND, format_ticks

ODATA_TYPE = "#microsoft.graph.security.alert"

_TEN_MS, _SECOND = 100_000, TICKS_PER_SECOND

_TRUE_POSITIVE = ("malware", "phishing", "compromisedUser", "multiStagedAttack", "maliciousUserActivity", "apt")
_FALSE_POSITIVE = ("clean", "insufficientData", "other")
_BENIGN = ("securityTesting", "confirmedUserActivity", "lineOfBusinessApplication", "securityPersonnel")
_COMMENTS = ("Looking into this.", "User confirmed the sign-in was not theirs; password reset.",
             "Device isolated pending triage.", "Known pen-test window, see change CHG0042.",
             "Escalated to tier 2.", "No further activity observed in 24h.")


def graph_unit(rng: random.Random) -> int:
    """The unit a new time is cut to, in ticks: printed times carry 7 fractional digits mostly, sometimes 2 or
    none (reference §2)."""
    roll = rng.random()
    return 1 if roll < 0.85 else _TEN_MS if roll < 0.95 else _SECOND


@dataclass(frozen=True, slots=True)
class Comment:
    text: str
    author: str
    created: int

    def json(self) -> dict:
        return {"comment": self.text, "createdByDisplayName": self.author,
                "createdDateTime": format_ticks(self.created)}


@dataclass(frozen=True, slots=True)
class Version:
    """One state of an alert, current from `visible_at` (when the API started showing it) until the next."""

    alert_id: str
    last_update: int
    visible_at: int
    status: str
    classification: str = "unknown"
    determination: str = "unknown"
    assigned_to: str | None = None
    resolved: int | None = None
    comments: tuple[Comment, ...] = ()

    @property
    def last_update_text(self) -> str:
        return format_ticks(self.last_update)

    def fields(self) -> dict:
        return {"status": self.status, "classification": self.classification, "determination": self.determination,
                "assignedTo": self.assigned_to, "lastUpdateDateTime": format_ticks(self.last_update),
                "resolvedDateTime": format_ticks(self.resolved) if self.resolved is not None else None,
                "comments": [c.json() for c in self.comments]}


@dataclass(slots=True)
class AlertRecord:
    index: int
    id: str
    provider_alert_id: str
    incident_id: str
    provider: Provider
    template: Template
    severity: str
    created: int
    body_seed: int
    versions: list[Version] = field(default_factory=list)

    @property
    def current(self) -> Version:
        return self.versions[-1]

    def visible(self, now: int) -> Version | None:
        for version in reversed(self.versions):
            if version.visible_at <= now:
                return version
        return None


def first_version(rec: AlertRecord, rng: random.Random, last_update: int, visible_at: int) -> Version:
    if rng.random() < rec.template.auto_resolve:
        # Products that remediate on their own close the alert as they raise it.
        return Version(rec.id, last_update, visible_at, "resolved", resolved=rec.created)
    return Version(rec.id, last_update, visible_at, "new")


def next_version(prev: Version, rng: random.Random, last_update: int, visible_at: int,
                 analysts: list[str]) -> Version:
    """The SOC's next step on a non-resolved alert: take it, comment, or close it with a verdict."""
    comments = prev.comments
    if rng.random() < 0.3:
        comments += (Comment(rng.choice(_COMMENTS), rng.choice(analysts), last_update),)
    if prev.status == "new" and rng.random() < 0.7:
        return Version(prev.alert_id, last_update, visible_at, "inProgress", prev.classification,
                       prev.determination, rng.choice(analysts), None, comments)
    if prev.status == "inProgress" and rng.random() < 0.35:
        return Version(prev.alert_id, last_update, visible_at, "inProgress", prev.classification,
                       prev.determination, rng.choice(analysts), None, comments)
    roll = rng.random()
    if roll < 0.35:
        classification, determination = "truePositive", rng.choice(_TRUE_POSITIVE)
    elif roll < 0.6:
        classification, determination = "falsePositive", rng.choice(_FALSE_POSITIVE)
    elif roll < 0.85:
        classification, determination = "informationalExpectedActivity", rng.choice(_BENIGN)
    else:
        classification, determination = "unknown", "unknown"
    return Version(prev.alert_id, last_update, visible_at, "resolved", classification, determination,
                   prev.assigned_to or rng.choice(analysts), last_update, comments)


@dataclass(frozen=True, slots=True)
class BodyJson:
    """A body as JSON fragments around the version fields: `head` ends with a comma, the tails start with one."""

    head: bytes
    tail: bytes
    tail_masked: bytes


class BodyCache:
    """Builds alert bodies from their seed and keeps the JSON of the most recently used ones."""

    def __init__(self, directory: Directory, tenant_id: str, capacity: int) -> None:
        self._directory = directory
        self._tenant_id = tenant_id
        self._capacity = capacity
        self._cache: OrderedDict[int, BodyJson] = OrderedDict()

    def body(self, rec: AlertRecord) -> tuple[dict, dict]:
        """(head, tail) dicts; the version's fields go between them."""
        rng = random.Random(rec.body_seed)
        first, last = activity_span(rng, rec.created)
        scene = rec.template.scene(Ctx(rng, self._directory, rec.created, first))
        created = format_ticks(rec.created)
        head = {"@odata.type": ODATA_TYPE, "id": rec.id, "providerAlertId": rec.provider_alert_id,
                "incidentId": rec.incident_id}
        tail = {
            "severity": rec.severity, "serviceSource": rec.provider.service_source,
            "detectionSource": rng.choice(rec.template.detection_sources), "productName": rec.provider.product_name,
            "detectorId": rec.template.detector_id,
            "alertPolicyId": f"{rng.getrandbits(128):032x}" if rec.template.has_policy else None,
            "tenantId": self._tenant_id, "title": rec.template.title, "description": rec.template.description,
            "recommendedActions": rec.provider.recommended_actions, "category": rec.template.category,
            "alertWebUrl": f"https://security.microsoft.com/alerts/{rec.id}?tid={self._tenant_id}",
            "incidentWebUrl": f"https://security.microsoft.com/incidents/{rec.incident_id}?tid={self._tenant_id}",
            "actorDisplayName": scene.pop("actorDisplayName", None),
            "threatDisplayName": scene.pop("threatDisplayName", None),
            "threatFamilyName": scene.pop("threatFamilyName", None),
            "mitreTechniques": list(rec.template.mitre),
            "systemTags": ["Defender Experts"] if rng.random() < 0.03 else [],
            "createdDateTime": created, "firstActivityDateTime": format_ticks(first),
            "lastActivityDateTime": format_ticks(last),
        }
        tail.update(scene)
        return head, tail

    def json(self, rec: AlertRecord) -> BodyJson:
        cached = self._cache.get(rec.index)
        if cached is not None:
            self._cache.move_to_end(rec.index)
            return cached
        head, tail = self.body(rec)
        tail_json = b"," + orjson.dumps(tail)[1:]
        built = BodyJson(orjson.dumps(head)[:-1] + b",", tail_json,
                         b"," + orjson.dumps(without_unknown_members(tail))[1:] if needs_masking(tail) else tail_json)
        self._cache[rec.index] = built
        if len(self._cache) > self._capacity:
            self._cache.popitem(last=False)
        return built

    def render(self, rec: AlertRecord, version: Version, include_unknown_enum_members: bool) -> bytes:
        body = self.json(rec)
        middle = orjson.dumps(version.fields())[1:-1]
        return body.head + middle + (body.tail if include_unknown_enum_members else body.tail_masked)
