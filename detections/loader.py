"""Rules as code in panther-analysis's format, loaded from the starter pack and a user's folder.

A real-time rule is `NAME.yml` (`AnalysisType: rule`) naming its `Filename: NAME.py`, which defines `rule(event)`
and optionally `title`, `dedup`, `severity`, `alert_context`, `description`, `runbook`, `reference`. A scheduled
rule is `NAME.yml` (`AnalysisType: scheduled_rule`, `ScheduleMinutes`, `LookbackMinutes`) beside `NAME.sql`, with an
optional `Filename` for the same optional functions, called on each result row.

A malformed rule is refused with one line (`path: reason`) and the others load; a rule id found in both folders
takes the user's.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from detections import helpers
from detections.data_models import load_data_models
from shared.core.errors import one_line

PACK_DIR = Path(__file__).resolve().parent / "rules"
APP_ROOT = PACK_DIR.parent.parent  # where function_app.py is
BUILT_IN_DATA_MODELS = PACK_DIR / "data_models"

# Log types a real-time rule may name, and the lake table whose rows it sees. Panther names alerts_v2
# MicrosoftGraph.SecurityAlertV2 (panther-analysis PR #2042); its rules use alerts_v2's property names.
LOG_TYPES = {"MicrosoftGraph.SecurityAlertV2": "security_alerts"}
_LEGACY_LOG_TYPES = {
    "MicrosoftGraph.SecurityAlert": "is the legacy /security/alerts schema (userStates, vendorInformation); "
                                    "graphlake holds alerts_v2: use MicrosoftGraph.SecurityAlertV2 and its fields",
}
SEVERITIES = ("Info", "Low", "Medium", "High", "Critical")
_SEVERITY_BY_LOWER = {s.lower(): s for s in SEVERITIES} | {"informational": "Info"}
RULE, SCHEDULED_RULE = "rule", "scheduled_rule"
# Other analysis types of panther-analysis: a checkout of it can be a rules folder; these files are passed over
# (and counted), not refused.
OTHER_ANALYSIS_TYPES = frozenset({"policy", "global", "datamodel", "scheduled_query", "saved_query", "pack",
                                  "lookup_table", "correlation_rule", "derived", "simple"})
DEFAULT_DEDUP_MINUTES = 60
# Panther's maximum (a day); the storage lifecycle policy expires alert state older than this (infra/main.bicep).
MAX_DEDUP_MINUTES = 1440


class RuleError(ValueError):
    """A rule that cannot be loaded; the message is one line."""


class NotARule(Exception):
    """A file of another analysis type (a policy, a data model...), passed over."""


@dataclass
class RuleTest:
    name: str
    expected: bool
    log: Any  # a Graph alert (real-time rule) or a list of them (scheduled rule, under `Logs`)
    now: str | None = None  # scheduled rules: the end of the lookback window (default: the latest alert's time)
    mocks: list[dict[str, Any]] = field(default_factory=list)  # Mocks: [{objectName, returnValue}]


@dataclass
class Rule:
    rule_id: str
    kind: str  # RULE or SCHEDULED_RULE
    path: Path  # the YAML file
    display_name: str
    enabled: bool
    severity: str
    dedup_minutes: int
    threshold: int
    log_types: list[str] = field(default_factory=list)
    description: str = ""
    runbook: str = ""
    reference: str = ""
    reports: dict[str, list[str]] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    tests: list[RuleTest] = field(default_factory=list)
    module: ModuleType | None = None
    sql: str = ""
    schedule_minutes: int = 0
    lookback_minutes: int = 0
    create_alert: bool = True  # CreateAlert: false records matches and sends nothing
    summary_attributes: list[str] = field(default_factory=list)
    output_ids: list[str] = field(default_factory=list)  # names of ALERT_DESTINATIONS; [] is every destination

    def _call(self, name: str, event: Any) -> Any:
        function = getattr(self.module, name, None) if self.module is not None else None
        return function(event) if callable(function) else None

    def matches(self, event: Any) -> bool:
        if self.module is None or not callable(getattr(self.module, "rule", None)):
            return True  # a scheduled rule without Python: every result row is a match
        return bool(self.module.rule(event))

    def title(self, event: Any) -> str:
        found = self._call("title", event)
        return str(found) if found not in (None, "") else self.display_name or self.rule_id

    def dedup(self, event: Any, title: str) -> str:
        found = self._call("dedup", event)
        # Panther's default dedup string is the title.
        return str(found) if found not in (None, "") else title

    def alert_severity(self, event: Any) -> str:
        found = self._call("severity", event)
        if found is None or str(found).upper() == "DEFAULT":
            return self.severity
        return _SEVERITY_BY_LOWER.get(str(found).lower(), self.severity)

    def alert_context(self, event: Any) -> dict[str, Any]:
        found = self._call("alert_context", event)
        return dict(found) if isinstance(found, Mapping) else {}

    def text(self, name: str, event: Any, default: str) -> str:
        """description / runbook / reference: the function's result if the rule defines one, else the YAML's."""
        found = self._call(name, event)
        return str(found) if found not in (None, "") else default


@dataclass
class Refusal:
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class RuleSet:
    rules: list[Rule]
    refused: list[Refusal]
    folders: list[Path]
    passed_over: dict[str, int] = field(default_factory=dict)  # analysis type -> files of it not loaded
    lookups: helpers.Lookups = field(default_factory=lambda: helpers.Lookups(()))
    data_models: dict[str, Any] = field(default_factory=dict)  # log type -> detections.data_models.DataModel

    def enabled(self, kind: str) -> list[Rule]:
        return [r for r in self.rules if r.enabled and r.kind == kind]

    def by_id(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.rule_id == rule_id), None)


def load_rules(user_dir: str | Path | None = None, *, with_pack: bool = True) -> RuleSet:
    """The starter pack, then the user's folder on top (its rule ids win); refusals listed, never raised."""
    folders = ([PACK_DIR] if with_pack else []) + ([_folder(user_dir)] if user_dir else [])
    # Lookup tables: the user's folder first.
    lookups = helpers.Lookups(reversed(folders))
    by_id: dict[str, Rule] = {}
    refused: list[Refusal] = []
    passed_over: dict[str, int] = {}
    for folder in folders:
        if not folder.is_dir():
            refused.append(Refusal(folder, "no such rules folder"))
            continue
        for path in _yaml_files(folder):
            try:
                rule = load_rule(path, lookups)
            except RuleError as exc:
                refused.append(Refusal(path, str(exc)))
                continue
            except NotARule as exc:
                passed_over[str(exc)] = passed_over.get(str(exc), 0) + 1
                continue
            by_id[rule.rule_id] = rule
    # The pack's data models apply even without the pack's rules; the folders' own replace them.
    data_models, broken = load_data_models([BUILT_IN_DATA_MODELS, *(f for f in folders if f != PACK_DIR)], LOG_TYPES)
    refused += [Refusal(path, reason) for path, reason in broken]
    # Data models for graphlake's log types are used (or refused), not passed over.
    used = {m.path for m in data_models.values()} | {path for path, _ in broken}
    passed_over["datamodel"] = passed_over.get("datamodel", 0) - sum(
        1 for path in used if any(folder in path.parents for folder in folders))
    if passed_over["datamodel"] <= 0:
        del passed_over["datamodel"]
    return RuleSet(list(by_id.values()), refused, folders, passed_over, lookups, data_models)


