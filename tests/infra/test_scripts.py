"""shellcheck passes on infra/*.sh; the scripts behave against a fake `az` (tests/infra/fake_az.py): errors,
idempotency, what-if, refused parameters, 403. The README's Deploy section names what they need."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.infra.facts import INFRA, MAKE_TEST, ROOT, SCRIPTS

FAKE_AZ = Path(__file__).resolve().parent / "fake_az.py"


def _need_shellcheck() -> str:
    path = shutil.which("shellcheck")
    if not path:
        pytest.fail(f"shellcheck is not installed: {MAKE_TEST} (apt-get install shellcheck)")
    return path


def test_shellcheck_passes() -> None:
    shellcheck = _need_shellcheck()
    assert SCRIPTS, "no scripts in infra/"
    proc = subprocess.run([shellcheck, *map(str, SCRIPTS)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"shellcheck:\n{proc.stdout}{proc.stderr}"


def test_scripts_are_strict_and_executable() -> None:
    for script in SCRIPTS:
        text = script.read_text()
        assert text.startswith("#!/usr/bin/env bash\n"), f"{script.name}: shebang"
        assert "\nset -euo pipefail\n" in text, f"{script.name}: set -euo pipefail"
        assert script.stat().st_mode & stat.S_IXUSR, f"{script.name} is not executable"


# --- Against a fake az ------------------------------------------------------------------------------------------

@pytest.fixture
def fake_az(tmp_path: Path) -> Iterator[dict[str, str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    az = bin_dir / "az"
    # This interpreter, not whichever python3 the scripts' PATH finds first.
    az.write_text(f"#!{sys.executable}\n" + FAKE_AZ.read_text().split("\n", 1)[1])
    az.chmod(0o755)
    python3 = shutil.which("python3") or sys.executable
    (bin_dir / "python3").symlink_to(python3)
    state = tmp_path / "az-state"
    state.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAKE_AZ", "GRAPHLAKE_"))}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", FAKE_AZ_STATE=str(state))
    yield env
    for pid in _hung(env):  # a fake az left hanging by a failed test
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _hung(env: dict[str, str]) -> list[int]:
    """The process ids of the fake az calls that hung (FAKE_AZ_HANG_PUBLISH)."""
    path = Path(env["FAKE_AZ_STATE"]) / "hung"
    return [int(pid) for pid in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _calls(env: dict[str, str]) -> list[list[str]]:
    log = Path(env["FAKE_AZ_STATE"]) / "calls.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _run(script: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash") or "/bin/bash"
    return subprocess.run([bash, str(INFRA / script), *args], env=env, capture_output=True, text=True, timeout=120,
                          cwd=ROOT)


@pytest.mark.parametrize("script", ["deploy.sh", "grant-graph-permission.sh"])
def test_script_explains_a_missing_az(tmp_path: Path, script: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname",):  # what the scripts run before looking for az
        (bin_dir / tool).symlink_to(shutil.which(tool))
    proc = _run(script, {"PATH": str(bin_dir), "HOME": str(tmp_path)})
    assert proc.returncode != 0
    assert "Azure CLI (az) is not installed" in proc.stderr, proc.stderr


@pytest.mark.parametrize("script", ["deploy.sh", "grant-graph-permission.sh"])
def test_script_explains_az_not_logged_in(fake_az: dict[str, str], script: str) -> None:
    proc = _run(script, {**fake_az, "FAKE_AZ_LOGGED_OUT": "1"})
    assert proc.returncode != 0
    assert "az login" in proc.stderr, proc.stderr


def test_deploy_needs_a_location_for_a_new_group(fake_az: dict[str, str]) -> None:
    proc = _run("deploy.sh", fake_az, "-g", "rg-test")
    assert proc.returncode != 0 and "--location" in proc.stderr, proc.stderr


def test_deploy_is_idempotent(fake_az: dict[str, str]) -> None:
    first = _run("deploy.sh", fake_az, "-g", "rg-test", "-l", "westeurope", "-p", "eventHubPartitionCount=8")
    assert first.returncode == 0, first.stderr
    assert "grant-graph-permission.sh -g rg-test" in first.stdout and "az group delete --name rg-test" in first.stdout
    calls = _calls(fake_az)
    assert sum(c[:2] == ["group", "create"] for c in calls) == 1
    deployments = [c for c in calls if c[:3] == ["deployment", "group", "create"]]
    assert len(deployments) == 1
    assert "location=westeurope" in deployments[0] and "eventHubPartitionCount=8" in deployments[0]
    assert any(a.endswith("main.parameters.json") for a in deployments[0])
    assert sum(c[:4] == ["functionapp", "deployment", "source", "config-zip"] for c in calls) == 1

    second = _run("deploy.sh", fake_az, "-g", "rg-test")
    assert second.returncode == 0, second.stderr
    calls = _calls(fake_az)
    assert sum(c[:2] == ["group", "create"] for c in calls) == 1, "the second run must not recreate the group"
    assert sum(c[:3] == ["deployment", "group", "create"] for c in calls) == 2
    assert sum(c[:4] == ["functionapp", "deployment", "source", "config-zip"] for c in calls) == 1, \
        "unchanged code must not be republished"
    assert "not republished" in second.stderr

    # Next steps: the lake reader role on the lake container, as lakeReaderPrincipalIds grants it, not the account.
    assert 'Storage Blob Data Reader" --assignee <your-upn-or-object-id>' in first.stdout
    assert "--scope /subscriptions/s/resourceGroups/rg-test/providers/Microsoft.Storage/storageAccounts/stgraphlakex/" \
           "blobServices/default/containers/lake\n" in first.stdout, first.stdout
    assert "lakeReaderPrincipalIds" in first.stdout

    forced = _run("deploy.sh", fake_az, "-g", "rg-test", "--force-code")
    assert forced.returncode == 0, forced.stderr
    assert sum(c[:4] == ["functionapp", "deployment", "source", "config-zip"] for c in _calls(fake_az)) == 2


def _start(script: str, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """The script in a session of its own, as a terminal runs it: its process group is what Ctrl-C signals."""
    bash = shutil.which("bash") or "/bin/bash"
    return subprocess.Popen([bash, str(INFRA / script), *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, start_new_session=True)


def _finish(proc: subprocess.Popen[str], env: dict[str, str], seconds: float, doing: str) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        # The hung az may be outside the script's process group, and holds its output open.
        os.killpg(proc.pid, signal.SIGKILL)
        for pid in _hung(env):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=30)
        pytest.fail(f"deploy.sh was still running {seconds:.0f} s after {doing}:\n{err[-2000:]}")


def _publish_calls(env: dict[str, str]) -> int:
    return sum(c[:4] == ["functionapp", "deployment", "source", "config-zip"] for c in _calls(env))


def test_deploy_bounds_a_hanging_publish(fake_az: dict[str, str]) -> None:
    # az can hang polling the app's health after the upload; the publish is bounded, so the retry loop gets control
    # back, says why, and publishes again.
    env = {**fake_az, "FAKE_AZ_HANG_PUBLISH": "1", "GRAPHLAKE_PUBLISH_TIMEOUT": "3",
           "GRAPHLAKE_PUBLISH_RETRY_DELAY": "0"}
    proc = _start("deploy.sh", env, "-g", "rg-test", "-l", "westeurope")
    _, err = _finish(proc, env, 60, "the publish hung")
    assert proc.returncode == 0, err
    assert "publish did not finish within 3 s" in err, err
    assert "publish failed (attempt 1); retrying in 0 s" in err, err
    assert _publish_calls(env) == 2
    assert (Path(env["FAKE_AZ_STATE"]) / "published").exists()
    (hung,) = _hung(env)
    assert not _alive(hung), "the hung az is still running"


def test_deploy_stops_on_interrupt_during_publish(fake_az: dict[str, str]) -> None:
    # Ctrl-C during the publish stops the deployment and the az it runs, as it did before the publish was bounded
    # (timeout moves az out of the terminal's process group, which Ctrl-C signals).
    env = {**fake_az, "FAKE_AZ_HANG_PUBLISH": "1", "GRAPHLAKE_PUBLISH_TIMEOUT": "600"}
    proc = _start("deploy.sh", env, "-g", "rg-test", "-l", "westeurope")
    deadline = time.monotonic() + 60
    while not _hung(env) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _hung(env), f"the publish never started: {proc.communicate()[1][-2000:]}"
    os.killpg(proc.pid, signal.SIGINT)
    _finish(proc, env, 15, "Ctrl-C")
    assert proc.returncode != 0
    assert _publish_calls(env) == 1, "an interrupted deployment must not retry"
    (hung,) = _hung(env)
    deadline = time.monotonic() + 5
    while _alive(hung) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(hung), "the interrupted az is still running"


def test_deploy_refuses_a_publish_timeout_that_is_not_seconds(fake_az: dict[str, str]) -> None:
    proc = _run("deploy.sh", {**fake_az, "GRAPHLAKE_PUBLISH_TIMEOUT": "20m"}, "-g", "rg-test", "-l", "westeurope")
    assert proc.returncode != 0 and "GRAPHLAKE_PUBLISH_TIMEOUT" in proc.stderr, proc.stderr
    assert not [c for c in _calls(fake_az) if c[:1] == ["deployment"]], "nothing may be deployed"


def test_deploy_what_if_shows_changes_and_stops(fake_az: dict[str, str]) -> None:
    (Path(fake_az["FAKE_AZ_STATE"]) / "group").write_text("westeurope")
    proc = _run("deploy.sh", fake_az, "-g", "rg-test", "--what-if", "-p", "eventHubPartitionCount=8")
    assert proc.returncode == 0, proc.stderr
    assert "31 to create" in proc.stdout
    calls = _calls(fake_az)
    what_if = [c for c in calls if c[:3] == ["deployment", "group", "what-if"]]
    assert len(what_if) == 1 and "eventHubPartitionCount=8" in what_if[0] and "location=westeurope" in what_if[0]
    changing = [c for c in calls if c[:3] == ["deployment", "group", "create"] or c[:2] in (["group", "create"],
                ["group", "update"]) or c[:2] == ["functionapp", "deployment"]]
    assert not changing, changing


def test_deploy_what_if_needs_an_existing_group(fake_az: dict[str, str]) -> None:
    proc = _run("deploy.sh", fake_az, "-g", "rg-test", "-l", "westeurope", "--what-if")
    assert proc.returncode != 0 and "does not exist" in proc.stderr, proc.stderr
    assert not [c for c in _calls(fake_az) if c[:2] == ["group", "create"] or c[:1] == ["deployment"]]


_REFUSED_PARAMETERS = {
    "premium capacity": (["eventHubSku=Premium", "eventHubCapacity=3"],
                         "eventHubCapacity=3: Premium Event Hubs takes 1, 2, 4, 8 or 16 processing units"),
    "capacity above the auto-inflate maximum": (["eventHubCapacity=6"], "more than eventHubMaxThroughputUnits=4"),
    "zone redundancy on GRS": (["zoneRedundant=true"], "zoneRedundant=true needs zone-redundant storage"),
    "certificate credential": (["graphCredential=certificate"], "cannot load certificates"),
    "certificate source": (['graphSources=[{"id": "contoso", "credential": "certificate"}]'],
                           "source 'contoso' uses credential certificate"),
    "non-string override": (['appSettingOverrides={"PULL_LOOKBACK_DAYS": 30}'],
                            'appSettingOverrides.PULL_LOOKBACK_DAYS is 30, not a string'),
}


@pytest.mark.parametrize("case", sorted(_REFUSED_PARAMETERS))
def test_deploy_refuses_parameters_arm_would_reject(fake_az: dict[str, str], case: str) -> None:
    values, message = _REFUSED_PARAMETERS[case]
    proc = _run("deploy.sh", fake_az, "-g", "rg-test", "-l", "westeurope", *(a for v in values for a in ("-p", v)))
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr
    assert not [c for c in _calls(fake_az) if c[:2] == ["group", "create"] or c[:1] == ["deployment"]], \
        "nothing may be deployed"


def test_deploy_reads_refused_parameters_from_a_parameters_file(fake_az: dict[str, str], tmp_path: Path) -> None:
    file = tmp_path / "mine.parameters.json"
    file.write_text(json.dumps({"parameters": {"eventHubSku": {"value": "Premium"},
                                               "eventHubCapacity": {"value": 12}}}))
    proc = _run("deploy.sh", fake_az, "-g", "rg-test", "-l", "westeurope", "-p", f"@{file}")
    assert proc.returncode != 0 and "eventHubCapacity=12: Premium" in proc.stderr, proc.stderr


def test_deploy_accepts_what_arm_accepts(fake_az: dict[str, str]) -> None:
    proc = _run("deploy.sh", fake_az, "-g", "rg-test", "-l", "westeurope", "--skip-code",
                "-p", "eventHubSku=Premium", "-p", "eventHubCapacity=4", "-p", "zoneRedundant=true",
                "-p", "storageSku=Standard_ZRS", "-p", 'appSettingOverrides={"PULL_LOOKBACK_DAYS": "30"}')
    assert proc.returncode == 0, proc.stderr


def test_grant_graph_permission_is_idempotent(fake_az: dict[str, str]) -> None:
    first = _run("grant-graph-permission.sh", fake_az, "-g", "rg-test")
    assert first.returncode == 0, first.stderr
    posts = [c for c in _calls(fake_az) if c[:1] == ["rest"] and "post" in c]
    assert len(posts) == 1

    second = _run("grant-graph-permission.sh", fake_az, "-g", "rg-test")
    assert second.returncode == 0, second.stderr
    assert "already granted" in second.stderr
    posts = [c for c in _calls(fake_az) if c[:1] == ["rest"] and "post" in c]
    assert len(posts) == 1, "the second run must not post the assignment again"
    # The existing assignments are read before any POST.
    calls = _calls(fake_az)
    first_get = next(i for i, c in enumerate(calls) if c[:1] == ["rest"] and any("appRoleAssignments" in a for a in c))
    first_post = next(i for i, c in enumerate(calls) if c[:1] == ["rest"] and "post" in c)
    assert first_get < first_post


def test_grant_graph_permission_explains_missing_rights(fake_az: dict[str, str]) -> None:
    proc = _run("grant-graph-permission.sh", {**fake_az, "FAKE_AZ_DENY": "1"}, "-g", "rg-test")
    assert proc.returncode != 0
    assert "403: you need Privileged Role Administrator or Global Administrator" in proc.stderr, proc.stderr


def test_grant_graph_permission_says_403_not_not_found(fake_az: dict[str, str]) -> None:
    # A caller without directory rights gets 403 reading the identity's assignments: that is not a missing
    # identity, and waiting for it to appear does not help.
    proc = _run("grant-graph-permission.sh", {**fake_az, "FAKE_AZ_DENY_READ": "1"}, "-g", "rg-test")
    assert proc.returncode != 0
    assert "403: you need Privileged Role Administrator or Global Administrator" in proc.stderr, proc.stderr
    assert "not found" not in proc.stderr and "retrying" not in proc.stderr, proc.stderr
    reads = [c for c in _calls(fake_az) if c[:1] == ["rest"] and any(a.endswith("/appRoleAssignments") for a in c)]
    assert len(reads) == 1, "a 403 must not be retried"


def test_grant_graph_permission_rejects_an_unknown_role(fake_az: dict[str, str]) -> None:
    proc = _run("grant-graph-permission.sh", fake_az, "-g", "rg-test", "--role", "NoSuch.Role")
    assert proc.returncode != 0 and "no application role 'NoSuch.Role'" in proc.stderr, proc.stderr


def test_readme_deploy_section_covers_the_essentials() -> None:
    doc = (ROOT / "README.md").read_text().split("## Deploy to Azure", 1)[1]
    for needle in ("infra/deploy.sh", "infra/grant-graph-permission.sh", "az group delete", "43,200",
                   "SecurityAlert.Read.All", "@Microsoft.KeyVault(SecretUri=", "GRAPH_CREDENTIAL=client_secret"):
        assert needle in doc, f"the README's Deploy section should mention {needle!r}"


# --- Azure Monitor diagnostic settings: --activity-log, --entra-logs ---------------------------------------------

def _diag(env: dict[str, str], which: str) -> dict | None:
    path = Path(env["FAKE_AZ_STATE"]) / f"diag.{which}"
    return json.loads(path.read_text()) if path.exists() else None


def _deployed_parameters(env: dict[str, str]) -> list[list[str]]:
    return [c for c in _calls(env) if c[:3] == ["deployment", "group", "create"]]


def test_deploy_streams_no_logs_and_keeps_sas_off_unless_asked(fake_az: dict[str, str]) -> None:
    proc = _run("deploy.sh", fake_az, "-g", "rg-test", "-l", "westeurope", "--skip-code")
    assert proc.returncode == 0, proc.stderr
    (deployment,) = _deployed_parameters(fake_az)
    assert not any(a.startswith("diagnosticSettingsSendRule") for a in deployment), deployment
    assert not [c for c in _calls(fake_az) if c[:1] == ["monitor"] or c[:1] == ["rest"]]


def test_deploy_streams_the_activity_and_entra_logs_to_the_logs_hub(fake_az: dict[str, str]) -> None:
    proc = _run("deploy.sh", fake_az, "-g", "rg-test", "-l", "westeurope", "--skip-code", "--activity-log",
                "--entra-logs")
    assert proc.returncode == 0, proc.stderr
    (deployment,) = _deployed_parameters(fake_az)
    assert "diagnosticSettingsSendRule=true" in deployment
    rule = ("/subscriptions/s/resourceGroups/rg-test/providers/Microsoft.EventHub/namespaces/evhns-x/eventhubs/"
            "azure-monitor-logs/authorizationRules/azure-monitor-send")
    activity = _diag(fake_az, "activity")
    assert activity == {"name": "graphlake", "eventHubName": "azure-monitor-logs", "rule": rule,
                        "logs": [{"category": c, "enabled": True} for c in ("Administrative", "Security", "Policy")]}
    entra = _diag(fake_az, "entra")
    assert entra["url"] == ("https://management.azure.com/providers/microsoft.aadiam/diagnosticSettings/graphlake"
                            "?api-version=2017-04-01")
    assert entra["properties"]["eventHubAuthorizationRuleId"] == rule
    assert entra["properties"]["eventHubName"] == "azure-monitor-logs"
    assert [log["category"] for log in entra["properties"]["logs"]] == [
        "SignInLogs", "NonInteractiveUserSignInLogs", "ServicePrincipalSignInLogs", "ManagedIdentitySignInLogs",
        "AuditLogs", "RiskyUsers", "UserRiskEvents"]

    # A later run without the flags keeps the rule the settings deliver with (the group's tag says they exist).
    again = _run("deploy.sh", fake_az, "-g", "rg-test", "--skip-code")
    assert again.returncode == 0, again.stderr
    assert "diagnosticSettingsSendRule=true" in _deployed_parameters(fake_az)[-1]
    assert "keeping their Send-only rule" in again.stderr


def test_deploy_takes_the_categories_asked_for(fake_az: dict[str, str]) -> None:
    proc = _run("deploy.sh", fake_az, "-g", "rg-test", "-l", "westeurope", "--skip-code",
                "--activity-log=Administrative", "--entra-logs=AuditLogs,SignInLogs")
    assert proc.returncode == 0, proc.stderr
    assert [log["category"] for log in _diag(fake_az, "activity")["logs"]] == ["Administrative"]
    assert [log["category"] for log in _diag(fake_az, "entra")["properties"]["logs"]] == ["AuditLogs", "SignInLogs"]


@pytest.mark.parametrize("flag, message", [
    ("--entra-logs=SignInLogs,SigninLogs", "--entra-logs: no graphlake table holds category 'SigninLogs'; the "
                                           "categories are: "),
    ("--entra-logs=ProvisioningLogs", "--entra-logs: no graphlake table holds category 'ProvisioningLogs'"),
    ("--activity-log=Administrative,Billing", "--activity-log: no graphlake table holds category 'Billing'"),
    ("--activity-log=Administrative,", "--activity-log=Administrative,: give category names separated by single"),
    ("--activity-log=", "--activity-log= names no category"),
])
def test_deploy_refuses_an_unknown_category_before_deploying(fake_az: dict[str, str], flag: str, message: str) -> None:
    proc = _run("deploy.sh", fake_az, "-g", "rg-test", "-l", "westeurope", flag)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("deploy.sh: error: "), proc.stderr
    assert not [c for c in _calls(fake_az) if c[:1] == ["deployment"] or c[:2] == ["group", "create"]]


def _printed_command(stdout: str, first_words: str) -> list[str]:
    import shlex
    (line,) = [line for line in stdout.splitlines() if line.strip().startswith(first_words)]
    return shlex.split(line)


def test_entra_logs_without_the_role_print_the_command_for_a_security_administrator(fake_az: dict[str, str]) -> None:
    env = {**fake_az, "FAKE_AZ_DENY_ENTRA": "1"}
    proc = _run("deploy.sh", env, "-g", "rg-test", "-l", "westeurope", "--skip-code", "--entra-logs", "--activity-log")
    # The deployment and the Activity log are done; the Entra setting is not, and the exit code and last line say so.
    assert proc.returncode != 0
    assert _diag(env, "activity") is not None and _diag(env, "entra") is None
    assert "It needs Security Administrator (or Global Administrator) in the Entra tenant" in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("deploy.sh: error: deployed, but not set") and "Entra logs" in last, last
    # The printed command is exactly the one refused: run by an administrator, it makes the setting.
    printed = _printed_command(proc.stdout, "az rest")
    (refused,) = [c for c in _calls(env) if c[:1] == ["rest"]]
    assert printed[1:] == [*refused[:-2]], (printed, refused)
    admin = {**fake_az}
    subprocess.run([str(Path(fake_az["PATH"].split(os.pathsep)[0]) / "az"), *printed[1:]], env=admin, check=True,
                   timeout=60)
    assert _diag(admin, "entra")["properties"]["eventHubName"] == "azure-monitor-logs"


def test_activity_log_without_the_role_prints_the_command(fake_az: dict[str, str]) -> None:
    env = {**fake_az, "FAKE_AZ_DENY_ACTIVITY": "1"}
    proc = _run("deploy.sh", env, "-g", "rg-test", "-l", "westeurope", "--skip-code", "--activity-log")
    assert proc.returncode != 0
    assert "It needs Monitoring Contributor (or Owner) on the subscription" in proc.stderr
    printed = _printed_command(proc.stdout, "az monitor diagnostic-settings subscription create")
    assert printed[printed.index("--logs") + 1] == \
        '[{"category":"Administrative","enabled":true},{"category":"Security","enabled":true},' \
        '{"category":"Policy","enabled":true}]'
    assert "deployed, but not set" in proc.stderr.strip().splitlines()[-1]


def test_entra_logs_failing_for_another_reason_is_not_called_a_missing_role(fake_az: dict[str, str]) -> None:
    proc = _run("deploy.sh", {**fake_az, "FAKE_AZ_FAIL_ENTRA": "1"}, "-g", "rg-test", "-l", "westeurope",
                "--skip-code", "--entra-logs")
    assert proc.returncode != 0
    assert "another tenant" in proc.stderr and "Security Administrator" not in proc.stderr.replace(
        "Needs Security Administrator", "")
    assert proc.stderr.strip().splitlines()[-1].startswith("deploy.sh: error: the Entra logs"), proc.stderr
