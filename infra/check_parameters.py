#!/usr/bin/env python3
"""Refuse, before anything is deployed, parameter values ARM would reject only minutes into the deployment (or
that would deploy something that cannot work), one line each.

    python3 infra/check_parameters.py infra/main.parameters.json [NAME=VALUE | @FILE.json]...

The values are merged as `az deployment group create --parameters` merges them: the Bicep defaults, then the
parameters file, then each argument in order. A NAME=VALUE value is read as JSON when it parses (numbers, true,
arrays), else as a string. Standard library only: deploy.sh runs it with any python3.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

MAIN_BICEP = Path(__file__).resolve().parent / "main.bicep"
PREMIUM_PROCESSING_UNITS = (1, 2, 4, 8, 16)
ZONE_REDUNDANT_STORAGE = ("Standard_ZRS", "Standard_GZRS", "Standard_RAGZRS")


def bicep_defaults(src: str) -> dict[str, Any]:
    """The literal one-line defaults of main.bicep's parameters (expressions such as resourceGroup() are left out)."""
    out = {}
    for name, literal in re.findall(r"^param (\w+) \w+ = (.+)$", src, re.M):
        literal = literal.strip()
        if re.fullmatch(r"'[^'\\]*'", literal):
            out[name] = literal[1:-1]
        elif re.fullmatch(r"-?\d+|true|false", literal):
            out[name] = json.loads(literal)
    return out


def parameters_file(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return {name: entry.get("value") for name, entry in doc.get("parameters", {}).items()}
    except (OSError, ValueError, AttributeError) as exc:
        raise SystemExit(f"check_parameters.py: {path}: not a readable parameters file "
                         f"({{\"parameters\": {{\"name\": {{\"value\": ...}}}}}}): {exc}") from None


def merge(defaults: dict[str, Any], file: Path, args: list[str]) -> dict[str, Any]:
    values = {**defaults, **parameters_file(file)}
    for arg in args:
        if arg.startswith("@"):
            values.update(parameters_file(Path(arg[1:])))
            continue
        name, sep, raw = arg.partition("=")
        if not sep:
            raise SystemExit(f"check_parameters.py: '{arg}' is neither NAME=VALUE nor @FILE.json")
        try:
            values[name] = json.loads(raw)
        except json.JSONDecodeError:
            values[name] = raw
    return values


def problems(v: dict[str, Any]) -> list[str]:
    found = []
    sku, capacity = v.get("eventHubSku"), v.get("eventHubCapacity")
    if sku == "Premium" and capacity not in PREMIUM_PROCESSING_UNITS:
        found.append(f"eventHubCapacity={capacity}: Premium Event Hubs takes 1, 2, 4, 8 or 16 processing units")
    if sku == "Standard" and v.get("eventHubAutoInflate") is True \
            and isinstance(capacity, int) and isinstance(v.get("eventHubMaxThroughputUnits"), int) \
            and capacity > v["eventHubMaxThroughputUnits"]:
        found.append(f"eventHubCapacity={capacity} is more than eventHubMaxThroughputUnits="
                     f"{v['eventHubMaxThroughputUnits']}: with auto-inflate the namespace starts at the capacity and "
                     "grows up to the maximum; raise the maximum or lower the capacity")
    if v.get("zoneRedundant") is True and v.get("storageSku") not in ZONE_REDUNDANT_STORAGE:
        found.append(f"zoneRedundant=true needs zone-redundant storage: storageSku is {v.get('storageSku')}, "
                     f"use {', '.join(ZONE_REDUNDANT_STORAGE)}")
    certificate = "cannot work on Flex Consumption, which cannot load certificates into the app: use " \
                  "managed_identity, or client_secret with a Key Vault reference (README, Deploy to Azure)"
    if v.get("graphCredential") == "certificate":
        found.append(f"graphCredential=certificate {certificate}")
    for source in _sources(v.get("graphSources")):
        if isinstance(source, dict) and source.get("credential") == "certificate":
            found.append(f"graphSources: source {source.get('id', '?')!r} uses credential certificate, which "
                         f"{certificate}")
    overrides = v.get("appSettingOverrides") or {}
    if not isinstance(overrides, dict):
        found.append("appSettingOverrides must be a JSON object of setting names to strings")
    else:
        for name, value in overrides.items():
            if not isinstance(value, str):
                found.append(f"appSettingOverrides.{name} is {json.dumps(value)}, not a string: app settings are "
                             f"strings, write {json.dumps(json.dumps(value))}")
    return found


def _sources(raw: Any) -> list[Any]:
    if isinstance(raw, list):
        return raw
    if isinstance(raw, str) and raw.strip():
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError:
            return []  # the app reports a malformed GRAPH_SOURCES itself, with the reason
        return parsed if isinstance(parsed, list) else []
    return []


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    values = merge(bicep_defaults(MAIN_BICEP.read_text(encoding="utf-8")), Path(argv[0]), argv[1:])
    found = problems(values)
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
