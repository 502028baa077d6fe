"""Helpers a rule may import (`from detections.helpers import deep_get, lookup_csv`).

`deep_get` and `deep_walk` behave as panther-analysis's global helpers of the same names. `lookup_csv` reads a
lookup table (a CSV with a header row) from the rules folders, the user's folder's rows first, so a rule such as
the VIP one reads a list the organisation supplies without code changes.
"""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path

from detections.event import deep_get, deep_walk

__all__ = ["deep_get", "deep_walk", "lookup_csv", "lookup_values", "set_lookup_folders"]

_folders: tuple[Path, ...] = ()


def set_lookup_folders(folders: list[Path]) -> None:
    """Where lookup_csv looks, first folder first (the loader sets the user's folder, then the pack's)."""
    global _folders
    _folders = tuple(folders)
    _read.cache_clear()
    lookup_values.cache_clear()


def lookup_csv(name: str) -> list[dict[str, str]]:
    """The rows of every file called NAME under the rules folders, the user's folder's first; [] when there is none
    (the rule then matches nothing, instead of every row raising)."""
    rows: list[dict[str, str]] = []
    for folder in _folders:
        for path in sorted(folder.rglob(name)) if folder.is_dir() else []:
            rows += _read(path)
    return rows


@cache
def lookup_values(name: str, column: str) -> frozenset[str]:
    """The values of one column of lookup table NAME, trimmed and lower-cased, for membership tests on every row."""
    return frozenset(v for row in lookup_csv(name) if (v := row.get(column, "").strip().lower()))


@cache
def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in csv.DictReader(f)]
