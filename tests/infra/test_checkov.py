"""checkov (own virtualenv .venv-checkov) finds no failed check in infra/ (main.bicep and its modules); the only skips
are the ones listed here, each suppressed in the Bicep with a written reason.

checkov does not follow what main.bicep passes to a module: it renders a parameter from its default, and resolves
names across the files as one namespace (a module's parameter can take main.bicep's same-named parameter, or its own
default, depending on the order it read the files in). So a module parameter a check reads carries main.bicep's
default (test_settings_contract checks that they agree), and the result is the same whichever it takes."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.infra.facts import BICEP_FILES, CHECKOV_VENV, INFRA, ROOT, need_checkov_venv


# checkov findings that may be suppressed in the Bicep (each with its reason there). Anything else must pass.
ALLOWED_SKIPS = {
    "CKV_AZURE_35",   # storage firewall default Deny: Flex without VNet has no fixed outbound addresses
    "CKV_AZURE_59",   # storage public network access: same reason
    "CKV_AZURE_43",   # storage account name is an expression checkov cannot evaluate
    "CKV_AZURE_225",  # plan zone redundancy: a parameter, off where Flex does not offer it
    "CKV_AZURE_212",  # numberOfWorkers: App Service plan setting, none on Flex
    "CKV_AZURE_78",   # ftpsState: Flex has no FTP and rejects the property
    "CKV_AZURE_213",  # health check: no HTTP trigger
    "CKV_AZURE_222",  # site public network access: needed by deploy.sh's zip deploy
    "CKV_AZURE_17",   # client certificates: no HTTP clients
    # On the `appsettings` config child, which checkov reads as the site's web config:
    "CKV_AZURE_13",   # App Service authentication: no HTTP trigger
    "CKV_AZURE_63",   # HTTP logging: no HTTP trigger
    "CKV_AZURE_65",   # detailed error messages: no HTTP trigger
    "CKV_AZURE_66",   # failed request tracing: no HTTP trigger
    "CKV_AZURE_80",   # .NET Framework version: a Python app
    "CKV_AZURE_88",   # Azure Files: Flex has no content share
}


def test_checkov_finds_no_failed_check() -> None:
    need_checkov_venv()
    proc = subprocess.run(
        [str(CHECKOV_VENV / "bin" / "checkov"), "-d", str(INFRA), "--framework", "bicep", "--skip-download",
         "--compact", "-o", "json"],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov printed no JSON (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    reports = report if isinstance(report, list) else [report]
    bicep = [r for r in reports if r.get("check_type") == "bicep"]
    assert bicep, f"checkov produced no bicep report: {[r.get('check_type') for r in reports]}"
    results, summary = bicep[0]["results"], bicep[0]["summary"]

    failures = [f"{c['check_id']} {c['check_name']}\n    {c['resource']} ({c['file_path']}:"
                f"{c['file_line_range'][0]}-{c['file_line_range'][1]})\n    {c.get('guideline') or ''}"
                for c in results.get("failed_checks", [])]
    assert not failures, "checkov failed checks (fix them, or suppress in the Bicep with " \
                         "`// checkov:skip=CKV_AZURE_x: reason` when the check does not apply):\n" + "\n".join(failures)
    assert summary["parsing_errors"] == 0, f"checkov could not parse: {results.get('parsing_errors')}"
    assert summary["resource_count"] >= 15, f"checkov scanned too little: {summary}"
    assert summary["passed"] > 0

    for skipped in results.get("skipped_checks", []):
        reason = (skipped.get("check_result") or {}).get("suppress_comment", "")
        assert skipped["check_id"] in ALLOWED_SKIPS, \
            f"{skipped['check_id']} is suppressed on {skipped['resource']}, but not in ALLOWED_SKIPS: fix it, or " \
            f"justify it in the Bicep and add it here"
        assert len(reason.split()) >= 8, f"{skipped['check_id']} on {skipped['resource']}: write why it does not " \
                                         f"apply, not {reason!r}"


def test_every_suppression_has_a_reason() -> None:
    for path in BICEP_FILES:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "checkov:skip" in line:
                assert re.search(r"//\s*checkov:skip=CKV2?_[A-Z]+_\d+:\s*\S.{30,}", line), \
                    f"{path.name}:{number}: a checkov skip needs `: <reason>` of some length: {line.strip()}"


def test_requirements_checks_pins_checkov() -> None:
    pins = (INFRA / "requirements-checks.txt").read_text()
    for package in ("checkov==3.3.30", "pycep-parser==", "tree-sitter==", "tree-sitter-bicep=="):
        assert package in pins, f"infra/requirements-checks.txt must pin {package}"
