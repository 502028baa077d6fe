"""infra/package.py packages only what git tracks, less .funcignore, in a deterministic zip."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.infra.facts import INFRA, ROOT


def _package(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(INFRA / "package.py"), *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


def _git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
                               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"})
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def test_package_holds_only_what_git_tracks(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone))
    tracked = set(_git(clone, "ls-files").split())
    # What a developer's work tree holds beside the code: secrets, Azurite's data, a stray new module.
    untracked = [".env", ".azurite/__blobstorage__/x", ".azurite/__azurite_db_blob__.json", "shared/scratch.py",
                 "notes.txt"]
    for rel in untracked:
        (clone / rel).parent.mkdir(parents=True, exist_ok=True)
        (clone / rel).write_text("SECRET=1\n")
    proc = _package("--root", str(clone), "--list")
    assert proc.returncode == 0, proc.stderr
    listed = set(proc.stdout.split())
    assert not listed & set(untracked), f"untracked files packaged: {sorted(listed & set(untracked))}"
    assert listed <= tracked
    assert {"host.json", "requirements.txt", "function_app.py", "shared/core/settings.py"} <= listed


def test_package_refuses_a_tree_git_does_not_track(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text("{}")
    (tmp_path / "requirements.txt").write_text("azure-functions\n")
    proc = _package("--root", str(tmp_path), "--list")
    assert proc.returncode != 0 and "git" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_funcignore_rules(tmp_path: Path) -> None:
    shutil.copy(ROOT / ".funcignore", tmp_path / ".funcignore")
    kept = ["function_app.py", "host.json", "requirements.txt", "shared/core/settings.py", "normalizers/core.py",
            "shared/tests/helper.py"]  # only the top-level tests/ is excluded
    dropped = ["tests/test_x.py", "bench/run.py", "simulator/graph.py", "infra/main.bicep", "docs/deploy.md",
               ".venv/lib/x.py", ".venv-checkov/bin/checkov", "node_modules/a/b.js", "lake/p.parquet",
               "state/w.json", "shared/__pycache__/settings.cpython-311.pyc", "local.settings.json",
               "local.settings.json.example", "README.md", "Makefile", "pyproject.toml", "requirements-dev.txt",
               ".gitignore", ".github/workflows/ci.yml", ".ci/run", ".pytest_cache/v/x", ".demo/x",
               ".env", ".env.local", ".azurite/__blobstorage__/x"]
    for rel in kept + dropped:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rel)
    _git(tmp_path, "init", "--quiet")
    _git(tmp_path, "add", "--force", "--", *kept, *dropped)
    proc = _package("--root", str(tmp_path), "--list")
    assert proc.returncode == 0, proc.stderr
    listed = set(proc.stdout.split())
    assert set(kept) <= listed, sorted(set(kept) - listed)
    assert not listed & set(dropped), sorted(listed & set(dropped))


def test_package_of_this_repo_is_deterministic(tmp_path: Path) -> None:
    first, second = _package("--out", str(tmp_path / "a.zip")), _package("--out", str(tmp_path / "b.zip"))
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert re.fullmatch(r"[0-9a-f]{64}\n", first.stdout) and first.stdout == second.stdout
    names = zipfile.ZipFile(tmp_path / "a.zip").namelist()
    assert {"host.json", "requirements.txt", "shared/core/settings.py"} <= set(names)
    for prefix in ("tests/", "bench/", "simulator/", "infra/", ".venv", "node_modules/", "lake/", "state/"):
        assert not any(n.startswith(prefix) for n in names), f"{prefix} must not be packaged"


def test_package_refuses_a_tree_without_host_json(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("azure-functions\n")
    _git(tmp_path, "init", "--quiet")
    _git(tmp_path, "add", "requirements.txt")
    proc = _package("--root", str(tmp_path), "--out", str(tmp_path / "x.zip"))
    assert proc.returncode != 0 and "host.json" in proc.stderr


def test_documented_package_commands_use_the_virtualenvs_python() -> None:
    # package.py needs pathspec, which `make install` puts in .venv; a bare python3 need not have it.
    for doc in (ROOT / "README.md", INFRA / "package.py"):
        interpreters = re.findall(r"([\w./-]*python[\d.]*) infra/package\.py", doc.read_text())
        assert interpreters, f"{doc.name} shows no command running infra/package.py"
        wrong = sorted(set(interpreters) - {".venv/bin/python"})
        assert not wrong, f"{doc.name} runs infra/package.py with {wrong}; it needs .venv/bin/python (pathspec)"
