"""Rules as code in panther-analysis's format, loaded from the starter pack and a user's folder.

A real-time rule is `NAME.yml` (`AnalysisType: rule`) naming its `Filename: NAME.py`, which defines `rule(event)`
and optionally `title`, `dedup`, `severity`, `alert_context`, `description`, `runbook`, `reference`. A scheduled
rule is `NAME.yml` (`AnalysisType: scheduled_rule`, `ScheduleMinutes`, `LookbackMinutes`) beside `NAME.sql`, with an
optional `Filename` for the same optional functions, called on each result row.

A panther-analysis checkout (or fork) is a rules folder as it is: its `global_helpers/` are importable by its rules
while they load (and by its `*_test.py` files), rules of log types graphlake does not hold are passed over and counted
per log type, `InlineFilters` and YAML-only simple detections (`detections/simple_detection.py`) run, and a Panther
scheduled rule (`ScheduledQueries` naming a `scheduled_query`) loads when its SQL runs on the lake. Every key is
checked against Panther's own schema (panther_analysis_tool's): an unknown one, or one graphlake does not honour, is
refused with a line naming it.

A malformed rule is refused with one line (`path: reason`) and the others load; a rule id found in both folders
takes the user's, tests included; a user's YAML with the pack's RuleID and `Enabled: false` (no Python beside it
needed) switches the pack's rule off; a user's version that is refused takes the pack's down with it (said in a
line), never leaving the pack's running in its place.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import importlib.util
import math
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import yaml

from detections import helpers, match_conditions, simple_detection
from detections.data_models import load_data_models
from normalizers import azure_activity, entra_audit, entra_risk, entra_signin, names
from shared.core.errors import one_line

# libyaml's loader when PyYAML has it: a whole panther-analysis checkout is read at every worker start.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

PACK_DIR = Path(__file__).resolve().parent / "rules"
APP_ROOT = PACK_DIR.parent.parent  # where function_app.py is
BUILT_IN_DATA_MODELS = PACK_DIR / "data_models"

# Log types a real-time rule may name, and the lake tables whose rows carry that p_log_type: a rule runs only on
# rows of its LogTypes, as in Panther. Panther names alerts_v2 MicrosoftGraph.SecurityAlertV2 (panther-analysis PR
# #2042); Azure.Audit is Entra's records as Azure Monitor streams them (sign-ins, audit, risk), Azure.MonitorActivity
# the Activity log (normalizers/logs.py lands both, each category in its table).
LOG_TYPES: dict[str, tuple[str, ...]] = {names.LOG_TYPE: (names.TABLE,)}
for _family in (entra_signin, entra_audit, entra_risk, azure_activity):
    LOG_TYPES[_family.LOG_TYPE] = (*LOG_TYPES.get(_family.LOG_TYPE, ()), _family.TABLE)
_LEGACY_LOG_TYPES = {
    "MicrosoftGraph.SecurityAlert": "is the legacy /security/alerts schema (userStates, vendorInformation); "
                                    "graphlake holds alerts_v2: use MicrosoftGraph.SecurityAlertV2 and its fields",
}
SEVERITIES = ("Info", "Low", "Medium", "High", "Critical")
# What a rule's own code (its module, its functions, a test file beside it) raising is: that rule's failure, never
# the run's. SystemExit too (`sys.exit()` in a rule), as Panther's engine catches whatever rule() raises; a
# KeyboardInterrupt still stops the command.
RULE_CODE_ERRORS = (Exception, SystemExit)
_SEVERITY_BY_LOWER = {s.lower(): s for s in SEVERITIES} | {"informational": "Info"}
RULE, SCHEDULED_RULE = "rule", "scheduled_rule"
# Other analysis types of panther-analysis: a checkout of it can be a rules folder; these files are passed over
# (and counted), not refused. Packs too: every rule of the folder loads (Enabled says which run), so a pack, which
# in Panther selects rules to enable, selects nothing here.
OTHER_ANALYSIS_TYPES = frozenset({"policy", "global", "datamodel", "scheduled_query", "saved_query", "pack",
                                  "lookup_table", "correlation_rule", "derived", "simple", "scheduled_prompt"})
SCHEDULED_QUERY = "scheduled_query"
# The keys of a rule and a scheduled rule, as panther_analysis_tool's RULE_SCHEMA allows them, and graphlake's two
# of its own scheduled rules (NAME.sql beside NAME.yml).
_RULE_KEYS = frozenset({
    "AnalysisType", "Enabled", "Filename", "Detection", "RuleID", "LogTypes", "ScheduledQueries", "Severity",
    "Description", "DedupPeriodMinutes", "InlineFilters", "DisplayName", "OnlyUseBaseRiskScore", "OutputIds",
    "CreatedBy", "Reference", "Runbook", "Status", "SummaryAttributes", "Threshold", "Tags", "Reports", "Tests",
    "DynamicSeverities", "AlertTitle", "AlertContext", "GroupBy", "CreateAlert", "BaseVersion",
    "ScheduleMinutes", "LookbackMinutes"})
# Keys Panther accepts that graphlake does not honour: refused, so a rule never loads to behave otherwise.
_NOT_HONOURED = {
    "BaseDetection": "derived detections (BaseDetection) are not supported: copy the base rule and change it",
}
_TEST_KEYS = frozenset({"Name", "ExpectedResult", "Log", "LogType", "Mocks", "Logs", "Now"})
# Panther's tables for the log types graphlake holds, as a Panther scheduled query names them.
PANTHER_TABLES = {"microsoftgraph_securityalertv2": "security_alerts"}
_PANTHER_TABLE = re.compile(r"\bpanther_(?:logs|views|signals|rule_matches|rule_errors|cloudsecurity)\s*\.\s*"
                            r"(?:public\s*\.\s*)?(\w+)", re.IGNORECASE)
# Any other qualified table a query reads (snowflake.account_usage.login_history): none is in graphlake's lake.
_QUALIFIED_TABLE = re.compile(r"\b(?:FROM|JOIN)\s+((?:\w+\s*\.\s*)+\w+)", re.IGNORECASE)
DEFAULT_DEDUP_MINUTES = 60
# Panther's maximum (a day); the storage lifecycle policy expires alert state older than this (infra/main.bicep).
MAX_DEDUP_MINUTES = 1440


class RuleError(ValueError):
    """A rule that cannot be loaded; the message is one line."""


class NotARule(Exception):
    """A file of another analysis type (a policy, a data model...), passed over."""


class OtherLogType(Exception):
    """A rule for log types (or a query over tables) graphlake does not hold: passed over, counted per log type."""

    def __init__(self, log_types: list[str]) -> None:
        super().__init__(", ".join(log_types))
        self.log_types = log_types


@dataclass
class RuleTest:
    name: str
    expected: bool
    log: Any  # a Graph alert (real-time rule) or a list of them (scheduled rule, under `Logs`)
    now: str | None = None  # scheduled rules: the end of the lookback window (default: the latest alert's time)
    mocks: list[dict[str, Any]] = field(default_factory=list)  # Panther's Mocks: [{objectName, returnValue}]


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
    inline_filter: Callable[[Any], bool] | None = None  # InlineFilters: must hold before rule() runs
    create_alert: bool = True
    summary_attributes: list[str] = field(default_factory=list)
    output_ids: list[str] = field(default_factory=list)


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
    other_log_types: dict[str, int] = field(default_factory=dict)  # log type (or Panther table) -> rules passed over
    other_log_type_rules: int = 0  # rules passed over for their log types (one of several log types counts once)
    lookups: helpers.Lookups = field(default_factory=lambda: helpers.Lookups(()))
    data_models: dict[str, Any] = field(default_factory=dict)  # log type -> detections.data_models.DataModel

    def enabled(self, kind: str) -> list[Rule]:
        return [r for r in self.rules if r.enabled and r.kind == kind]

    def by_id(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.rule_id == rule_id), None)


def load_rules(user_dir: str | Path | None = None, *, with_pack: bool = True) -> RuleSet:
    """The starter pack, then the user's folder on top (its rule ids win); refusals listed, never raised."""
    folders = ([PACK_DIR] if with_pack else []) + ([_folder(user_dir)] if user_dir else [])
    # Lookup tables, global helpers and scheduled queries: the user's folder first.
    lookups = helpers.Lookups(reversed(folders))
    rule_set = RuleSet([], [], folders, lookups=lookups)
    found = [_specs(folder, rule_set) if folder.is_dir() else [] for folder in folders]
    for folder in folders:
        if not folder.is_dir():
            rule_set.refused.append(Refusal(folder, "no such rules folder"))
    queries: dict[str, tuple[Path, dict]] = {}
    for specs in found:  # the user's queries win, as its rules do
        queries |= {str(spec.get("QueryName")): (path, spec) for path, spec in specs
                    if spec.get("AnalysisType") == SCHEDULED_QUERY}
    context = _Context(lookups, queries)
    by_id: dict[str, Rule] = {}
    for folder, specs in zip(folders, found):
        # Each folder's rules see its own global helpers only: the pack's never import a user's of the same name.
        with importable(helper_dirs(folder)):
            _load_folder(specs, by_id, rule_set, context)
    rule_set.rules = list(by_id.values())
    # The pack's data models apply even without the pack's rules; the folders' own replace them.
    specs_of = dict(zip(folders, found))
    built_in = [(path, spec) for path, spec in specs_of.get(PACK_DIR) or _specs(BUILT_IN_DATA_MODELS, rule_set)
                if BUILT_IN_DATA_MODELS in path.parents]
    with importable(helper_dirs(*folders)):
        data_models, broken = load_data_models(
            built_in + [item for folder in folders if folder != PACK_DIR for item in specs_of[folder]], LOG_TYPES)
    rule_set.data_models = data_models
    rule_set.refused += [Refusal(path, reason) for path, reason in broken]
    # Data models for graphlake's log types are used (or refused), not passed over.
    used = {m.path for m in data_models.values()} | {path for path, _ in broken}
    passed_over = rule_set.passed_over
    passed_over["datamodel"] = passed_over.get("datamodel", 0) - sum(
        1 for path in used if any(folder in path.parents for folder in folders))
    if passed_over["datamodel"] <= 0:
        del passed_over["datamodel"]
    return rule_set


