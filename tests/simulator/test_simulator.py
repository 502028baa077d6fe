"""The Graph simulator, driven through the real msgraph-sdk and azure-identity over real sockets.

Typed SDK models cost about 10 ms per alert to parse (msgraph's Entity.get_field_deserializers), so bulk reads go
through the SDK's request adapter as raw bytes, as graphlake's puller does, and typed calls stay small.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx
import orjson
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_http.middleware.options import HeadersInspectionHandlerOption, RetryHandlerOption
from msgraph import GraphServiceClient
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.security.alert_collection_response import AlertCollectionResponse
from msgraph.generated.models.security.ip_evidence import IpEvidence
from msgraph.generated.models.security.service_source import ServiceSource
from msgraph.generated.security.alerts_v2.alerts_v2_request_builder import Alerts_v2RequestBuilder
from msgraph_core.tasks.page_iterator import PageIterator

from simulator import Faults, GraphSimulator, Tenant
from simulator.lateness import Lateness

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
PREFER = "include-unknown-enum-members"
SERVICE_SOURCES = {
    "microsoftDefenderForEndpoint", "microsoftDefenderForIdentity", "microsoftDefenderForCloudApps",
    "microsoftDefenderForOffice365", "microsoft365Defender", "azureAdIdentityProtection", "microsoftAppGovernance",
    "dataLossPrevention", "microsoftDefenderForCloud", "microsoftSentinel"}
HIDDEN_SOURCES = {"microsoftDefenderForCloud", "microsoftSentinel"}
GRAPH_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,7})?Z$")


def time_key(text: str) -> tuple[str, str]:
    """Orders Graph timestamps exactly at 100 ns, independent of the simulator's own parser."""
    base, _, fraction = text.rstrip("Z").partition(".")
    return base, fraction.ljust(7, "0")


def parse_time(text: str) -> datetime:
    base, _, fraction = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(base).replace(tzinfo=timezone.utc) + timedelta(
        microseconds=int(fraction.ljust(7, "0")) / 10)


def literal(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- fixtures ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tenant() -> Tenant:
    return Tenant(seed=11, alerts=2100, days=7, now=NOW)


@pytest.fixture(scope="module")
def sim(tenant: Tenant) -> Iterator[GraphSimulator]:
    with GraphSimulator(tenant) as running:
        yield running


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    # One event loop for the module: the SDK's httpx client is bound to the loop it first ran on.
    with asyncio.Runner() as loop:
        yield loop


def credential(sim: GraphSimulator, client_id: str | None = None, **kw: object) -> ClientSecretCredential:
    kw.setdefault("connection_verify", sim.ca_bundle)
    return ClientSecretCredential(sim.tenant_id, client_id or sim.client_id, kw.pop("secret", sim.client_secret),
                                  authority=sim.authority_host, disable_instance_discovery=True, **kw)


def make_client(sim: GraphSimulator, client_id: str | None = None) -> GraphServiceClient:
    client = GraphServiceClient(credentials=credential(sim, client_id), scopes=[GRAPH_SCOPE])
    client.request_adapter.base_url = sim.graph_url + "/v1.0"
    return client


@pytest.fixture(scope="module")
def client(sim: GraphSimulator) -> GraphServiceClient:
    return make_client(sim)


@pytest.fixture
def faults(sim: GraphSimulator) -> Iterator[GraphSimulator]:
    yield sim
    sim.set_faults(Faults())


def config(prefer: bool = True, retry: bool = True, inspect: HeadersInspectionHandlerOption | None = None,
           **params: object) -> RequestConfiguration:
    query = Alerts_v2RequestBuilder.Alerts_v2RequestBuilderGetQueryParameters(**params)
    cfg = RequestConfiguration(query_parameters=query)
    if prefer:
        cfg.headers.add("Prefer", PREFER)
    cfg.options = [option for option in (None if retry else RetryHandlerOption(should_retry=False), inspect)
                   if option is not None]
    return cfg


async def raw_page(client: GraphServiceClient, cfg: RequestConfiguration, url: str | None = None) -> dict:
    builder = client.security.alerts_v2.with_url(url) if url else client.security.alerts_v2
    info = builder.to_get_request_information(cfg)
    raw = await client.request_adapter.send_primitive_async(info, "bytes", {"XXX": ODataError})
    return orjson.loads(raw)


async def read_all(client: GraphServiceClient, prefer: bool = True, **params: object) -> tuple[list[dict], list[dict]]:
    """(alerts, pages) following nextLink, the way a consumer pages."""
    cfg = config(prefer=prefer, **params)
    pages = [await raw_page(client, cfg)]
    while "@odata.nextLink" in pages[-1]:
        pages.append(await raw_page(client, config(prefer=prefer), pages[-1]["@odata.nextLink"]))
    return [alert for page in pages for alert in page["value"]], pages


@pytest.fixture(scope="module")
def everything(client: GraphServiceClient, runner: asyncio.Runner) -> list[dict]:
    alerts, _ = runner.run(read_all(client, top=2000))
    return alerts


# --- identity ----------------------------------------------------------------------------------------------------


def _claims(token: str) -> dict:
    payload = token.split(".")[1]
    return orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_real_azure_identity_gets_a_graph_token(sim: GraphSimulator) -> None:
    token = credential(sim).get_token(GRAPH_SCOPE)
    claims = _claims(token.token)
    assert claims["roles"] == ["SecurityAlert.Read.All"]
    assert (claims["tid"], claims["appid"], claims["aud"]) == (sim.tenant_id, sim.client_id,
                                                               "https://graph.microsoft.com")
    assert token.expires_on > time.time() + 3000


def test_ca_bundle_trusted_through_requests_ca_bundle(sim: GraphSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ClientAuthenticationError, match="CERTIFICATE_VERIFY_FAILED"):
        credential(sim, connection_verify=True, retry_total=0).get_token(GRAPH_SCOPE)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sim.ca_bundle)
    assert credential(sim, connection_verify=True).get_token(GRAPH_SCOPE).token


