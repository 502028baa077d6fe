"""Shared fixtures. Storage tests run twice: on a local folder and on Azurite, the Azure Storage emulator."""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
AZURITE_BIN = REPO / "node_modules" / ".bin" / "azurite-blob"
STORE_KINDS = ("local", "azurite")
# make_pipeline's PULL_DELAY_SECONDS, production's default: a window ends at now, so settle waits under a second.
PIPELINE_DELAY_SECONDS = "0"


# Modules whose tests share one process's state, so under xdist they run together, in order, on one worker.
# The fault suite sums its faults over its seeds; the Spark test starts one JVM and builds one lake for the module.
ONE_WORKER_MODULES = {"tests/test_fault_suite.py", "tests/read/test_spark.py"}


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """xdist's default distribution (each test on its own), except ONE_WORKER_MODULES, each sent whole to one
    worker; largest units first, so that one starts at once and does not end the run alone. This is what
    `--dist loadgroup` with an xdist_group mark would do, but on pytest 9.2 loadgroup silently stops grouping
    (pytest-xdist issue 1386)."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class Scheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in ONE_WORKER_MODULES else nodeid

    return Scheduling(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks the Azurite run of every test that runs on both backends (a "local"/"azurite" parameter), so
    `make test-fast` can leave it out."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "azurite" in callspec.params.values():
            item.add_marker(pytest.mark.azurite)


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


@dataclass
class Pipeline:
    """A simulated tenant served over HTTP, and the settings a graphlake process needs to pull from it."""

    sim: object  # simulator.server.GraphSimulator
    env: dict[str, str]
    started_at: object  # datetime: versions superseded before this were never observable

    @property
    def tenant(self):
        return self.sim.tenant

    def settings(self, **overrides: str):
        from shared.core.settings import load_settings

        return load_settings({**self.env, **overrides})

    def settle(self) -> None:
        """Waits until a run started now reads everything the tenant shows: its window ends PULL_DELAY_SECONDS
        before now, cut down to a whole second, so that end must have passed the newest lastUpdateDateTime.
        Only as long as that takes: often no wait at all, at most the delay and a second."""
        newest = max(datetime.fromisoformat(v.last_update) for v in self.tenant.versions())
        ready = newest.replace(microsecond=0) + timedelta(seconds=float(self.env["PULL_DELAY_SECONDS"]) + 1)
        wait = (ready - datetime.now(UTC)).total_seconds()
        if wait > 0:
            time.sleep(wait)

    def current_pairs(self) -> set[tuple[str, str]]:
        latest = {v.alert_id: v.last_update for v in self.tenant.versions()}
        return set(latest.items())

    def expected_row_ids(self) -> set[str]:
        """p_row_id of every version the simulator held since the pipeline started.

        A version superseded before then (the backlog's own update history) was never visible to any poller. Tests
        run a pull between changes to the tenant, so every later version was current while some pull ran.
        """
        from normalizers.core import row_id

        versions = self.tenant.versions()
        superseded_at: dict[int, object] = {}
        latest: dict[tuple[str, str], int] = {}
        for index, version in enumerate(versions):
            alert = (version.alert_id, version.service_source)
            if alert in latest:
                superseded_at[latest[alert]] = version.visible_at
            latest[alert] = index
        return {row_id(self.tenant.tenant_id, v.alert_id, v.last_update, v.service_source)
                for i, v in enumerate(versions) if i not in superseded_at or superseded_at[i] > self.started_at}

    def lake_row_ids(self) -> list[str]:
        from normalizers.names import TABLE
        from shared.land.lake_writer import read_table
        from shared.core.storage import open_store

        store = open_store(self.env["LAKE_URL"])
        if not list(store.list(TABLE)):
            return []
        return read_table(store, TABLE).column("p_row_id").to_pylist()


@pytest.fixture
def make_pipeline(make_store_url, monkeypatch):
    """make_pipeline(kind="local", alerts=..., days=..., faults=..., **settings) -> Pipeline with a fresh tenant,
    state and lake. The simulator's credentials and CA are put in this process's environment as well, for in-process
    pulls."""
    from simulator.server import GraphSimulator
    from simulator.tenant import Tenant

    started = []

    def make(kind: str = "local", alerts: int = 300, days: float = 1.0, seed: int = 11, faults=None,
             **settings: str) -> Pipeline:
        from simulator.faults import Faults

        faults = faults or Faults()
        delay = float(settings.get("PULL_DELAY_SECONDS", PIPELINE_DELAY_SECONDS))
        # The backlog ends a window's delay and a second ago, so the first run reads all of it without waiting; by
        # Graph's clock, which a fault may put behind this host's.
        backlog_end = datetime.now(UTC) - timedelta(seconds=faults.tenant_clock_behind_seconds + delay + 1)
        sim = GraphSimulator(Tenant(seed=seed, alerts=alerts, days=days, now=backlog_end), faults).start()
        started_at = sim.tenant.now
        started.append(sim)
        env = {
            **sim.environment(),
            "STATE_URL": make_store_url(kind),
            "LAKE_URL": make_store_url(kind),
            "PULL_DELAY_SECONDS": PIPELINE_DELAY_SECONDS,
            "PULL_OVERLAP_SECONDS": "30",
            "PULL_LOOKBACK_DAYS": str(days + 0.1),
            "PULL_SLICE_MINUTES": "360",
            "PULL_PAGE_SIZE": "100",
            "GRAPH_MAX_REQUESTS_PER_MINUTE": "150",
            **settings,
        }
        for name in ("GRAPH_CLIENT_SECRET", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
            monkeypatch.setenv(name, env[name])
        pipe = Pipeline(sim, env, started_at)
        pipe.settle()
        return pipe

    yield make
    for sim in started:
        sim.stop()