@dataclass
class _Context:
    lookups: helpers.Lookups
    queries: dict[str, tuple[Path, dict]] = field(default_factory=dict)  # QueryName -> its file and YAML
    query_errors: dict[str, str | None] = field(default_factory=dict)  # SQL -> why it cannot run (None: it can)


def _specs(folder: Path, rule_set: RuleSet) -> list[tuple[Path, dict]]:
    """Every YAML mapping under the folder; a file that is not one is refused."""
    found = []
    for path in _yaml_files(folder):
        try:
            found.append((path, _read_spec(path)))
        except RuleError as exc:
            rule_set.refused.append(Refusal(path, str(exc)))
    return found


def _load_folder(specs: list[tuple[Path, dict]], by_id: dict[str, Rule], rule_set: RuleSet,
                 context: _Context) -> None:
    """One folder's rules over those of the folders before it (`by_id`)."""
    earlier = dict(by_id)
    seen: dict[str, Path] = {}
    for path, spec in specs:
        rule_id = spec.get("RuleID") if isinstance(spec.get("RuleID"), str) else None
        if rule_id in seen and spec.get("AnalysisType") in (RULE, SCHEDULED_RULE):
            rule_set.refused.append(Refusal(path, f"RuleID {rule_id} is also in {seen[rule_id]}"))
            continue
        try:
            if rule_id in earlier and _switches_off(path, spec):
                _check_keys(spec)
                by_id[rule_id] = replace(earlier[rule_id], enabled=False, path=path)
                seen[rule_id] = path
                continue
            rule = rule_from_spec(path, spec, context)
        except RuleError as exc:
            rule_set.refused.append(Refusal(path, str(exc)))
            if rule_id in earlier and by_id.pop(rule_id, None) is not None:
                rule_set.refused.append(Refusal(earlier[rule_id].path, f"not loaded either: {rule_id} is replaced "
                                                f"by {path}, which was refused"))
            continue
        except NotARule as exc:
            rule_set.passed_over[str(exc)] = rule_set.passed_over.get(str(exc), 0) + 1
            continue
        except OtherLogType as exc:
            rule_set.other_log_type_rules += 1
            for log_type in exc.log_types:
                rule_set.other_log_types[log_type] = rule_set.other_log_types.get(log_type, 0) + 1
            continue
        seen[rule.rule_id] = path
        by_id[rule.rule_id] = rule