def test_token_endpoint_rejects_like_entra(sim: GraphSimulator) -> None:
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        credential(sim, secret="not-the-secret").get_token(GRAPH_SCOPE)
    with pytest.raises(ClientAuthenticationError, match="AADSTS500011"):
        credential(sim).get_token("https://management.azure.com/.default")
    # A client that derives its scope from its Graph endpoint (a national cloud, or this simulator) is served.
    assert _claims(credential(sim).get_token(f"{sim.graph_url}/.default").token)["aud"] == sim.graph_url


# --- reading through the SDK ---------------------------------------------------------------------------------------


def test_typed_sdk_models_parse_a_page(sim: GraphSimulator, client: GraphServiceClient,
                                       runner: asyncio.Runner) -> None:
    inspect = HeadersInspectionHandlerOption()
    cfg = config(inspect=inspect, top=6, filter="serviceSource eq 'azureAdIdentityProtection'")
    page = runner.run(client.security.alerts_v2.get(request_configuration=cfg))
    assert isinstance(page, AlertCollectionResponse)
    assert len(page.value) == 6 and page.odata_next_link
    assert {a.service_source for a in page.value} == {ServiceSource.AzureAdIdentityProtection}
    assert all(any(isinstance(e, IpEvidence) for e in a.evidence) for a in page.value)
    assert all(a.created_date_time.tzinfo is not None for a in page.value)
    assert inspect.response_headers.get("preference-applied") == {PREFER}


def test_get_one_alert_by_id(client: GraphServiceClient, runner: asyncio.Runner, everything: list[dict]) -> None:
    wanted = everything[17]
    alert = runner.run(client.security.alerts_v2.by_alert_id(wanted["id"]).get())
    assert (alert.id, alert.title, alert.incident_id) == (wanted["id"], wanted["title"], wanted["incidentId"])
    with pytest.raises(ODataError) as missing:
        runner.run(client.security.alerts_v2.by_alert_id("da000_0").get())
    assert missing.value.response_status_code == 404


def test_next_link_paging_reaches_every_alert_exactly_once(sim: GraphSimulator, client: GraphServiceClient,
                                                          runner: asyncio.Runner, tenant: Tenant) -> None:
    alerts, pages = runner.run(read_all(client, top=97))
    ids = [a["id"] for a in alerts]
    assert len(ids) == len(set(ids)) == tenant.alert_count
    assert [len(p["value"]) for p in pages[:-1]] == [97] * (len(pages) - 1)
    link = pages[0]["@odata.nextLink"]
    assert link.startswith(sim.graph_url + "/v1.0/security/alerts_v2?")
    assert "$skiptoken=" in link and "$skip=" not in link and "$top=" not in link
    created = [time_key(a["createdDateTime"]) for a in alerts]
    assert created == sorted(created, reverse=True)  # newest created first, not by lastUpdateDateTime
    updated = [time_key(a["lastUpdateDateTime"]) for a in alerts]
    assert updated != sorted(updated, reverse=True)


def test_sdk_page_iterator_follows_next_links(client: GraphServiceClient, runner: asyncio.Runner,
                                             everything: list[dict]) -> None:
    async def iterate() -> list[str]:
        cfg = config(top=7, filter="serviceSource eq 'microsoftAppGovernance'")
        pages = PageIterator(await client.security.alerts_v2.get(request_configuration=cfg), client.request_adapter)
        pages.headers.add("Prefer", PREFER)  # set_headers() is broken in msgraph-core 1.5.2 (add_all(**headers))
        seen: list[str] = []
        await pages.iterate(lambda alert: seen.append(alert.id) or True)
        return seen

    ids = runner.run(iterate())
    assert len(ids) > 14 and ids == [a["id"] for a in everything if a["serviceSource"] == "microsoftAppGovernance"]


def test_top_default_clamp_skip_and_count(client: GraphServiceClient, runner: asyncio.Runner,
                                          everything: list[dict]) -> None:
    default = runner.run(raw_page(client, config()))
    assert len(default["value"]) == 100 and "@odata.nextLink" in default
    clamped = runner.run(raw_page(client, config(top=5000, count=True)))
    assert len(clamped["value"]) == 2000 and clamped["@odata.count"] == len(everything) == 2100
    assert "@odata.count" not in default
    skipped = runner.run(raw_page(client, config(top=5, skip=10)))
    assert [a["id"] for a in skipped["value"]] == [a["id"] for a in everything[10:15]]
    past_the_end = runner.run(raw_page(client, config(top=5, skip=5000)))
    assert past_the_end["value"] == [] and "@odata.nextLink" not in past_the_end
    assert clamped["@odata.context"].endswith("$metadata#security/alerts_v2")
    assert runner.run(client.security.alerts_v2.count.get()) == 2100


