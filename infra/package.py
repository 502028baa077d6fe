#!/usr/bin/env python3
"""Build the Function App package: a zip of the files git tracks, less those .funcignore excludes.

Only tracked files: a developer's `.env`, Azurite's `.azurite/` data or a scratch module never reach Azure, whatever
the .gitignore says. Their content is the work tree's, so an edit is deployed before it is committed. .funcignore is
read with pathspec's gitignore matching (the same rules as git's, including `dir/`, `/anchored` and `!negation`).
The zip is deterministic (sorted entries, fixed timestamps and modes), so its SHA-256 names the code: deploy.sh
publishes only when that hash changed.

    .venv/bin/python infra/package.py --out /tmp/graphlake.zip     # prints the zip's sha256
    .venv/bin/python infra/package.py --list                      # prints the files that would be packaged

Needs git and pathspec (requirements-dev.txt; `make install` puts it in .venv, which deploy.sh uses).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

try:
    import pathspec
except ImportError:  # deploy.sh runs this with whatever python3 it finds
    raise SystemExit("package.py: needs pathspec: run `make install` (or pip install -r requirements-dev.txt)")

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# Always packaged if present; the app cannot start without them.
REQUIRED = ("host.json", "requirements.txt")


def tracked_files(root: Path) -> list[str]:
    """POSIX paths, relative to root, of the files git tracks under it."""
    try:
        proc = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached"], capture_output=True,
                              check=False)
    except FileNotFoundError:
        raise SystemExit("package.py: git is not installed; it lists the files to package") from None
    if proc.returncode != 0:
        raise SystemExit(f"package.py: {root} is not a git work tree: the package holds only what git tracks "
                         "(clone the repository)")
    return [name for name in proc.stdout.decode().split("\0") if name]


def package_files(root: Path) -> list[str]:
    """The files to package, sorted: tracked, present as regular files, and not excluded by .funcignore."""
    ignore = root / ".funcignore"
    spec = pathspec.GitIgnoreSpec.from_lines(ignore.read_text(encoding="utf-8").splitlines()
                                             if ignore.exists() else [])
    files = []
    for rel in tracked_files(root):
        full = root / rel
        # A tracked file deleted from the work tree, a symlink or a submodule is not packaged.
        if full.is_symlink() or not full.is_file() or spec.match_file(rel):
            continue
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