def _switches_off(path: Path, spec: dict) -> bool:
    """A copy of a rule's YAML with `Enabled: false` and no Python beside it: the way to switch a pack rule off."""
    filename = spec.get("Filename")
    return spec.get("Enabled") is False and "Detection" not in spec and \
        not (isinstance(filename, str) and (path.parent / filename).is_file())


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


def helper_dirs(*folders: Path) -> list[Path]:
    """The `global_helpers` folders under the rules folders (first folder's first), hidden folders left out."""
    return [d for folder in folders if folder.is_dir() for d in sorted(folder.rglob("global_helpers"))
            if d.is_dir() and not any(part.startswith(".") for part in d.relative_to(folder).parts)]


@contextlib.contextmanager
def importable(dirs: list[Path]) -> Iterator[None]:
    """Modules of `dirs` importable by name (`from panther_base_helpers import deep_get`) while the block runs, and
    forgotten after it: a rule keeps the helpers it imported, and another rule set of the same process (the pack's,
    another user's) imports its own helpers of the same name afresh, never these."""
    if not dirs:
        yield
        return
    # Imported from the resolved folders, so the modules' __file__ starts with the roots they are forgotten by (a
    # folder reached through a symlink otherwise left its helpers behind).
    roots = [str(d.resolve()) for d in dirs]
    names = {p.stem if p.suffix == ".py" else p.name for d in dirs for p in d.iterdir()
             if p.suffix == ".py" or (p / "__init__.py").is_file()}
    shadowed = {name: sys.modules.pop(name) for name in names if name in sys.modules}
    saved_path = list(sys.path)
    sys.path[:0] = roots
    try:
        yield
    finally:
        sys.path[:] = saved_path
        for name, module in list(sys.modules.items()):
            if str(getattr(module, "__file__", None) or "").startswith(tuple(roots)):
                del sys.modules[name]
        sys.modules.update(shadowed)


