#!/usr/bin/env python3
"""Build the Function App package: a zip of the repository that honours .funcignore.

The zip is deterministic (sorted entries, fixed timestamps and modes), so its SHA-256 names the code: deploy.sh
publishes only when that hash changed. Standard library only: it runs with any python3 >= 3.8.

    python3 infra/package.py --out /tmp/graphlake.zip     # prints the zip's sha256
    python3 infra/package.py --list                      # prints the files that would be packaged
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import os
import sys
import zipfile
from pathlib import Path

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# Always packaged if present; the app cannot start without them.
REQUIRED = ("host.json", "requirements.txt")


class Rule:
    """One .funcignore line, with gitignore semantics for the cases that matter here."""

    def __init__(self, line: str) -> None:
        self.negate = line.startswith("!")
        if self.negate:
            line = line[1:]
        self.dir_only = line.endswith("/")
        if self.dir_only:
            line = line[:-1]
        # As in gitignore: a slash at the start or in the middle anchors the pattern to the root.
        self.anchored = "/" in line
        self.pattern = line.lstrip("/")

    def matches(self, rel: str, is_dir: bool) -> bool:
        if self.dir_only and not is_dir:
            return False
        if self.anchored:
            return fnmatch.fnmatchcase(rel, self.pattern)
        return fnmatch.fnmatchcase(rel.rsplit("/", 1)[-1], self.pattern)


def read_rules(root: Path) -> list[Rule]:
    path = root / ".funcignore"
    if not path.exists():
        return []
    rules = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            rules.append(Rule(line))
    return rules


def ignored(rules: list[Rule], rel: str, is_dir: bool) -> bool:
    result = False
    for rule in rules:
        if rule.matches(rel, is_dir):
            result = not rule.negate
    return result


def package_files(root: Path) -> list[str]:
    """Repository-relative POSIX paths of the files to package, sorted."""
    rules = read_rules(root)
    files: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath).relative_to(root).as_posix()
        prefix = "" if base == "." else base + "/"
        dirnames[:] = sorted(d for d in dirnames if not ignored(rules, prefix + d, True))
        for name in filenames:
            rel = prefix + name
            full = Path(dirpath) / name
            if full.is_symlink() or not full.is_file():
                continue
            if not ignored(rules, rel, False):
                files.append(rel)
    return sorted(files)


def build(root: Path, out: Path) -> str:
    files = package_files(root)
    missing = [name for name in REQUIRED if name not in files]
    if missing:
        raise SystemExit(f"package.py: {', '.join(missing)} missing from {root} (or excluded by .funcignore)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for rel in files:
            info = zipfile.ZipInfo(rel, date_time=ZIP_EPOCH)
            mode = 0o755 if os.access(root / rel, os.X_OK) else 0o644
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so the modes above are honoured
            zf.writestr(info, (root / rel).read_bytes())
    return hashlib.sha256(out.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=here.parent, help="repository root (default: %(default)s)")
    parser.add_argument("--out", type=Path, help="zip to write; prints its sha256")
    parser.add_argument("--list", action="store_true", help="print the files that would be packaged")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if args.list:
        print("\n".join(package_files(root)))
        return 0
    if not args.out:
        parser.error("give --out FILE or --list")
    print(build(root, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
