"""The architecture's rules, read from the source (no module is imported): the environment is read in one place,
data flows one way between the stages, and the deployed package imports only what it holds or installs."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from functools import cache
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_MODULE = "shared/core/settings.py"

# What each stage may import of ours. normalizers is the row format, a library of the stages that land and read it.
ALLOWED = {
    "core": {"core"},
    "pull": {"core", "land"},  # land only for the in-process sink, in PULL_TO_LAND
    "land": {"core", "land", "normalizers"},
    "read": {"core", "read", "normalizers"},
    "ops": {"core", "pull", "land", "read", "ops", "normalizers"},
    "detections": {"core", "land", "read", "normalizers", "detections"},
    "normalizers": {"core", "normalizers"},  # one Graph timestamp parser, in core, for every stage
}
PULL_TO_LAND = {"shared/pull/sinks.py"}
# The wiring at the top imports anything.
WIRING = ("shared/cli/", "function_app.py")


def python_files(*tops: str) -> list[str]:
    files = []
    for top in tops:
        path = ROOT / top
        files += [str(p.relative_to(ROOT)) for p in sorted(path.rglob("*.py"))] if path.is_dir() else [top]
    return files


@cache
def tree(rel: str) -> ast.Module:
    return ast.parse((ROOT / rel).read_text(encoding="utf-8"), filename=rel)


def imports(rel: str) -> list[tuple[int, str, tuple[str, ...]]]:
    """Every import of the file, at the top or inside a function: (line, module, names imported from it)."""
    found = []
    for node in ast.walk(tree(rel)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module, tuple(alias.name for alias in node.names)))
        elif isinstance(node, ast.ImportFrom):
            raise AssertionError(f"{rel}:{node.lineno}: relative import; this test reads absolute ones")
    return found


def stage_of_file(rel: str) -> str | None:
    parts = rel.split("/")
    if parts[0] == "shared" and len(parts) > 2:
        return parts[1]
    return parts[0] if parts[0] in ("detections", "normalizers") else None


def stages_imported(module: str, names: tuple[str, ...]) -> set[str]:
    parts = module.split(".")
    if parts[0] in ("detections", "normalizers"):
        return {parts[0]}
    if parts[0] != "shared":
        return set()
    return {parts[1]} if len(parts) > 1 else set(names)  # `from shared import core`


def test_only_the_settings_module_reads_the_environment():
    found = []
    for rel in python_files("shared", "detections", "normalizers", "function_app.py"):
        if rel == SETTINGS_MODULE:
            continue
        for node in ast.walk(tree(rel)):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "environb", "getenv", "putenv",
                                                                  "unsetenv"):
                found.append(f"{rel}:{node.lineno}: .{node.attr}")
            elif isinstance(node, ast.Name) and node.id in ("environ", "getenv"):
                found.append(f"{rel}:{node.lineno}: {node.id}")
            elif isinstance(node, ast.ImportFrom) and node.module == "os" and \
                    {a.name for a in node.names} & {"environ", "environb", "getenv", "putenv", "unsetenv"}:
                found.append(f"{rel}:{node.lineno}: from os import ...")
    assert found == [], "the environment is read by shared/core/settings.py alone; pass settings in:\n" + \
        "\n".join(found)


def test_no_stage_imports_detections():
    found = [f"{rel}:{line}: {module}" for rel in python_files("shared") if not rel.startswith(WIRING)
             for line, module, names in imports(rel) if "detections" in stages_imported(module, names)]
    assert found == [], "detections/ sits above the stages: only the wiring imports it:\n" + "\n".join(found)


def test_every_import_follows_the_stage_table():
    found = []
    for rel in python_files("shared", "detections", "normalizers"):
        stage = stage_of_file(rel)
        if stage is None or rel.startswith(WIRING):
            continue
        assert stage in ALLOWED, f"{rel}: stage {stage} is not in the table"
        for line, module, names in imports(rel):
            for target in stages_imported(module, names):
                if target == stage:
                    continue
                if target not in ALLOWED[stage] or (stage, target) == ("pull", "land") and rel not in PULL_TO_LAND:
                    found.append(f"{rel}:{line}: {stage} imports {target} ({module})")
    assert found == [], "imports against the flow (see ALLOWED):\n" + "\n".join(found)


# --- The deployed package ----------------------------------------------------------------------------------------

def deployed_files() -> list[str]:
    proc = subprocess.run([sys.executable, str(ROOT / "infra" / "package.py"), "--list"], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def module_name(rel: str) -> str:
    parts = rel.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def installed_modules() -> set[str]:
    """Every module the requirements.txt distributions and their dependencies install, by dotted name."""
    wanted = [Requirement(line.split("#")[0].strip())
              for line in (ROOT / "requirements.txt").read_text().splitlines() if line.split("#")[0].strip()]
    seen: set[str] = set()
    modules: set[str] = set()
    while wanted:
        requirement = wanted.pop()
        name = canonicalize_name(requirement.name)
        if name in seen or (requirement.marker is not None and not requirement.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        dist = metadata.distribution(requirement.name)
        wanted += [Requirement(r) for r in dist.requires or []]
        for file in dist.files or []:
            parts = file.parts
            if not parts or ".." in parts or parts[0].endswith((".dist-info", ".egg-info", ".data")) or \
                    "__pycache__" in parts or not parts[-1].endswith((".py", ".so", ".pyd")):
                continue
            stem = parts[-1].split(".")[0]
            dotted = [*parts[:-1], stem] if stem != "__init__" else list(parts[:-1])
            modules.update(".".join(dotted[:n]) for n in range(1, len(dotted) + 1))
    return modules


def test_the_deployed_package_imports_only_what_it_holds_or_installs():
    files = deployed_files()
    ours = {module_name(rel) for rel in files if rel.endswith(".py")}
    in_repo = {module_name(rel) for rel in python_files("shared", "detections", "normalizers", "simulator")}
    installed = installed_modules()
    stdlib = sys.stdlib_module_names

    def provided(module: str) -> bool:
        top = module.split(".")[0]
        if top in stdlib:
            return True
        if (ROOT / top).is_dir() or (ROOT / f"{top}.py").is_file():
            return module in ours
        return module in installed

    missing = []
    for rel in (f for f in files if f.endswith(".py")):
        for line, module, names in imports(rel):
            if not provided(module):
                missing.append(f"{rel}:{line}: {module}")
            for name in names:  # `from package import module`: the module must be there too
                if f"{module}.{name}" in in_repo and f"{module}.{name}" not in ours:
                    missing.append(f"{rel}:{line}: {module}.{name}")
    assert missing == [], ("the deployed package imports what it neither holds nor installs from requirements.txt "
                           "(a CLI-only module belongs in .funcignore):\n" + "\n".join(missing))
    assert {"function_app", "shared.land.normalize", "detections.realtime"} <= ours
    assert not any(re.match(r"shared\.cli\b|simulator\b", m) for m in ours)