def _read_spec(path: Path) -> dict:
    try:
        spec = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise RuleError(f"bad YAML: {one_line(exc)}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(f"cannot read: {one_line(exc, with_type=True)}") from None
    if not isinstance(spec, dict):
        raise RuleError("not a YAML mapping of rule fields")
    return spec


def rule_from_spec(path: Path, spec: dict, context: _Context) -> Rule:
    kind = spec.get("AnalysisType")
    if kind in OTHER_ANALYSIS_TYPES:
        raise NotARule(kind)
    if kind is None and not ({"RuleID", "Filename", "Detection"} & set(spec)):
        raise NotARule("YAML without AnalysisType")  # panther-analysis's test_scenarios: event samples
    if kind not in (RULE, SCHEDULED_RULE):
        raise RuleError(f"AnalysisType {kind!r} is not supported (rule or scheduled_rule)")
    _check_keys(spec)
    wrong = "ScheduledQueries" if kind == RULE else "LogTypes"
    if wrong in spec:
        raise RuleError(f"{wrong} does not go with AnalysisType {kind} (a rule names LogTypes, a scheduled rule its "
                        "ScheduledQueries or NAME.sql)")
    rule_id = _required_text(spec, "RuleID")
    log_types = _log_types(spec) if kind == RULE else []  # before any import: other log types' rules never run
    severity = _SEVERITY_BY_LOWER.get(str(spec.get("Severity", "")).lower())
    if severity is None:
        raise RuleError(f"Severity {spec.get('Severity')!r} is not one of {', '.join(SEVERITIES)}")
    rule = Rule(
        rule_id=rule_id, kind=kind, path=path, display_name=str(spec.get("DisplayName") or rule_id),
        enabled=_bool(spec, "Enabled", True), severity=severity,
        dedup_minutes=_positive_int(spec, "DedupPeriodMinutes", DEFAULT_DEDUP_MINUTES),
        threshold=_positive_int(spec, "Threshold", 1),
        description=str(spec.get("Description") or ""), runbook=str(spec.get("Runbook") or ""),
        reference=str(spec.get("Reference") or ""), reports=_reports(spec), tags=_strings(spec, "Tags"),
        log_types=log_types, create_alert=_bool(spec, "CreateAlert", True),
        summary_attributes=_strings(spec, "SummaryAttributes"), output_ids=_strings(spec, "OutputIds"))
    if rule.dedup_minutes > MAX_DEDUP_MINUTES:
        raise RuleError(f"DedupPeriodMinutes must be at most {MAX_DEDUP_MINUTES} (a day), not {rule.dedup_minutes}")
    filename = spec.get("Filename")
    if filename and "Detection" in spec:
        raise RuleError("give Filename (Python) or Detection (YAML), not both")
    try:
        yaml_functions = simple_detection.functions(spec, _SEVERITY_BY_LOWER)
        if spec.get("InlineFilters") is not None and not _empty_filter(spec["InlineFilters"]):
            if kind == SCHEDULED_RULE:
                raise RuleError("InlineFilters apply to rules only, as in Panther (not to scheduled rules)")
            rule.inline_filter = match_conditions.compile_expressions(spec["InlineFilters"], "InlineFilters",
                                                                      inline=True)
    except ValueError as exc:
        raise RuleError(str(exc)) from None
    if kind == RULE:
        if not filename and "rule" not in yaml_functions:
            raise RuleError("Filename is missing: a rule names its Python file (or gives a Detection)")
        rule.module = _load_module(path, str(filename), rule_id, context.lookups) if filename else \
            SimpleNamespace(**yaml_functions)
        if not callable(getattr(rule.module, "rule", None)):
            raise RuleError(f"{filename} defines no rule(event) function")
    else:
        if "Detection" in spec:
            raise RuleError("a scheduled rule's Detection is not supported: give its Python in Filename")
        _scheduled(rule, spec, context)
        if filename:
            rule.module = _load_module(path, str(filename), rule_id, context.lookups)
    # The YAML's title, dedup, context and severity keys stand in for functions the Python does not define.
    for name, function in yaml_functions.items():
        if name != "rule" and not callable(getattr(rule.module, name, None)):
            if rule.module is None:
                rule.module = SimpleNamespace()
            setattr(rule.module, name, function)
    rule.tests = _tests(spec, kind, bool(spec.get("ScheduledQueries")))
    return rule


def _check_keys(spec: dict) -> None:
    for key in spec:
        if key in _NOT_HONOURED:
            raise RuleError(f"key {key}: {_NOT_HONOURED[key]}")
        if key not in _RULE_KEYS:
            raise RuleError(f"unknown key {key!r}{_did_you_mean(str(key), _RULE_KEYS)} (panther_analysis_tool "
                            "refuses it too)")
    if spec.get("OnlyUseBaseRiskScore") is True:
        raise RuleError("key OnlyUseBaseRiskScore: graphlake has no risk scores; remove it or set it false")


def _did_you_mean(key: str, known: frozenset[str]) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


def _empty_filter(raw: Any) -> bool:
    """`[]` or `[{All: []}]`: Panther's way of writing no filter, found on scheduled rules too."""
    return isinstance(raw, list) and all(item == {"All": []} for item in raw)


def _scheduled(rule: Rule, spec: dict, context: _Context) -> None:
    """A scheduled rule's SQL and schedule: graphlake's NAME.sql with ScheduleMinutes/LookbackMinutes beside the
    YAML, or Panther's ScheduledQueries naming a scheduled_query."""
    names = _strings(spec, "ScheduledQueries")
    if not names:
        sql_path = rule.path.with_suffix(".sql")
        if not sql_path.is_file():
            raise RuleError(f"scheduled rule needs its query in {sql_path.name} (or ScheduledQueries)")
        rule.sql = sql_path.read_text(encoding="utf-8")
        rule.schedule_minutes = _positive_int(spec, "ScheduleMinutes", None)
        rule.lookback_minutes = _positive_int(spec, "LookbackMinutes", None)
        return
    if len(names) > 1:
        raise RuleError(f"ScheduledQueries names {len(names)} queries; graphlake runs one per scheduled rule")
    if name := next((k for k in ("ScheduleMinutes", "LookbackMinutes") if k in spec), None):
        raise RuleError(f"{name} goes with a NAME.sql rule; a ScheduledQueries rule takes its query's Schedule")
    if names[0] not in context.queries:
        raise RuleError(f"ScheduledQueries names {names[0]!r}, and no scheduled_query of the rules folders has "
                        "that QueryName")
    query_path, query = context.queries[names[0]]
    where = f"query {names[0]!r} ({query_path.name})"
    sql = _query_sql(query_path, query, where)
    tables = {t.lower() for t in _PANTHER_TABLE.findall(sql)}
    qualified = {re.sub(r"\s", "", t).lower() for t in _QUALIFIED_TABLE.findall(sql)}
    others = sorted({t for t in tables if t not in PANTHER_TABLES} |
                    {t for t in qualified if not _PANTHER_TABLE.fullmatch(t)})
    if others:
        raise OtherLogType([f"table {t}" for t in others])
    if "pragma: template" in sql or "{%" in sql:
        raise RuleError(f"{where} is a Jinja template (-- pragma: template), which graphlake does not render")
    for table in tables:
        sql = re.sub(rf"\bpanther_\w+\s*\.\s*(?:public\s*\.\s*)?{table}\b", PANTHER_TABLES[table], sql,
                     flags=re.IGNORECASE)
    schedule = query.get("Schedule")
    if not isinstance(schedule, dict) or "CronExpression" in schedule:
        raise RuleError(f"{where}: only a Schedule of RateMinutes is supported (graphlake's timer checks rules "
                        "every few minutes; a CronExpression is not read)")
    rule.schedule_minutes = _positive_int(schedule, "RateMinutes", None)
    window = query.get("LookbackWindowSeconds")
    rule.lookback_minutes = math.ceil(window / 60) if isinstance(window, int) and window > 0 else \
        rule.schedule_minutes
    rule.enabled = rule.enabled and query.get("Enabled") is not False
    error = _query_error(sql, context)
    if error:
        raise RuleError(f"{where} cannot run on the lake: {error}")
    rule.sql = sql


def _query_sql(path: Path, query: dict, where: str) -> str:
    texts = [query[k] for k in ("Query", "SnowflakeQuery", "AthenaQuery", "DatabricksQuery") if k in query]
    if query.get("Filename"):
        sql_path = path.parent / str(query["Filename"])
        if not sql_path.is_file():
            raise RuleError(f"{where}: Filename {query['Filename']} does not exist beside it")
        texts.append(sql_path.read_text(encoding="utf-8"))
    if len(texts) != 1 or not isinstance(texts[0], str):
        raise RuleError(f"{where} needs one Query")
    return texts[0]


def _query_error(sql: str, context: _Context) -> str | None:
    """Why the SQL cannot run on the lake (through the sandbox scheduled rules run in), or None."""
    from detections.scheduled import explain_error

    if sql not in context.query_errors:
        context.query_errors[sql] = explain_error(sql)
    return context.query_errors[sql]



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
    """The log types graphlake holds among the rule's; OtherLogType when it holds none of them."""
    log_types = _strings(spec, "LogTypes")
    if not log_types:
        raise RuleError(f"LogTypes is missing: name one of {', '.join(LOG_TYPES)}")
    for log_type in log_types:
        if log_type in _LEGACY_LOG_TYPES:
            raise RuleError(f"LogType {log_type} {_LEGACY_LOG_TYPES[log_type]}")
    held = [t for t in log_types if t in LOG_TYPES]
    if not held:
        raise OtherLogType(log_types)
    return held


def _tests(spec: dict, kind: str, panther_scheduled: bool = False) -> list[RuleTest]:
    """A rule's Tests. A graphlake scheduled rule's test gives `Logs` (alerts its SQL runs over); a Panther one's
    gives `Log`, one result row its Python runs on, as Panther tests it."""
    raw = spec.get("Tests") or []
    if not isinstance(raw, list):
        raise RuleError("Tests must be a list of {Name, ExpectedResult, Log}")
    tests = []
    for number, item in enumerate(raw, 1):
        if not isinstance(item, dict) or not isinstance(item.get("Name"), str):
            raise RuleError(f"test {number} has no Name")
        unknown = sorted(str(k) for k in item if k not in _TEST_KEYS)
        if unknown:
            raise RuleError(f"test {item['Name']!r}: unknown key {unknown[0]!r}"
                            f"{_did_you_mean(unknown[0], _TEST_KEYS)}")
        expected = item.get("ExpectedResult")
        if not isinstance(expected, bool):
            raise RuleError(f"test {item['Name']!r}: ExpectedResult must be true or false")
        if kind == SCHEDULED_RULE and not panther_scheduled:
            log = item.get("Logs")
            if not (isinstance(log, list) and all(isinstance(x, dict) for x in log)):
                raise RuleError(f"test {item['Name']!r}: a scheduled rule's test gives Logs, a list of alerts")
        else:
            log = item.get("Log")
            if not isinstance(log, dict):
                what = "one result row of its query" if kind == SCHEDULED_RULE else "one alert"
                raise RuleError(f"test {item['Name']!r}: Log must be a mapping ({what})")
        mocks = item.get("Mocks") or []
        if not isinstance(mocks, list) or not all(isinstance(m, dict) and set(m) == {"objectName", "returnValue"}
                                                  for m in mocks):
            raise RuleError(f"test {item['Name']!r}: Mocks must be a list of {{objectName, returnValue}}")
        now = item.get("Now")
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
    except RULE_CODE_ERRORS as exc:  # a rule's own import error is that rule's fault, reported in one line
        raise RuleError(f"{filename} fails to import: {one_line(exc, with_type=True)}") from None
    sys.modules.pop(name, None)
    return module

