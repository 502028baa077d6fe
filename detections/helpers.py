"""Helpers a rule may import (`from detections.helpers import deep_get, lookup_csv`).

`deep_get` and `deep_walk` behave as panther-analysis's global helpers of the same names. `lookup_csv` reads a
lookup table (a CSV with a header row) from the rules folders of the rule's own rule set, the user's folder's rows
first, so a rule such as the VIP one reads a list the organisation supplies without code changes.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable
from pathlib import Path

from detections.event import deep_get, deep_walk

__all__ = ["deep_get", "deep_walk", "lookup_csv", "lookup_values"]

# The name under which the loader puts a rule set's `Lookups` into each of its rules' modules.
LOOKUPS = "__graphlake_lookups__"


class Lookups:
    """The lookup tables of one rule set: files under its folders, first folder first (the loader gives the user's
    folder, then the pack's). Read once per rule set, as a rule asks for them on every row."""

    def __init__(self, folders: Iterable[Path]) -> None:
        self.folders = tuple(folders)
        self._rows: dict[str, list[dict[str, str]]] = {}
        self._values: dict[tuple[str, str], frozenset[str]] = {}
        self._keyed: dict[str, dict[str, dict[str, str]]] = {}
        self._names: tuple[str, ...] | None = None

    def csv(self, name: str) -> list[dict[str, str]]:
        # Rules ask on every row: the folders are searched once per table, not once per row.
        if name not in self._rows:
            self._rows[name] = [row for folder in self.folders if folder.is_dir()
                                for path in sorted(folder.rglob(name)) for row in _read(path)]
        return self._rows[name]

    def values(self, name: str, column: str) -> frozenset[str]:
        if (name, column) not in self._values:
            self._values[name, column] = frozenset(
                v for row in self.csv(name) if (v := row.get(column, "").strip().lower()))
        return self._values[name, column]

    def by_key(self, name: str) -> dict[str, dict[str, str]]:
        """Table NAME (`.csv` optional) by its primary key, its first column, as `event.lookup` reads it; the
        first row of a key wins (the user's folder's)."""
        file_name = name if name.endswith(".csv") else f"{name}.csv"
        if file_name not in self._keyed:
            keyed: dict[str, dict[str, str]] = {}
            for row in self.csv(file_name):
                if row:
                    keyed.setdefault(next(iter(row.values())), row)
            self._keyed[file_name] = keyed
        return self._keyed[file_name]

    def table_names(self) -> tuple[str, ...]:
        """The lookup tables there are (CSV file names without `.csv`), for `p_enrichment`."""
        if self._names is None:
            self._names = tuple(sorted({path.stem for folder in self.folders if folder.is_dir()
                                        for path in folder.rglob("*.csv")}))
        return self._names


def lookup_csv(name: str) -> list[dict[str, str]]:
    """The rows of every file called NAME under the rules folders, the user's folder's first; [] when there is none
    (the rule then matches nothing, instead of every row raising)."""
    return _calling_rule_lookups().csv(name)


def lookup_values(name: str, column: str) -> frozenset[str]:
    """The values of one column of lookup table NAME, trimmed and lower-cased, for membership tests on every row."""
    return _calling_rule_lookups().values(name, column)


def _calling_rule_lookups() -> Lookups:
    # Rules call these helpers as plain functions (panther-analysis's format), so the rule set is found from the
    # caller: the nearest frame whose module is a rule's (or a helper module the rule called into).
    frame = sys._getframe(2)
    while frame is not None:
        found = frame.f_globals.get(LOOKUPS)
        if isinstance(found, Lookups):
            return found
        frame = frame.f_back
    return Lookups(())


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in csv.DictReader(f)]
