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