def _pivots(everything: list[dict]) -> dict[str, str]:
    updated = sorted((a["lastUpdateDateTime"] for a in everything), key=time_key)
    created = sorted((a["createdDateTime"] for a in everything), key=time_key)
    return {"U": updated[len(updated) // 2], "C": created[len(created) // 3], "C2": created[2 * len(created) // 3]}


FILTER_CASES = [
    ("lastUpdateDateTime ge {U}", lambda a, p: time_key(a["lastUpdateDateTime"]) >= time_key(p["U"])),
    ("lastUpdateDateTime gt {U}", lambda a, p: time_key(a["lastUpdateDateTime"]) > time_key(p["U"])),
    ("lastUpdateDateTime lt {U}", lambda a, p: time_key(a["lastUpdateDateTime"]) < time_key(p["U"])),
    ("lastUpdateDateTime le {U}", lambda a, p: time_key(a["lastUpdateDateTime"]) <= time_key(p["U"])),
    ("lastUpdateDateTime eq {U}", lambda a, p: a["lastUpdateDateTime"] == p["U"]),
    ("createdDateTime ge {C}", lambda a, p: time_key(a["createdDateTime"]) >= time_key(p["C"])),
    ("createdDateTime gt {C}", lambda a, p: time_key(a["createdDateTime"]) > time_key(p["C"])),
    ("createdDateTime lt {C}", lambda a, p: time_key(a["createdDateTime"]) < time_key(p["C"])),
    ("createdDateTime le {C}", lambda a, p: time_key(a["createdDateTime"]) <= time_key(p["C"])),
    ("createdDateTime eq {C}", lambda a, p: a["createdDateTime"] == p["C"]),
    ("createdDateTime ge {C} and createdDateTime lt {C2}",
     lambda a, p: time_key(p["C"]) <= time_key(a["createdDateTime"]) < time_key(p["C2"])),
    ("serviceSource eq 'microsoftDefenderForIdentity'",
     lambda a, p: a["serviceSource"] == "microsoftDefenderForIdentity"),
    ("serviceSource eq 'microsoftSentinel'", lambda a, p: a["serviceSource"] == "microsoftSentinel"),
    ("status eq 'resolved'", lambda a, p: a["status"] == "resolved"),
    ("status ne 'resolved'", lambda a, p: a["status"] != "resolved"),
    ("severity eq 'high'", lambda a, p: a["severity"] == "high"),
    ("severity ge 'medium'", lambda a, p: a["severity"] in ("medium", "high")),
    ("severity lt 'medium'", lambda a, p: a["severity"] in ("informational", "low")),
    ("lastUpdateDateTime ge {U} and status eq 'new' and severity eq 'low'",
     lambda a, p: time_key(a["lastUpdateDateTime"]) >= time_key(p["U"]) and a["status"] == "new"
     and a["severity"] == "low"),
    ("lastUpdateDateTime ge {U} and (serviceSource eq 'microsoftSentinel' or severity eq 'high')",
     lambda a, p: time_key(a["lastUpdateDateTime"]) >= time_key(p["U"])
     and (a["serviceSource"] == "microsoftSentinel" or a["severity"] == "high")),
    ("not (status eq 'new') and assignedTo ne null", lambda a, p: a["status"] != "new" and a["assignedTo"]),
    ("createdDateTime ge 2026-11-17T06:30:00.25Z", lambda a, p: time_key(a["createdDateTime"])
     >= ("2026-11-17T06:30:00", "2500000")),
    ("createdDateTime lt 2026-11-17T07:30:00+01:00", lambda a, p: time_key(a["createdDateTime"])
     < ("2026-11-17T06:30:00", "0000000")),
]


@pytest.mark.parametrize(("template", "expected"), FILTER_CASES, ids=[c[0] for c in FILTER_CASES])
def test_filter(template: str, expected, client: GraphServiceClient, runner: asyncio.Runner,
                everything: list[dict]) -> None:
    pivots = _pivots(everything)
    text = template.format(**pivots)
    alerts, pages = runner.run(read_all(client, top=2000, count=True, filter=text))
    want = {a["id"] for a in everything if expected(a, pivots)}
    assert 0 < len(want) < len(everything)
    assert {a["id"] for a in alerts} == want
    assert pages[0]["@odata.count"] == len(want)


@pytest.mark.parametrize(("text", "message"), [
    ("title eq 'Honeytoken activity'", "title"),
    ("lastUpdateDateTime ge '2026-11-20T00:00:00Z'", "incompatible types"),
    ("severity eq 'catastrophic'", "not a valid enumeration"),
    ("lastUpdateDateTime ge 2026-13-01T00:00:00Z", "DateTimeOffset"),
    ("status eq 'new' and", "unexpected end"),
    ("contains(title, 'IP')", "function 'contains'"),
])
def test_unsupported_filters_are_graph_style_400s(text: str, message: str, client: GraphServiceClient,
                                                  runner: asyncio.Runner) -> None:
    with pytest.raises(ODataError) as failure:
        runner.run(client.security.alerts_v2.get(request_configuration=config(filter=text)))
    assert failure.value.response_status_code == 400
    assert failure.value.error.code == "BadRequest"
    assert message in failure.value.error.message


def test_orderby_is_ignored_and_select_refused(client: GraphServiceClient, runner: asyncio.Runner,
                                               everything: list[dict]) -> None:
    ordered = runner.run(raw_page(client, config(top=20, orderby=["lastUpdateDateTime asc"])))
    assert [a["id"] for a in ordered["value"]] == [a["id"] for a in everything[:20]]
    with pytest.raises(ODataError) as refused:
        runner.run(raw_page(client, config(top=5, select=["id"])))
    assert refused.value.response_status_code == 400


def test_prefer_header_controls_evolvable_enums(client: GraphServiceClient, runner: asyncio.Runner,
                                               everything: list[dict]) -> None:
    plain, _ = runner.run(read_all(client, prefer=False, top=2000))
    by_id = {a["id"]: a for a in plain}
    assert {a["serviceSource"] for a in everything} == SERVICE_SOURCES
    hidden = [a for a in everything if a["serviceSource"] in HIDDEN_SOURCES]
    assert hidden and all(by_id[a["id"]]["serviceSource"] == "unknownFutureValue" for a in hidden)
    assert all(by_id[a["id"]]["detectionSource"] == "unknownFutureValue" for a in hidden)
    assert {a["serviceSource"] for a in plain} == SERVICE_SOURCES - HIDDEN_SOURCES | {"unknownFutureValue"}
    gated = {"active", "pendingApproval", "declined", "unremediated", "running", "partiallyRemediated"}
    shown = Counter(e["remediationStatus"] for a in everything for e in a["evidence"])
    masked = Counter(e["remediationStatus"] for a in plain for e in a["evidence"])
    assert gated & set(shown) and not gated & set(masked)
    assert masked["unknownFutureValue"] == sum(shown[s] for s in gated)
    # The filter matches on the real value even when the response masks it.
    sentinel, _ = runner.run(read_all(client, prefer=False, top=2000, filter="serviceSource eq 'microsoftSentinel'"))
    assert sentinel and {a["serviceSource"] for a in sentinel} == {"unknownFutureValue"}


# --- auth and faults ---------------------------------------------------------------------------------------------


def test_401_without_a_valid_token(sim: GraphSimulator) -> None:
    url = sim.graph_url + "/v1.0/security/alerts_v2"
    missing = httpx.get(url)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert missing.json()["error"]["message"] == "Access token is empty."
    header, payload, signature = credential(sim).get_token(GRAPH_SCOPE).token.split(".")
    forged_claims = {**_claims(f"x.{payload}.x"), "roles": ["SecurityAlert.ReadWrite.All"]}
    forged = base64.urlsafe_b64encode(orjson.dumps(forged_claims)).rstrip(b"=").decode()
    tampered = httpx.get(url, headers={"Authorization": f"Bearer {header}.{forged}.{signature}"})
    assert tampered.status_code == 401
    assert {"request-id", "client-request-id"} <= set(tampered.json()["error"]["innerError"])


def test_skiptoken_is_checked(sim: GraphSimulator) -> None:
    token = credential(sim).get_token(GRAPH_SCOPE).token
    answer = httpx.get(sim.graph_url + "/v1.0/security/alerts_v2", params={"$skiptoken": "bm90LWEtdG9rZW4"},
                       headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "BadRequest"


def test_403_for_an_app_without_the_role(sim: GraphSimulator, runner: asyncio.Runner) -> None:
    unconsented = make_client(sim, sim.client_id_without_role)
    with pytest.raises(ODataError) as denied:
        runner.run(unconsented.security.alerts_v2.get(request_configuration=config(top=1)))
    assert denied.value.response_status_code == 403
    assert denied.value.error.code == "Forbidden"
    assert denied.value.error.message == ("Missing application roles. API required roles: SecurityAlert.Read.All, "
                                          "SecurityAlert.ReadWrite.All. API application roles: .")


def test_429_with_retry_after_under_a_small_budget(faults: GraphSimulator, client: GraphServiceClient,
                                                   runner: asyncio.Runner) -> None:
    faults.set_faults(rate_limit_per_window=3, rate_window_seconds=2)
    before = faults.throttled
    for _ in range(3):
        runner.run(raw_page(client, config(top=1, retry=False)))
    with pytest.raises(ODataError) as throttled:
        runner.run(raw_page(client, config(top=1, retry=False)))
    assert throttled.value.response_status_code == 429
    assert throttled.value.error.code == "TooManyRequests"
    retry_after = int(throttled.value.response_headers["retry-after"])
    assert 1 <= retry_after <= 2
    # The SDK's RetryHandler honours Retry-After and gets through once the window resets.
    started = time.monotonic()
    page = runner.run(raw_page(client, config(top=1)))
    assert len(page["value"]) == 1
    assert faults.throttled - before >= 2 and time.monotonic() - started >= 0.5


def test_injected_server_errors(faults: GraphSimulator, client: GraphServiceClient, runner: asyncio.Runner) -> None:
    faults.set_faults(error_rate=1.0, seed=3)
    before = faults.errors
    statuses = set()
    for _ in range(8):
        with pytest.raises(ODataError) as failure:
            runner.run(raw_page(client, config(top=1, retry=False)))
        statuses.add(failure.value.response_status_code)
        assert failure.value.error.code in {"InternalServerError", "BadGateway", "ServiceNotAvailable",
                                            "GatewayTimeout"}
    assert statuses <= {500, 502, 503, 504} and len(statuses) >= 2
    assert faults.errors - before == 8
    faults.set_faults(error_rate=0.3, seed=4)
    failures = 0
    for _ in range(30):
        try:
            runner.run(raw_page(client, config(top=1, retry=False)))
        except ODataError:
            failures += 1
    assert 3 <= failures <= 18


def test_full_pages_can_lose_their_next_link(faults: GraphSimulator, client: GraphServiceClient,
                                             runner: asyncio.Runner, everything: list[dict]) -> None:
    faults.set_faults(drop_next_link_rate=1.0)
    before = faults.dropped_next_links
    full = runner.run(raw_page(client, config(top=100, count=True)))
    assert len(full["value"]) == 100 and full["@odata.count"] > 100 and "@odata.nextLink" not in full
    # The documented workaround: keep going with $skip while pages come back full.
    following = runner.run(raw_page(client, config(top=100, skip=100)))
    assert [a["id"] for a in following["value"]] == [a["id"] for a in everything[100:200]]
    last = runner.run(raw_page(client, config(top=100, skip=len(everything) - 40)))
    assert len(last["value"]) == 40
    assert faults.dropped_next_links - before == 2


def test_updates_between_page_requests_push_unread_alerts_onto_served_pages(runner: asyncio.Runner) -> None:
    # A tenant of its own: updates happen at the wall clock, which the module's tenant must not jump to.
    tenant = Tenant(seed=4, alerts=300, days=1)
    window = f"lastUpdateDateTime lt {literal(tenant.now)}"
    with GraphSimulator(tenant, Faults(page_updates=3, seed=2)) as sim:
        client = make_client(sim)
        before = runner.run(raw_page(client, config(top=300, count=True, filter=window)))["value"]
        history = len(tenant.versions())
        alerts, pages = runner.run(read_all(client, top=50, count=True, filter=window))
        assert sim.counters.page_updates == 3 * (len(pages) - 1) > 0
    # Every update went to an alert a page had already served, and took it out of the window ...
    updated = {v.alert_id for v in tenant.versions()[history:]}
    assert len(updated) == sim.counters.page_updates
    assert updated <= {a["id"] for a in alerts}
    assert [p["@odata.count"] for p in pages] == [len(before) - 3 * i for i in range(len(pages))]
    # ... so alerts that were still to come moved up onto pages already read: they never came.
    missed = {a["id"] for a in before} - {a["id"] for a in alerts}
    assert len(missed) == len(updated)
    assert missed.isdisjoint(updated)


def test_unstable_order_reorders_each_request_within_an_hour(faults: GraphSimulator, client: GraphServiceClient,
                                                            runner: asyncio.Runner, everything: list[dict]) -> None:
    faults.set_faults(unstable_order=True, seed=5)
    first, second = (runner.run(raw_page(client, config(top=2000)))["value"] for _ in range(2))
    assert [a["id"] for a in first] != [a["id"] for a in second]
    assert sorted(a["id"] for a in first) == sorted(a["id"] for a in everything[:2000])

    def hours(page: list[dict]) -> list[str]:
        return [a["createdDateTime"][:13] for a in page]

    assert hours(first) == hours(second) == hours(everything[:2000])


def test_malformed_timestamps_lose_their_zone_the_same_way_on_every_call(
        faults: GraphSimulator, client: GraphServiceClient, runner: asyncio.Runner, everything: list[dict]) -> None:
    faults.set_faults(malformed_timestamp_rate=0.2, seed=8)
    first, second = (runner.run(raw_page(client, config(top=500)))["value"] for _ in range(2))
    zoneless = [a for a in first if not a["lastUpdateDateTime"].endswith("Z")]
    assert 50 < len(zoneless) < 150 and first == second
    clean = {a["id"]: a["lastUpdateDateTime"] for a in everything[:500]}
    assert all(clean[a["id"]] == a["lastUpdateDateTime"] + "Z" for a in zoneless)
    assert all(faults.as_served(a["id"], clean[a["id"]]) == a["lastUpdateDateTime"] for a in first)


# --- the tenant over time ------------------------------------------------------------------------------------------


def test_mutate_makes_late_versions_visible_now() -> None:
    tenant = Tenant(seed=3, alerts=300, days=2, now=NOW)
    before = {ref.alert_id: tenant.current(ref.alert_id) for ref in tenant.versions()}
    later = NOW + timedelta(minutes=10)
    made = tenant.mutate(later, new_alerts=7, updates=25, max_lateness_seconds=300)
    assert len(made) == 32 and tenant.alert_count == 307
    new_ids = {v.alert_id for v in made} - set(before)
    assert len(new_ids) == 7
    for version in made:
        stamp = parse_time(version.last_update_text)
        assert later - timedelta(seconds=300) <= stamp <= later
        alert = tenant.alert(version.alert_id, now=later)
        assert alert["lastUpdateDateTime"] == version.last_update_text
        if version.alert_id in new_ids:
            assert alert["createdDateTime"] == alert["lastUpdateDateTime"]
        else:
            previous = before[version.alert_id]
            assert previous.status != "resolved" and version.last_update > previous.last_update
    assert tenant.versions()[-32:] == [(v.alert_id, v.last_update_text, later, tenant.service_source(v.alert_id))
                                       for v in made]
    # Just before `later` the API still showed the old versions, although the new timestamps lie in that past.
    earlier = tenant.query(top=400, include_unknown_enum_members=True, now=later - timedelta(microseconds=1))
    assert not new_ids & {a["id"] for a in earlier.alerts} and earlier.total == 300
    seen = {a["id"]: a["lastUpdateDateTime"] for a in earlier.alerts}
    assert all(seen[v.alert_id] == before[v.alert_id].last_update_text for v in made if v.alert_id not in new_ids)
    window = f"lastUpdateDateTime ge {literal(later - timedelta(seconds=301))}"
    assert {v.alert_id for v in made} <= {a["id"] for a in tenant.query(window, top=400).alerts}
    with pytest.raises(ValueError):
        tenant.mutate(NOW, new_alerts=1)


def test_versions_only_move_forward_and_never_past_the_clock() -> None:
    tenant = Tenant(seed=8, alerts=400, days=3, now=NOW)
    later = NOW + timedelta(minutes=1)
    first = tenant.mutate(later, updates=500, max_lateness_seconds=0)
    assert first and all(parse_time(v.last_update_text) == later for v in first)
    # Everything just updated already sits at `later`: no room for a strictly later timestamp at the same now.
    again = tenant.mutate(later, updates=500, max_lateness_seconds=0)
    assert {v.alert_id for v in again}.isdisjoint(v.alert_id for v in first)
    chains: dict[str, list] = {}
    for ref in tenant.versions():
        chains.setdefault(ref.alert_id, []).append((time_key(ref.last_update), ref.visible_at))
    assert sum(len(c) for c in chains.values()) > len(chains)  # the backlog already has worked-on alerts
    for chain in chains.values():
        stamps = [stamp for stamp, _ in chain]
        assert stamps == sorted(set(stamps))
        assert [v for _, v in chain] == sorted(v for _, v in chain)
        assert stamps[-1] <= time_key(literal(later)) and chain[-1][1] <= later


def test_http_serves_the_current_version_after_mutate(runner: asyncio.Runner) -> None:
    tenant = Tenant(seed=21, alerts=80, days=1, now=NOW)
    with GraphSimulator(tenant) as sim:
        client = make_client(sim)
        later = NOW + timedelta(minutes=5)
        window = f"lastUpdateDateTime ge {literal(later - timedelta(seconds=61))}"
        assert runner.run(read_all(client, top=100, filter=window))[0] == []
        with sim.lock:
            made = tenant.mutate(later, new_alerts=3, updates=4, max_lateness_seconds=60)
        alerts, _ = runner.run(read_all(client, top=100, filter=window))
        assert {(a["id"], a["lastUpdateDateTime"]) for a in alerts} == {(v.alert_id, v.last_update_text)
                                                                          for v in made}


def test_advance_to_adds_alerts_at_modest_rates() -> None:
    tenant = Tenant(seed=2, alerts=100, days=1, now=NOW)
    made = tenant.advance_to(NOW + timedelta(minutes=30), new_per_minute=2, updates_per_minute=3)
    assert tenant.alert_count == 160 and 30 < len(made) - 60 <= 90
    assert tenant.now == NOW + timedelta(minutes=30)
    # Fractions carry over: a quarter minute at 2/min twice gives one alert, not zero twice.
    tenant.advance_to(NOW + timedelta(minutes=30, seconds=15), new_per_minute=2, updates_per_minute=0)
    tenant.advance_to(NOW + timedelta(minutes=30, seconds=30), new_per_minute=2, updates_per_minute=0)
    assert tenant.alert_count == 161


def test_live_simulator_moves_with_real_time() -> None:
    tenant = Tenant(seed=2, alerts=20, days=1)
    start = tenant.clock
    with GraphSimulator(tenant, live=True, live_interval_seconds=0.05):
        # Waits for the live thread's first step, however busy the machine; the bound only stops a hang.
        deadline = time.monotonic() + 30
        while tenant.clock == start and time.monotonic() < deadline:
            time.sleep(0.01)
    assert tenant.clock > start


def test_lateness_has_a_long_tail() -> None:
    tenant = Tenant(seed=6, alerts=200, days=1, now=NOW)
    tail = Lateness(typical_seconds=5, tail_share=0.05, tail_max_seconds=7200)
    made = tenant.mutate(NOW + timedelta(hours=3), new_alerts=1500, updates=100, lateness=tail)
    late = sorted((v.visible_at - v.last_update) / 10_000_000 for v in made)
    assert len(late) == 1600
    assert sum(s <= 5 for s in late) / len(late) > 0.9
    assert 30 < sum(s > 60 for s in late) < 130
    assert late[-1] > 3600 and late[-1] <= 7200


def test_same_seed_same_tenant() -> None:
    first, second = (Tenant(seed=5, alerts=300, now=NOW) for _ in range(2))
    assert first.query_json(top=300, include_unknown_enum_members=True) == \
        second.query_json(top=300, include_unknown_enum_members=True)
    assert first.versions() == second.versions()
    later = NOW + timedelta(minutes=3)
    made = [t.mutate(later, new_alerts=4, updates=9, max_lateness_seconds=120) for t in (first, second)]
    assert made[0] == made[1]
    other = Tenant(seed=6, alerts=300, now=NOW)
    assert {v.alert_id for v in other.versions()}.isdisjoint(v.alert_id for v in first.versions())


# --- content -------------------------------------------------------------------------------------------------------


def _types(alert: dict) -> set[str]:
    return {e["@odata.type"].rsplit(".", 1)[1] for e in alert["evidence"]}


def test_small_tenant_has_every_product_and_the_seed_scenarios() -> None:
    tenant = Tenant(seed=1, alerts=60, now=NOW)
    alerts = tenant.query(top=100, include_unknown_enum_members=True).alerts
    assert {a["serviceSource"] for a in alerts} == SERVICE_SOURCES
    by_title = {a["title"]: a for a in alerts}
    scenarios = {
        "Anonymous IP address": ("azureAdIdentityProtection", {"userEvidence", "ipEvidence"}),
        "Compromised account": ("microsoftDefenderForCloudApps", {"userEvidence", "ipEvidence",
                                                                  "cloudApplicationEvidence"}),
        "Compromised credentials": ("microsoft365Defender", {"userEvidence", "ipEvidence"}),
        "Suspected identity theft (pass-the-hash)": ("microsoftDefenderForIdentity", {"userEvidence", "deviceEvidence",
                                                                                      "ipEvidence"}),
        "Honeytoken activity": ("microsoftDefenderForIdentity", {"userEvidence", "deviceEvidence"}),
        "Data exfiltration over SMB": ("microsoftDefenderForIdentity", {"userEvidence", "deviceEvidence",
                                                                        "ipEvidence"}),
    }
    for title, (source, evidence) in scenarios.items():
        assert by_title[title]["serviceSource"] == source
        assert evidence <= _types(by_title[title]), title
    smb = by_title["Data exfiltration over SMB"]
    roles = [e["detailedRoles"] for e in smb["evidence"] if e["@odata.type"].endswith("deviceEvidence")]
    assert roles == [["Source"], ["Destination"]]
    sentinel = next(a for a in alerts if a["serviceSource"] == "microsoftSentinel")
    assert sentinel["detectionSource"] in ("scheduledAlerts", "nrtAlerts") and sentinel["customDetails"]["SourceIPs"]


def test_alert_shapes(everything: list[dict], tenant: Tenant) -> None:
    required = {"@odata.type", "id", "providerAlertId", "incidentId", "alertWebUrl", "incidentWebUrl", "tenantId",
                "title", "description", "recommendedActions", "category", "severity", "status", "classification",
                "determination", "serviceSource", "detectionSource", "productName", "detectorId", "alertPolicyId",
                "actorDisplayName", "threatDisplayName", "threatFamilyName", "mitreTechniques", "systemTags",
                "comments", "evidence", "assignedTo", "createdDateTime", "lastUpdateDateTime", "resolvedDateTime",
                "firstActivityDateTime", "lastActivityDateTime"}
    digits = Counter()
    for alert in everything:
        assert required <= set(alert), required - set(alert)
        assert alert["@odata.type"] == "#microsoft.graph.security.alert"
        assert alert["id"].endswith(alert["providerAlertId"]) and len(alert["id"]) == len(alert["providerAlertId"]) + 2
        for name in ("createdDateTime", "lastUpdateDateTime", "firstActivityDateTime", "lastActivityDateTime"):
            assert GRAPH_TIME.match(alert[name]), alert[name]
            digits[len(alert[name].rstrip("Z").partition(".")[2])] += 1
        assert time_key(alert["firstActivityDateTime"]) <= time_key(alert["lastActivityDateTime"]) \
            <= time_key(alert["createdDateTime"]) <= time_key(alert["lastUpdateDateTime"]) <= time_key(literal(NOW))
        assert (alert["resolvedDateTime"] is not None) == (alert["status"] == "resolved")
        for item in alert["evidence"]:
            assert {"createdDateTime", "verdict", "remediationStatus", "remediationStatusDetails", "roles",
                    "detailedRoles", "tags"} <= set(item)
    assert digits[7] > digits[2] > 0 and digits[0] > 0
    prefixes = {a["serviceSource"]: a["id"][:2] for a in everything}
    assert prefixes["microsoftDefenderForEndpoint"] == "da" and prefixes["microsoftDefenderForOffice365"] == "fa"
    assert prefixes["microsoftDefenderForIdentity"] == "aa" and prefixes["microsoftDefenderForCloudApps"] == "ca"
    assert {a["tenantId"] for a in everything} == {tenant.tenant_id}
    mix = Counter(a["serviceSource"] for a in everything).most_common(2)
    assert {source for source, _ in mix} == {"microsoftDefenderForEndpoint", "microsoftDefenderForOffice365"}
    assert Counter(a["status"] for a in everything).keys() == {"new", "inProgress", "resolved"}


def test_evidence_exercises_consumers(everything: list[dict]) -> None:
    evidence = [e for a in everything for e in a["evidence"]]
    kinds = {e["@odata.type"].rsplit(".", 1)[1] for e in evidence}
    assert {"userEvidence", "ipEvidence", "deviceEvidence", "fileEvidence", "processEvidence", "urlEvidence",
            "mailboxEvidence", "analyzedMessageEvidence", "mailClusterEvidence", "cloudApplicationEvidence",
            "oauthApplicationEvidence", "registryKeyEvidence", "registryValueEvidence", "securityGroupEvidence",
            "azureResourceEvidence", "kubernetesPodEvidence", "aiAgentEvidence", "aiPromptEvidence"} <= kinds
    addresses = [e["ipAddress"] for e in evidence if "ipAddress" in e]
    assert any("." in ip for ip in addresses) and any(":" in ip for ip in addresses)
    assert any(":" in ip and ip != ip.lower() for ip in addresses)            # upper-case IPv6
    assert any(re.search(r":0[0-9a-f]{3}", ip) for ip in addresses)          # leading zeros
    hashes = [e["fileDetails"]["sha256"] for e in evidence if "fileDetails" in e]
    assert any(h.isupper() for h in hashes) and any(h.islower() for h in hashes)
    accounts = [e["userAccount"] for e in evidence if e.get("userAccount")]
    assert all({"accountName", "domainName", "userSid", "azureAdUserId", "userPrincipalName", "displayName"}
               <= set(a) for a in accounts)
    assert all(a["userPrincipalName"].endswith(("@contoso.com", "@fabrikam.com")) for a in accounts
               if a["userPrincipalName"])
    messages = [e for e in evidence if e["@odata.type"].endswith("analyzedMessageEvidence")]
    assert all(m["senderIp"] and m["p1Sender"]["emailAddress"] and m["recipientEmailAddress"] for m in messages)


def test_a_100k_backlog_builds_and_answers_queries() -> None:
    # How long it takes is measured by bench/bench_pull.py (tenant generation), not gated here.
    big = Tenant(seed=9, alerts=100_000, now=NOW)
    total, page = big.query_json("lastUpdateDateTime ge 2026-11-19T00:00:00Z", top=2000)
    assert big.alert_count == 100_000 and len(page) == 2000 and 0 < total < 100_000


# --- the CLI entry -------------------------------------------------------------------------------------------------


def test_run_forever_prints_the_client_settings_and_stops_on_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", "from simulator import run_forever; run_forever(alerts=40)"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline().strip() for _ in range(8)]
        settings = dict(line.split("=", 1) for line in lines)
        assert set(settings) == {"GRAPH_ENDPOINT", "GRAPH_AUTHORITY_HOST", "GRAPH_TENANT_ID", "GRAPH_CREDENTIAL",
                                 "GRAPH_CLIENT_ID", "GRAPH_CLIENT_SECRET", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"}
        token = ClientSecretCredential(
            settings["GRAPH_TENANT_ID"], settings["GRAPH_CLIENT_ID"], settings["GRAPH_CLIENT_SECRET"],
            authority=settings["GRAPH_AUTHORITY_HOST"], disable_instance_discovery=True,
            connection_verify=settings["REQUESTS_CA_BUNDLE"]).get_token(GRAPH_SCOPE).token
        page = httpx.get(settings["GRAPH_ENDPOINT"] + "/v1.0/security/alerts_v2?$count=true",
                         headers={"Authorization": f"Bearer {token}"}).json()
        assert page["@odata.count"] == 40
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert not Path(settings["REQUESTS_CA_BUNDLE"]).exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_clock_skew_puts_the_chosen_share_of_pull_runs_ahead_of_graphs_clock(faults: GraphSimulator) -> None:
    now = faults.tenant.now
    assert faults.pull_clock(now) == now
    faults.set_faults(clock_ahead_rate=0.5, clock_ahead_seconds=3600, seed=3)
    before = faults.counters.clock_ahead_runs
    believed = [faults.pull_clock(now) for _ in range(40)]
    assert set(believed) == {now, now + timedelta(hours=1)}
    assert faults.counters.clock_ahead_runs - before == believed.count(now + timedelta(hours=1))


def test_answers_are_dated_by_graphs_clock_which_a_fault_puts_behind_the_hosts(runner: asyncio.Runner) -> None:
    behind = 600.0
    tenant = Tenant(seed=5, alerts=5, now=datetime.now(timezone.utc) - timedelta(seconds=behind + 1))
    with GraphSimulator(tenant, Faults(tenant_clock_behind_seconds=behind)) as sim:
        inspect = HeadersInspectionHandlerOption()
        host_before, before = datetime.now(timezone.utc), sim.graph_now()
        runner.run(make_client(sim).security.alerts_v2.get(request_configuration=config(inspect=inspect)))
        after, host = sim.graph_now(), datetime.now(timezone.utc)
        [date] = inspect.response_headers.get("date")
        graph = parsedate_to_datetime(date)
        assert re.fullmatch(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT", date)  # IMF-fixdate
        assert before.replace(microsecond=0) <= graph <= after  # whole seconds, floored
        assert host_before - timedelta(seconds=behind + 1) <= before and after <= host - timedelta(seconds=behind)
        # Errors are dated too, by the same clock.
        refused = httpx.get(f"{sim.graph_url}/v1.0/security/alerts_v2")
        assert refused.status_code == 401
        assert after.replace(microsecond=0) <= parsedate_to_datetime(refused.headers["date"]) <= sim.graph_now()
        # What the tenant stamps at graph_now() is dated by Graph's clock, not the host's.
        [made] = tenant.mutate(now=sim.graph_now(), new_alerts=1)
        assert parse_time(made.last_update_text) <= sim.graph_now() < host - timedelta(seconds=behind - 5)

        sim.set_faults(strip_date_header=True)
        assert "date" not in httpx.get(f"{sim.graph_url}/v1.0/security/alerts_v2").headers

    # A tenant whose clock a test moved ahead of the host's dates its answers by it.
    ahead = Tenant(seed=5, alerts=5, now=datetime.now(timezone.utc) + timedelta(hours=2))
    with GraphSimulator(ahead) as sim:
        date = parsedate_to_datetime(httpx.get(f"{sim.graph_url}/v1.0/security/alerts_v2").headers["date"])
        assert date == ahead.now.replace(microsecond=0)
