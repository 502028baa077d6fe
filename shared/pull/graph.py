"""Reads alerts_v2 pages from Microsoft Graph through msgraph-sdk, as raw JSON.

Raw bytes rather than the SDK's typed models: the event body must be the alert exactly as Graph returned it, and
re-serialising the models rewrites timestamps and drops key order. The SDK still does the work it is good at:
authentication, the middleware pipeline and its RetryHandler (429 with Retry-After, 5xx with backoff).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx
import orjson
from aiolimiter import AsyncLimiter
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError
from azure.identity import (
    AzureAuthorityHosts,
    CertificateCredential,
    ClientSecretCredential,
    DefaultAzureCredential,
    ManagedIdentityCredential,
)
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_abstractions.headers_collection import HeadersCollection
from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
from kiota_http.kiota_client_factory import KiotaClientFactory
from kiota_http.middleware import RetryHandler
from kiota_http.middleware.middleware import BaseMiddleware
from kiota_http.middleware.options import HeadersInspectionHandlerOption, RetryHandlerOption
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.security.alerts_v2.alerts_v2_request_builder import Alerts_v2RequestBuilder
from msgraph_core import GraphClientFactory
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from shared.core.errors import ConfigError, EndpointUnreachable, PermissionMissing, one_line
from shared.core.settings import Settings, Source

PREFER_ALL_ENUMS = {"Prefer": "include-unknown-enum-members"}
GRAPH_ROLE = "SecurityAlert.Read.All"
# The SDK's RetryHandler retries 429/503/504; Graph also answers 500 and 502 for passing faults.
RETRY_STATUS_CODES = {429, 500, 502, 503, 504}
TRANSPORT_ATTEMPTS = 5


@dataclass(frozen=True)
class Backoff:
    """How long the client waits before it asks again. The defaults are what production runs with; tests that
    fault every other call pass shorter waits, so the retries they prove cost milliseconds, not minutes."""

    # A 429 or 5xx without Retry-After: the SDK's RetryHandler waits factor * 2 ** (retry - 1) s plus up to 1 s of
    # jitter, capped at status_max. A Retry-After is obeyed as sent, whatever these say.
    status_factor: float = RetryHandler.DEFAULT_BACKOFF_FACTOR
    status_max: float = RetryHandler.MAXIMUM_BACKOFF
    # A connection that failed or timed out: a random wait of up to multiplier * 2 ** attempt s, capped at
    # transport_max (tenacity's wait_random_exponential).
    transport_multiplier: float = 1.0
    transport_max: float = 30.0
    # A token request that did not reach the authority (client secret and certificate credentials): azure-core's
    # RetryPolicy waits factor * 2 ** (retry - 1) s between its connection retries.
    authority_factor: float = 0.8


@dataclass
class CallStats:
    """What one source's calls to Graph cost, for the run summary."""

    calls: int = 0
    throttled: int = 0
    server_errors: int = 0
    pages: int = 0
    skip_fallbacks: int = 0
    rereads: int = 0
    splits: int = 0
    status_counts: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class GraphTime:
    """Graph's own clock, as the Date header of one of its answers gives it (RFC 9110 §6.6.1: when the answer was
    made, whole seconds, never later than Graph's time then), and `received`, time.monotonic() when the answer came.
    `date` is None when the answer had no Date this client can read (a proxy may strip it); `problem` says why."""

    date: datetime | None
    received: float
    problem: str | None = None


def graph_time(headers: HeadersCollection, received: float) -> GraphTime:
    values = headers.get("date")
    if not values:
        return GraphTime(None, received, "Graph's answer carried no Date header")
    try:
        dates = [parsedate_to_datetime(value) for value in values]
    except (TypeError, ValueError):
        return GraphTime(None, received, f"Graph's Date header {sorted(values)[0]!r} does not parse")
    if any(date.tzinfo is None for date in dates):  # "-0000": a time of no known zone
        return GraphTime(None, received, f"Graph's Date header {sorted(values)[0]!r} has no zone")
    # Two Date headers (a proxy adding its own): the earlier is the safer bound on Graph's time.
    return GraphTime(min(dates), received)


class _MeterAndLimit(BaseMiddleware):
    """Sits under the RetryHandler, so every attempt, retries included, counts against the per-minute budget."""

    def __init__(self, limiter: AsyncLimiter, stats: CallStats) -> None:
        super().__init__()
        self._limiter = limiter
        self._stats = stats

    async def send(self, request: httpx.Request, transport: httpx.AsyncBaseTransport) -> httpx.Response:
        async with self._limiter:
            response = await super().send(request, transport)
        self._stats.calls += 1
        self._stats.status_counts[response.status_code] = self._stats.status_counts.get(response.status_code, 0) + 1
        if response.status_code == 429:
            self._stats.throttled += 1
        elif response.status_code >= 500:
            self._stats.server_errors += 1
        return response


