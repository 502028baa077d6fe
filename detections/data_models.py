"""Data models (`AnalysisType: datamodel`), the mappings `event.udm(name)` reads, as Panther defines them.

A data model names its `LogTypes` and `Mappings`, each `{Name, Path}` (a JSONPath into the event, parsed with
jsonpath-ng as Panther does) or `{Name, Method}` (a function of its `Filename`, called with the event). The starter
pack's `detections/rules/data_models/` maps Graph alerts (source and destination IPs, the actor user, the host);
a data model of the user's folder for the same log type replaces it, as a user's rule replaces the pack's.

Data models for log types graphlake does not hold (a panther-analysis checkout has dozens) are passed over
without being imported; a broken one for a log type graphlake holds is refused in one line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.core.errors import one_line

ANALYSIS_TYPE = "datamodel"
# `$.a.b`: a Path of plain keys, read straight from the event (the same result as JSONPath's, at a fraction of it).
_SIMPLE = re.compile(r"^\$(\.[A-Za-z_][A-Za-z0-9_]*)+$")


@dataclass
class DataModel:
    data_model_id: str
    path: Path
    log_types: list[str]
    paths: dict[str, Any] = field(default_factory=dict)  # name -> parsed JSONPath
    simple_paths: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name -> keys of a `$.a.b` Path
    methods: dict[str, Callable[[Any], Any]] = field(default_factory=dict)


def load_data_models(specs: Iterable[tuple[Path, dict]], log_types: Iterable[str]) -> tuple[dict[str, DataModel],
                                                                                          list[tuple[Path, str]]]:
    """The enabled data models among the rules folders' YAML (the loader's, read once), for `log_types`, later ones
    winning; and (path, reason) of those refused."""
    wanted = set(log_types)
    by_log_type: dict[str, DataModel] = {}
    refused: list[tuple[Path, str]] = []
    for path, spec in specs:
        if spec.get("AnalysisType") != ANALYSIS_TYPE or spec.get("Enabled") is False:
            continue
        names = [t for t in spec.get("LogTypes") or [] if t in wanted]
        if not names:
            continue
        try:
            model = _model(path, spec)
        except ValueError as exc:
            refused.append((path, str(exc)))
            continue
        for log_type in names:
            by_log_type[log_type] = model
    return by_log_type, refused


def _model(path: Path, spec: dict) -> DataModel:
    from jsonpath_ng.ext import parse

    model_id = spec.get("DataModelID")
    if not isinstance(model_id, str) or not model_id:
        raise ValueError("DataModelID is missing or not text")
    mappings = spec.get("Mappings")
    if not isinstance(mappings, list) or not mappings:
        raise ValueError("Mappings must be a list of {Name, Path} or {Name, Method}")
    module = _module(path, spec.get("Filename"), model_id) if spec.get("Filename") else None
    model = DataModel(model_id, path, [str(t) for t in spec.get("LogTypes") or []])
    for mapping in mappings:
        if not isinstance(mapping, dict) or not isinstance(mapping.get("Name"), str):
            raise ValueError(f"mapping {mapping!r} has no Name")
        name = mapping["Name"]
        if ("Path" in mapping) == ("Method" in mapping):
            raise ValueError(f"mapping {name} needs exactly one of Path and Method")
        if "Path" in mapping:
            if _SIMPLE.match(str(mapping["Path"])):
                model.simple_paths[name] = tuple(str(mapping["Path"]).split(".")[1:])
            try:
                model.paths[name] = parse(str(mapping["Path"]))
            except Exception as exc:  # noqa: BLE001 - jsonpath-ng raises its own and Python's errors on bad text
                raise ValueError(f"mapping {name}: Path is not JSONPath: {one_line(exc)}") from None
        else:
            method = getattr(module, str(mapping["Method"]), None)
            if not callable(method):
                raise ValueError(f"mapping {name}: Method {mapping['Method']} is not a function of its Filename")
            model.methods[name] = method
    return model


def _module(yml: Path, filename: Any, model_id: str) -> Any:
    # Imported as a rule's Python is (the loader imports this module: imported here, not at the top).
    from detections.loader import RuleError, _load_module

    try:
        return _load_module(yml, str(filename), model_id, None)
    except RuleError as exc:
        raise ValueError(str(exc)) from None
