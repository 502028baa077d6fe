"""The README is the user's manual: its settings table must say what the code does."""

import re
from pathlib import Path

from shared.core.settings import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_the_first_lines_give_the_two_commands():
    head = "\n".join(README.splitlines()[:6])
    assert "make demo" in head and "make test" in head


def test_every_setting_is_in_the_table_with_its_default():
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([^`]+)` \| ([^|]+) \|", README, re.MULTILINE)}
    for field in Settings.model_fields.values():
        default = "(empty)" if field.default == "" else f"`{field.default}`"
        assert rows.get(field.alias, "").strip() == default, f"README: {field.alias} should default to {default}"


def test_the_module_table_names_every_module():
    # The table groups modules by folder: a row names a file by its path, by its name under a folder heading, or in
    # a folder's one-row summary; every module of the stages must be found one of those ways.
    root = Path(__file__).resolve().parent.parent
    table = README[README.index("| Module | Job |"):README.index("\n\n", README.index("| Module | Job |"))]
    rows = table.splitlines()
    missing = []
    for package in ("shared", "normalizers", "detections"):
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if path.name == "__main__.py" or rel.startswith("detections/rules/") or (
                    path.name == "__init__.py" and rel != "shared/cli/__init__.py"):
                continue  # package markers, and the starter pack's rules (rule files, listed in Detections)
            folder = rel.rsplit("/", 1)[0] + "/"
            heading = next((i for i, row in enumerate(rows) if f"**`{folder}`**" in row), None)
            in_section = heading is not None and any(
                f"`{path.name}`" in row for row in rows[heading:heading + 1 + _section_length(rows, heading)])
            if f"`{rel}`" not in table and not in_section:
                missing.append(rel)
    assert not missing, f"README's module table does not name {missing}"


def _section_length(rows: list[str], heading: int) -> int:
    """Rows under a folder heading, up to the next heading."""
    for offset, row in enumerate(rows[heading + 1:], 1):
        if row.startswith("| **`"):
            return offset - 1
    return len(rows) - heading - 1
