"""What a user's shell does to a command ends in one line or a quiet exit, never a traceback: a reader that closes
the pipe early, a port already taken, a CA bundle that is not there."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "normalizers" / "golden"


def graphlake(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shared.cli", *args], capture_output=True, text=True, timeout=120,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})}, **kwargs)


def test_a_reader_that_closes_the_pipe_ends_the_command_quietly(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    alerts = b"\n".join(orjson.dumps(a) for a in orjson.loads((GOLDEN / "endpoint.input.json").read_bytes()))
    assert graphlake("normalize", "-", "--lake", str(lake), "--state", str(tmp_path / "state"),
                     input=alerts.decode()).returncode == 0
    command = (f"{sys.executable} -m shared.cli query --lake {lake} 'SELECT * FROM range(200000)' | head -n 1; "
               "echo \"exit=${PIPESTATUS[0]}\" >&2")
    proc = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.count("\n") == 1
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr and "unexpected" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "exit=141"  # as a Unix tool killed by SIGPIPE


def test_a_port_in_use_is_one_line_naming_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = graphlake("simulate", "--port", str(port), "--alerts", "5")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and f"port {port}" in proc.stderr and "Traceback" not in proc.stderr


def test_a_missing_ca_bundle_is_one_line_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "gone" / "ca.pem"
    env = {"GRAPH_TENANT_ID": "00000000-0000-0000-0000-000000000001", "GRAPH_CLIENT_ID": "c",
           "GRAPH_CLIENT_SECRET": "s", "SSL_CERT_FILE": str(missing), "STATE_URL": str(tmp_path / "state"),
           "LAKE_URL": str(tmp_path / "lake")}
    proc = graphlake("pull", "--once", env=env)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and str(missing) in proc.stderr and "Traceback" not in proc.stderr