def _folder(user_dir: str | Path) -> Path:
    """A relative folder from the working directory (the CLI), else from the app's root (in Azure the worker's
    working directory is not promised to be the package's)."""
    path = Path(user_dir)
    if path.is_absolute() or path.is_dir():
        return path
    from_app = APP_ROOT / path
    return from_app if from_app.is_dir() else path


def _yaml_files(folder: Path) -> list[Path]:
    """YAML files under folder, hidden folders (.github, .venv...) left out."""
    return sorted(p for p in folder.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def load_rule(path: Path, lookups: helpers.Lookups | None = None) -> Rule:
    """The rule of one YAML file; its Python sees `lookups` through `lookup_csv` (none: no lookup tables)."""
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RuleError(f"bad YAML: {one_line(exc)}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(f"cannot read: {one_line(exc, with_type=True)}") from None
    if not isinstance(spec, dict):
        raise RuleError("not a YAML mapping of rule fields")
    kind = spec.get("AnalysisType")
    if kind in OTHER_ANALYSIS_TYPES:
        raise NotARule(kind)
    if kind not in (RULE, SCHEDULED_RULE):
        raise RuleError(f"AnalysisType {kind!r} is not supported (rule or scheduled_rule)")
    rule_id = _required_text(spec, "RuleID")
    severity = _SEVERITY_BY_LOWER.get(str(spec.get("Severity", "")).lower())
    if severity is None:
        raise RuleError(f"Severity {spec.get('Severity')!r} is not one of {', '.join(SEVERITIES)}")
    rule = Rule(
        rule_id=rule_id, kind=kind, path=path, display_name=str(spec.get("DisplayName") or rule_id),
        enabled=_bool(spec, "Enabled", True), severity=severity,
        dedup_minutes=_positive_int(spec, "DedupPeriodMinutes", DEFAULT_DEDUP_MINUTES),
        threshold=_positive_int(spec, "Threshold", 1),
        description=str(spec.get("Description") or ""), runbook=str(spec.get("Runbook") or ""),
        reference=str(spec.get("Reference") or ""), reports=_reports(spec), tags=_strings(spec, "Tags"))
    if rule.dedup_minutes > MAX_DEDUP_MINUTES:
        raise RuleError(f"DedupPeriodMinutes must be at most {MAX_DEDUP_MINUTES} (a day), not {rule.dedup_minutes}")
    filename = spec.get("Filename")
    if kind == RULE:
        rule.log_types = _log_types(spec)
        if not filename:
            raise RuleError("Filename is missing: a rule names its Python file")
        rule.module = _load_module(path, str(filename), rule_id, lookups)
        if not callable(getattr(rule.module, "rule", None)):
            raise RuleError(f"{filename} defines no rule(event) function")
    else:
        sql_path = path.with_suffix(".sql")
        if not sql_path.is_file():
            raise RuleError(f"scheduled rule needs its query in {sql_path.name}")
        rule.sql = sql_path.read_text(encoding="utf-8")
        rule.schedule_minutes = _positive_int(spec, "ScheduleMinutes", None)
        rule.lookback_minutes = _positive_int(spec, "LookbackMinutes", None)
        if filename:
            rule.module = _load_module(path, str(filename), rule_id, lookups)
    rule.tests = _tests(spec, kind)
    _alert_keys(rule, spec)
    return rule


def _alert_keys(rule: Rule, spec: dict) -> None:
    """CreateAlert, SummaryAttributes, OutputIds: what the alert of a match carries and where it goes."""
    rule.create_alert = _bool(spec, "CreateAlert", True)
    rule.summary_attributes = _strings(spec, "SummaryAttributes")
    rule.output_ids = _strings(spec, "OutputIds")


def _required_text(spec: dict, key: str) -> str:
    value = spec.get(key)
    if not isinstance(value, str) or not value.strip():
        raise RuleError(f"{key} is missing or not text")
    return value.strip()


def _bool(spec: dict, key: str, default: bool) -> bool:
    value = spec.get(key, default)
    if not isinstance(value, bool):
        raise RuleError(f"{key} must be true or false, not {value!r}")
    return value


def _positive_int(spec: dict, key: str, default: int | None) -> int:
    value = spec.get(key, default)
    if value is None:
        raise RuleError(f"{key} is missing")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RuleError(f"{key} must be a whole number of at least 1, not {value!r}")
    return value


def _strings(spec: dict, key: str) -> list[str]:
    value = spec.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str | int | float) for v in value):
        raise RuleError(f"{key} must be a list of text")
    return [str(v) for v in value]