def make_credential(source: Source, settings: Settings, backoff: Backoff = Backoff()):
    authority = settings.graph_authority_host
    # Instance discovery only knows Microsoft's clouds; a private authority (the simulator) must skip it.
    known_cloud = authority.removeprefix("https://").rstrip("/") in {
        h.removeprefix("https://").rstrip("/") for h in (
            AzureAuthorityHosts.AZURE_PUBLIC_CLOUD, AzureAuthorityHosts.AZURE_GOVERNMENT,
            AzureAuthorityHosts.AZURE_CHINA)}
    common = {"authority": authority, "disable_instance_discovery": not known_cloud,
              "retry_backoff_factor": backoff.authority_factor}
    if source.credential == "managed_identity":
        return ManagedIdentityCredential(client_id=source.client_id or None)
    if source.credential == "client_secret":
        secret = settings.named_setting(source.client_secret_setting) if source.client_secret_setting else ""
        if not source.client_id:
            raise ConfigError(f"source {source.id}: client_secret needs a client id (GRAPH_CLIENT_ID)")
        if not secret:
            raise ConfigError(f"source {source.id}: setting {source.client_secret_setting or 'GRAPH_CLIENT_SECRET'} "
                              "holding the client secret is empty")
        return ClientSecretCredential(source.tenant_id, source.client_id, secret, **common)
    if source.credential == "certificate":
        if not (source.client_id and source.certificate_path):
            raise ConfigError(f"source {source.id}: certificate needs GRAPH_CLIENT_ID and GRAPH_CERTIFICATE_PATH")
        return CertificateCredential(source.tenant_id, source.client_id, source.certificate_path, **common)
    return DefaultAzureCredential(authority=authority, managed_identity_client_id=source.client_id or None)


@asynccontextmanager
async def graph_client(source: Source, settings: Settings, stats: CallStats, credential=None,
                       backoff: Backoff = Backoff()) -> AsyncIterator[GraphServiceClient]:
    """A GraphServiceClient for one run; its connections (and a credential it made) are closed afterwards, as the
    Functions worker outlives many runs."""
    own_credential = credential is None
    credential = credential or make_credential(source, settings, backoff=backoff)
    scope = f"{_graph_root(settings)}/.default"
    auth = AzureIdentityAuthenticationProvider(credential, scopes=[scope])
    middleware = KiotaClientFactory.get_default_middleware(None)
    for i, handler in enumerate(middleware):
        if isinstance(handler, RetryHandler):
            retry = RetryHandler(RetryHandlerOption(delay=0.0, max_retries=6))
            retry.retry_on_status_codes = RETRY_STATUS_CODES
            retry.backoff_factor = backoff.status_factor
            retry.backoff_max = backoff.status_max
            middleware[i] = retry
    limiter = AsyncLimiter(settings.graph_max_requests_per_minute, 60)
    middleware.append(_MeterAndLimit(limiter, stats))
    base_url = f"{_graph_root(settings)}/v1.0"
    http = httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(60.0, connect=10.0))
    try:
        adapter = GraphRequestAdapter(auth, client=GraphClientFactory.create_with_custom_middleware(
            middleware, client=http))
        adapter.base_url = base_url
        yield GraphServiceClient(request_adapter=adapter)
    finally:
        await http.aclose()
        if own_credential:
            credential.close()


def _graph_root(settings: Settings) -> str:
    parts = urlsplit(settings.graph_endpoint)
    return f"{parts.scheme}://{parts.netloc}"


def iso(moment: datetime) -> str:
    """Graph's filter literal: UTC, 'Z', microseconds only when present. A moment in another zone is refused, not
    printed as its wall time with a Z: times are made UTC where they enter (shared/cli/times.py)."""
    if moment.utcoffset() != timedelta(0):
        raise ValueError(f"{moment.isoformat()} is not in UTC")
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if moment.microsecond else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Page:
    alerts: list[dict]
    total: int | None  # @odata.count of the whole query, on the first page
    # This page's own @odata.count: the query is evaluated again for every page, so it moves when the tenant does.
    count: int | None = None


