"""The simulator's servers: Graph on http://127.0.0.1 and the Entra token endpoint on https://127.0.0.1.

Pointing the real SDKs at it:

    sim = GraphSimulator(Tenant(seed=7, alerts=3000)).start()
    credential = ClientSecretCredential(sim.tenant_id, sim.client_id, sim.client_secret,
                                        authority=sim.authority_host, disable_instance_discovery=True,
                                        connection_verify=sim.ca_bundle)
    client = GraphServiceClient(credentials=credential, scopes=["https://graph.microsoft.com/.default"])
    client.request_adapter.base_url = sim.graph_url + "/v1.0"

TLS trust for azure-identity (checked with azure-identity 1.27 / azure-core 1.41 / requests 2.34):
- `connection_verify=sim.ca_bundle` on the sync credential trusts the CA for that credential only;
- or REQUESTS_CA_BUNDLE=sim.ca_bundle in the environment: azure-core's RequestsTransport lets requests read it;
- the async credential (azure.identity.aio, aiohttp) takes the same `connection_verify` kwarg, or SSL_CERT_FILE.
`disable_instance_discovery=True` is always needed: otherwise MSAL asks login.microsoftonline.com to vouch for
the unknown authority. msgraph-sdk accepts plain http for 127.0.0.1, so Graph itself needs no TLS.
"""

from __future__ import annotations

import dataclasses
import secrets
import signal
import socket
import ssl
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from simulator.entra_api import EntraApi
from simulator.faults import FaultInjector, Faults
from simulator.graph_api import Counters, GraphApi
from simulator.lateness import Lateness
from simulator.response import Response
from simulator.tenant import Tenant
from simulator.tls import ThrowawayCA
from simulator.tokens import App, Authority

__all__ = ["Faults", "GraphSimulator", "run_forever"]

