"""Shared fixtures. Storage tests run twice: on a local folder and on Azurite, the Azure Storage emulator."""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
AZURITE_BIN = REPO / "node_modules" / ".bin" / "azurite-blob"
STORE_KINDS = ("local", "azurite")


@dataclass(frozen=True)
class Azurite:
    endpoint: str  # http://127.0.0.1:<port>/devstoreaccount1
    port: int

    def container_url(self, container: str | None = None) -> str:
        """URL of a container (a fresh unique one by default); BlobStore creates it on first use."""
        return f"{self.endpoint}/{container or 't' + uuid.uuid4().hex[:20]}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"Azurite exited with code {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"Azurite did not open port {port} within {timeout:.0f}s: {log.read_text()[-2000:]}")


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """A blob-only Azurite for the whole session, started on first use and stopped at the end."""
    if not AZURITE_BIN.exists():
        pytest.fail(f"Azurite is not installed ({AZURITE_BIN.relative_to(REPO)} is missing): run make test, "
                    "which runs npm ci first")
    workdir = tmp_path_factory.mktemp("azurite")
    log = workdir / "azurite.log"
    port = _free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(AZURITE_BIN), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(workdir / "data"),
             "--silent", "--skipApiVersionCheck", "--disableTelemetry", "--loose"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        _wait_for_port(port, proc, log)
        yield Azurite(endpoint=f"http://127.0.0.1:{port}/devstoreaccount1", port=port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def make_store_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], str]:
    """make_store_url("local" | "azurite") -> a fresh, empty store URL. Azurite starts only if asked for."""

    def make(kind: str) -> str:
        if kind == "local":
            return str(tmp_path_factory.mktemp("store"))
        if kind == "azurite":
            return request.getfixturevalue("azurite").container_url()
        raise ValueError(f"unknown store kind {kind!r}; use one of {STORE_KINDS}")

    return make


@pytest.fixture(params=STORE_KINDS)
def store_url(request: pytest.FixtureRequest, make_store_url: Callable[[str], str]) -> str:
    """A fresh, empty store URL; every test using it runs once per backend (local folder, Azurite)."""
    return make_store_url(request.param)