class AlertsReader:
    """Pages through alerts updated in [start, end) for one source."""

    def __init__(self, client: GraphServiceClient, settings: Settings, stats: CallStats, source: Source,
                 backoff: Backoff = Backoff()) -> None:
        self._client = client
        self._backoff = backoff
        self._settings = settings
        self._stats = stats
        self._source = source
        # Graph's clock as its first answer to this reader dated it: a pull's watermark never passes it.
        self.first_answer: GraphTime | None = None

    @property
    def page_size(self) -> int:
        return self._settings.pull_page_size

    async def pages(self, start: datetime, end: datetime) -> AsyncIterator[Page]:
        """Yields every page of the window. Follows nextLink; when a full page comes without one (Graph drops it
        at times), asks again with $skip at the number already read. Order is never relied on."""
        query = f"lastUpdateDateTime ge {iso(start)} and lastUpdateDateTime lt {iso(end)}"
        top = self._settings.pull_page_size
        builder = self._client.security.alerts_v2
        request = self._query_request(builder, query, top, skip=0)
        read = 0
        total: int | None = None
        while True:
            page = await self._fetch(request)
            alerts = page.get("value") or []
            count = int(page["@odata.count"]) if "@odata.count" in page else None
            if total is None:
                total = count
            read += len(alerts)
            self._stats.pages += 1
            yield Page(alerts, total, count)
            next_link = page.get("@odata.nextLink")
            if next_link:
                request = builder.with_url(next_link).to_get_request_information(
                    RequestConfiguration(headers=PREFER_ALL_ENUMS))
                continue
            more_expected = read < total if total is not None else len(alerts) >= top
            if not alerts or not more_expected:
                return
            self._stats.skip_fallbacks += 1
            request = self._query_request(builder, query, top, skip=read)

    def _query_request(self, builder: Alerts_v2RequestBuilder, query: str, top: int, skip: int):
        params = Alerts_v2RequestBuilder.Alerts_v2RequestBuilderGetQueryParameters(
            filter=query, top=top, skip=skip or None, count=True)
        config = RequestConfiguration(query_parameters=params, headers=PREFER_ALL_ENUMS)
        return builder.to_get_request_information(config)

    async def _fetch(self, request) -> dict:
        adapter = self._client.request_adapter
        # The SDK's HeadersInspectionHandler fills this with the answer's headers (the last attempt's, after the
        # RetryHandler's): Graph's Date among them.
        inspected = HeadersInspectionHandlerOption(inspect_request_headers=False)
        request.add_request_options([inspected])
        try:
            async for attempt in AsyncRetrying(
                    retry=retry_if_exception_type((httpx.TimeoutException, httpx.NetworkError,
                                                   httpx.RemoteProtocolError)),
                    wait=wait_random_exponential(multiplier=self._backoff.transport_multiplier,
                                                 max=self._backoff.transport_max),
                    stop=stop_after_attempt(TRANSPORT_ATTEMPTS),
                    reraise=True):
                with attempt:
                    body = await adapter.send_primitive_async(request, "bytes", {"XXX": ODataError})
            if self.first_answer is None:
                self.first_answer = graph_time(inspected.response_headers, time.monotonic())
        except ODataError as exc:
            raise self._explain(exc) from None
        except httpx.ConnectError as exc:
            raise EndpointUnreachable(
                f"cannot reach Graph at {self._settings.graph_endpoint}: {exc or type(exc).__name__}") from None
        except ClientAuthenticationError as exc:
            if isinstance(exc.__cause__, ServiceRequestError):
                raise EndpointUnreachable(
                    f"cannot reach the authority {self._settings.graph_authority_host}: "
                    f"{one_line(exc.__cause__)}") from None
            raise PermissionMissing(
                f"source {self._source.id}: no token from {self._settings.graph_authority_host} for tenant "
                f"{self._source.tenant_id}: {one_line(exc.message or '')}") from None
        except ServiceRequestError as exc:
            raise EndpointUnreachable(
                f"cannot reach the authority {self._settings.graph_authority_host}: {one_line(exc)}") from None
        return orjson.loads(body) if body else {}

    def _explain(self, exc: ODataError) -> Exception:
        status = exc.response_status_code or 0
        message = one_line((exc.error.message if exc.error else None) or exc)
        if status in (401, 403):
            return PermissionMissing(
                f"source {self._source.id}: Graph answered {status} ({message}); grant the application role "
                f"{GRAPH_ROLE} to the identity (infra/grant-graph-permission.sh) and wait for consent to propagate")
        return GraphCallFailed(f"source {self._source.id}: Graph answered {status}: {message}")


class GraphCallFailed(Exception):
    """Graph kept failing after the SDK's retries; the run stops for this source and keeps its watermark."""