DEFAULT_CLIENT_ID = "3f9a6c2e-1d4b-4e8a-9c7f-0b5d2e8a4c61"
DEFAULT_CLIENT_ID_WITHOUT_ROLE = "a7d3e9b1-5c2f-4a6e-8b0d-9e1f3c5a7b24"
_IDLE_CONNECTION_SECONDS = 30


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", port), handler)
        # Set once the port is known, since the routes need their own URL.
        self.route: GraphApi | EntraApi | None = None
        self.tls = tls
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def get_request(self) -> tuple[socket.socket, tuple]:
        sock, address = self.socket.accept()
        if self.tls is not None:
            # Handshake later, in the connection's own thread, so a slow client cannot stall accept().
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self.connections_lock:
            self.connections.add(sock)
        return sock, address

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake handler threads parked on idle keep-alive connections so they end with the server."""
        with self.connections_lock:
            for sock in list(self.connections):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def handle_error(self, request: object, client_address: tuple) -> None:
        # Clients dropping connections, timeouts and failed TLS handshakes (all OSErrors) are routine here.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "graphlake-simulator"
    sys_version = ""
    timeout = _IDLE_CONNECTION_SECONDS
    server: _Server

    def setup(self) -> None:
        super().setup()
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()

    def log_message(self, format: str, *args: object) -> None:
        pass

    # Whether the route dates its answers itself (Graph: by its own clock, or not at all under a fault).
    route_dates = False

    def _send(self, response: Response) -> None:
        if self.route_dates:
            # send_response would add a Date of this host's clock.
            self.log_request(response.status)
            self.send_response_only(response.status)
            self.send_header("Server", self.version_string())
        else:
            self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""


class _GraphHandler(_Handler):
    route_dates = True

    def _dispatch(self) -> None:
        self._body()  # drained even though unused, or the next request on this keep-alive connection is garbled
        headers = {k.lower(): v for k, v in self.headers.items()}
        self._send(self.server.route.handle(self.command, self.path, headers))

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _dispatch


class _TokenHandler(_Handler):
    def _dispatch(self) -> None:
        self._send(self.server.route.handle(self.command, self.path, self._body()))

    do_GET = do_POST = _dispatch


class GraphSimulator:
    """Graph alerts_v2 and its token endpoint over real sockets, serving `tenant`.

    Counters (`calls`, `throttled`, `errors`, `dropped_next_links`, `pages`, `token_requests`) count since start.
    `lock` is the tenant's lock: hold it to change the tenant atomically while serving (mutate() takes it too).
    """

    def __init__(self, tenant: Tenant, faults: Faults = Faults(), client_id: str = DEFAULT_CLIENT_ID,
                 client_secret: str | None = None,
                 client_id_without_role: str = DEFAULT_CLIENT_ID_WITHOUT_ROLE, graph_port: int = 0,
                 token_port: int = 0, token_lifetime_seconds: int = 3599, live: bool = False,
                 live_interval_seconds: float = 1.0, lateness: Lateness | None = None) -> None:
        self.tenant = tenant
        self.client_id = client_id
        self.client_id_without_role = client_id_without_role
        # A throwaway per run: never a constant in code. The role-less app shares it for simplicity.
        self.client_secret = client_secret or secrets.token_urlsafe(32)
        self._faults = FaultInjector(faults)
        self._authority = Authority(tenant.tenant_id, [
            App(client_id, self.client_secret, ("SecurityAlert.Read.All",), "graphlake"),
            App(client_id_without_role, self.client_secret, (), "graphlake (no consent)"),
        ], token_lifetime_seconds)
        self._ports = (graph_port, token_port)
        self._live = live
        self._live_interval = live_interval_seconds
        # Live mode: how late new versions show up (None: the tenant's default, up to 4 minutes).
        self._lateness = lateness
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._servers: list[_Server] = []
        self._ca: ThrowawayCA | None = None
        self._graph: GraphApi | None = None
        self._entra: EntraApi | None = None

    # --- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> GraphSimulator:
        if self._servers:
            raise RuntimeError("already started")
        self._ca = ThrowawayCA()
        graph = _Server(self._ports[0], _GraphHandler)
        token = _Server(self._ports[1], _TokenHandler, self._ca.server_context())
        graph_url = f"http://127.0.0.1:{graph.server_port}"
        self._authority.add_resource(graph_url)
        self._graph = GraphApi(self.tenant, self._authority, self._faults, graph_url)
        self._entra = EntraApi(self._authority, f"https://127.0.0.1:{token.server_port}")
        graph.route, token.route = self._graph, self._entra
        self._servers = [graph, token]
        self._stopping.clear()
        for server in self._servers:
            # A short poll interval keeps stop() quick; serve_forever only checks for shutdown between polls.
            self._spawn(partial(server.serve_forever, poll_interval=0.05), f"simulator-{server.server_port}")
        if self._live:
            self._spawn(self._run_live, "simulator-live")
        return self

    def _spawn(self, target: Callable[[], object], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _run_live(self) -> None:
        while not self._stopping.wait(self._live_interval):
            self.tenant.advance_to(self.graph_now(), lateness=self._lateness)

    def stop(self) -> None:
        self._stopping.set()
        if self._graph is not None:
            self._graph.hold(False)
        for server in self._servers:
            server.shutdown()
            server.close_connections()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers, self._threads = [], []
        if self._ca is not None:
            self._ca.close()
            self._ca = None

    def __enter__(self) -> GraphSimulator:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    # --- what a client needs -------------------------------------------------------------------------------

    @property
    def graph_url(self) -> str:
        return self._started().base_url

    @property
    def authority_host(self) -> str:
        """host:port, as azure-identity's `authority` takes it (it adds https://)."""
        return self._entra_started().base_url.removeprefix("https://")

    @property
    def ca_bundle(self) -> str:
        if self._ca is None:
            raise RuntimeError("start() the simulator first")
        return self._ca.bundle_path

    @property
    def tenant_id(self) -> str:
        return self.tenant.tenant_id

    @property
    def lock(self) -> threading.RLock:
        return self.tenant.lock

    def environment(self) -> dict[str, str]:
        """The settings a graphlake process needs to pull from this simulator (see shared/core/settings.py)."""
        return {
            "GRAPH_ENDPOINT": self.graph_url,
            "GRAPH_AUTHORITY_HOST": self.authority_host,
            "GRAPH_TENANT_ID": self.tenant_id,
            "GRAPH_CREDENTIAL": "client_secret",
            "GRAPH_CLIENT_ID": self.client_id,
            "GRAPH_CLIENT_SECRET": self.client_secret,
            "REQUESTS_CA_BUNDLE": self.ca_bundle,
            "SSL_CERT_FILE": self.ca_bundle,
        }

    # --- faults and counters -------------------------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        return self._faults.faults

    def set_faults(self, faults: Faults | None = None, **changes: object) -> None:
        """Switch faults while serving, e.g. set_faults(error_rate=0.2); rate-limit windows start afresh."""
        updated = dataclasses.replace(faults or self._faults.faults, **changes)  # type: ignore[arg-type]
        self._faults = FaultInjector(updated)
        if self._graph is not None:
            self._graph.faults = self._faults

    def as_served(self, alert_id: str, last_update: str) -> str:
        """lastUpdateDateTime as the API prints it for this alert under the current faults."""
        return self._faults.served_timestamp(alert_id, last_update)

    def graph_now(self) -> datetime:
        """Graph's clock (the Date of its answers): behind this host's under the tenant_clock_behind_seconds fault.
        Stamp versions at it (tenant.mutate(now=sim.graph_now(), ...)) to stamp them by Graph's clock."""
        return self._started().graph_now()

    def pull_clock(self, now: datetime) -> datetime:
        """What a pull run started at Graph's `now` should take for now: ahead of it under the clock-skew fault
        (counted in `counters.clock_ahead_runs`)."""
        believed = self._faults.pull_clock(now)
        if believed != now:
            self._started()._count("clock_ahead_runs")  # noqa: SLF001 - the counters' one writer and its lock
        return believed

    def _started(self) -> GraphApi:
        if self._graph is None:
            raise RuntimeError("start() the simulator first")
        return self._graph

    def _entra_started(self) -> EntraApi:
        if self._entra is None:
            raise RuntimeError("start() the simulator first")
        return self._entra

    @property
    def counters(self) -> Counters:
        return self._started().counters

    @property
    def calls(self) -> int:
        return self.counters.calls

    @property
    def throttled(self) -> int:
        return self.counters.throttled

    @property
    def errors(self) -> int:
        return self.counters.errors

    @property
    def dropped_next_links(self) -> int:
        return self.counters.dropped_next_links

    @property
    def pages(self) -> int:
        return self.counters.pages

    def wait_for_pages(self, pages: int, timeout: float = 120.0) -> bool:
        """Blocks until `pages` list pages have been served since start (True), or `timeout` passes (False): lets a
        test act at a point of a client's run instead of after a guessed time."""
        return self._started().wait_for(lambda counters: counters.pages >= pages, timeout)

    def hold_requests(self) -> None:
        """Graph calls wait, unanswered, until release_requests(): lines up concurrent clients."""
        self._started().hold(True)

    def release_requests(self) -> None:
        self._started().hold(False)

    def wait_for_held_requests(self, calls: int, timeout: float = 120.0) -> bool:
        return self._started().wait_for_held(calls, timeout)

    @property
    def token_requests(self) -> int:
        return self._entra_started().token_requests


def run_forever(port: int = 0, alerts: int = 3000, seed: int = 7, days: float = 7.0, faults: Faults = Faults(),
                live: bool = False, lateness: Lateness | None = None) -> None:
    """`graphlake simulate`: serve until SIGINT/SIGTERM, after printing the client's settings as KEY=value lines.

    Graph listens on `port` (0: any free port) and the token endpoint on port + 1 (or any free port).
    """
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    # Built by Graph's clock, which a fault may put behind this host's.
    tenant = Tenant(seed=seed, alerts=alerts, days=days, now=FaultInjector(faults).graph_clock(datetime.now(UTC)))
    with GraphSimulator(tenant, faults, graph_port=port, token_port=port + 1 if port else 0, live=live,
                        lateness=lateness) as sim:
        for name, value in sim.environment().items():
            print(f"{name}={value}", flush=True)
        stop.wait()