def _reports(spec: dict) -> dict[str, list[str]]:
    value = spec.get("Reports") or {}
    if not isinstance(value, dict) or not all(isinstance(v, list) for v in value.values()):
        raise RuleError("Reports must map a framework to a list (MITRE ATT&CK: [TA0006:T1110])")
    return {str(k): [str(v) for v in values] for k, values in value.items()}


def _log_types(spec: dict) -> list[str]:
    log_types = _strings(spec, "LogTypes")
    if not log_types:
        raise RuleError(f"LogTypes is missing: name one of {', '.join(LOG_TYPES)}")
    for log_type in log_types:
        if log_type in _LEGACY_LOG_TYPES:
            raise RuleError(f"LogType {log_type} {_LEGACY_LOG_TYPES[log_type]}")
        if log_type not in LOG_TYPES:
            raise RuleError(f"unknown LogType {log_type!r}: graphlake has {', '.join(LOG_TYPES)}")
    return log_types


def _tests(spec: dict, kind: str) -> list[RuleTest]:
    raw = spec.get("Tests") or []
    if not isinstance(raw, list):
        raise RuleError("Tests must be a list of {Name, ExpectedResult, Log}")
    tests = []
    for number, item in enumerate(raw, 1):
        if not isinstance(item, dict) or not isinstance(item.get("Name"), str):
            raise RuleError(f"test {number} has no Name")
        expected = item.get("ExpectedResult")
        if not isinstance(expected, bool):
            raise RuleError(f"test {item['Name']!r}: ExpectedResult must be true or false")
        key = "Logs" if kind == SCHEDULED_RULE else "Log"
        log = item.get(key)
        if kind == SCHEDULED_RULE and not (isinstance(log, list) and all(isinstance(x, dict) for x in log)):
            raise RuleError(f"test {item['Name']!r}: a scheduled rule's test gives Logs, a list of alerts")
        if kind == RULE and not isinstance(log, dict):
            raise RuleError(f"test {item['Name']!r}: Log must be a mapping (one alert)")
        now = item.get("Now")
        mocks = item.get("Mocks") or []
        if not isinstance(mocks, list) or not all(isinstance(m, dict) for m in mocks):
            raise RuleError(f"test {item['Name']!r}: Mocks must be a list of {{objectName, returnValue}}")
        tests.append(RuleTest(item["Name"], expected, log, None if now is None else str(now), mocks))
    return tests


def _load_module(yml: Path, filename: str, rule_id: str, lookups: helpers.Lookups | None) -> ModuleType:
    path = yml.parent / filename
    if path.suffix != ".py" or path.parent != yml.parent:
        raise RuleError(f"Filename {filename!r} must be a .py file beside the YAML")
    if not path.is_file():
        raise RuleError(f"Filename {filename} does not exist beside the YAML")
    # A name unique per file, so two folders' rules of the same file name never share a module.
    name = f"graphlake_rule_{hashlib.sha256(str(path).encode()).hexdigest()[:16]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise RuleError(f"{filename} cannot be loaded as Python")
    module = importlib.util.module_from_spec(spec)
    setattr(module, helpers.LOOKUPS, lookups or helpers.Lookups(()))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - a rule's own import error is that rule's fault, reported in one line
        raise RuleError(f"{filename} fails to import: {one_line(exc, with_type=True)}") from None
    sys.modules.pop(name, None)
    return module

