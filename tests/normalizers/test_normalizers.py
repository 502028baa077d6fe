"""Tests of the normalizers package: golden rows per provider, canonical indicators, p_ fields, schema.

Golden files: normalizers/golden/<provider>.input.json (alerts as Graph sends them) and
<provider>.expected.jsonl (one rendered row per alert). After a deliberate change, regenerate with
    PYTHONPATH=. .venv/bin/python tests/normalizers/test_normalizers.py --regenerate-golden
then read the diff line by line: the expected files are the specification, not a snapshot.
"""

from __future__ import annotations

import io
import ipaddress
import random
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

import normalizers
from normalizers import (
    LOG_TYPE,
    PROVIDERS,
    SCHEMA,
    SCHEMA_VERSION,
    TABLE,
    NotAnAlert,
    core,
    normalize_alert,
    provider_for,
    rows_to_table,
)
from normalizers.indicators import (
    INDICATOR_COLUMNS,
    canonical_actor_id,
    canonical_domain,
    canonical_email,
    canonical_forms,
    canonical_hash,
    canonical_ip,
    canonical_url,
    canonical_username,
    url_host,
)
from shared.land.normalize import InboundEvent, normalize_events
from shared.core.storage import LocalStore

GOLDEN = Path(normalizers.__file__).parent / "golden"
PARSE_TIME = datetime(2026, 7, 1, 0, 0, tzinfo=timezone.utc)
SOURCE = {"source_id": "contoso-prod", "source_label": "Contoso production tenant"}
GOLDEN_NAMES = sorted(path.name.removesuffix(".input.json") for path in GOLDEN.glob("*.input.json"))
UTC = timezone.utc


def load_golden_inputs(name: str) -> list[dict]:
    return orjson.loads((GOLDEN / f"{name}.input.json").read_bytes())


def normalize(alert: dict) -> dict:
    return normalize_alert(alert, parse_time=PARSE_TIME, **SOURCE)


def render(row: dict) -> dict:
    """A row as JSON-ready values, in schema order; timestamps as ISO strings with microseconds."""
    return {name: _render_value(row[name]) for name in SCHEMA.names}


def _render_value(value: object) -> object:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if isinstance(value, datetime) else value


def minimal_alert(**overrides: object) -> dict:
    alert = {
        "id": "da000000000000000001_1",
        "tenantId": "5f0e1d2c-3b4a-4968-8776-a5b4c3d2e1f0",
        "serviceSource": "microsoftDefenderForEndpoint",
        "createdDateTime": "2026-06-01T10:00:00.1234567Z",
        "lastUpdateDateTime": "2026-06-01T10:05:00.12Z",
        "evidence": [],
    }
    alert.update(overrides)
    return alert


# --- Golden files -------------------------------------------------------------------------------------------


def test_every_provider_and_the_core_fallback_have_golden_files() -> None:
    names = {provider.name for provider in PROVIDERS.values()} | {"core"}
    assert names == set(GOLDEN_NAMES)
    for name in GOLDEN_NAMES:
        assert (GOLDEN / f"{name}.expected.jsonl").exists(), f"{name}.expected.jsonl missing: regenerate"


@pytest.mark.parametrize("name", GOLDEN_NAMES)
def test_golden_alerts_route_to_their_provider(name: str) -> None:
    for alert in load_golden_inputs(name):
        assert provider_for(alert.get("serviceSource")).name == name, alert["id"]


@pytest.mark.parametrize("name", GOLDEN_NAMES)
def test_golden_rows(name: str) -> None:
    actual = [render(normalize(alert)) for alert in load_golden_inputs(name)]
    expected = [orjson.loads(line) for line in (GOLDEN / f"{name}.expected.jsonl").read_bytes().splitlines()]
    assert len(actual) == len(expected), f"{name}: {len(actual)} rows, golden file has {len(expected)}"
    problems = []
    for number, (got, want) in enumerate(zip(actual, expected), start=1):
        for column in SCHEMA.names:
            if got.get(column) != want.get(column):
                problems.append(f"  row {number} ({want.get('id')}) {column}:\n"
                                f"    expected {want.get(column)!r}\n    actual   {got.get(column)!r}")
        if set(want) != set(SCHEMA.names):
            problems.append(f"  row {number}: columns differ from SCHEMA by {set(want) ^ set(SCHEMA.names)}")
    assert not problems, f"{name}.expected.jsonl differs:\n" + "\n".join(problems)


def test_golden_rows_keep_evidence_exactly_and_lists_canonical() -> None:
    for name in GOLDEN_NAMES:
        for alert in load_golden_inputs(name):
            row = normalize(alert)
            assert list(row) == SCHEMA.names
            if "evidence" in alert:
                assert orjson.loads(row["evidence"]) == alert["evidence"]
            for column in INDICATOR_COLUMNS:
                values = row[column]
                if values is not None:
                    assert values == sorted(set(values)) and all(values), (alert["id"], column, values)


# --- Canonical indicator values -----------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [
    ("203.0.113.5", "203.0.113.5"),
    (" 203.0.113.5\n", "203.0.113.5"),
    ("2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
    ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
    ("2001:DB8::A", "2001:db8::a"),
    ("[2001:db8::1]", "2001:db8::1"),
    ("::ffff:198.51.100.7", "198.51.100.7"),
    ("::FFFF:C633:6407", "198.51.100.7"),
    ("::1", "::1"),
    ("300.1.2.3", None),
    ("010.0.0.1", None),
    ("2001:db8::g", None),
    ("203.0.113", None),
    ("", None),
    ("   ", None),
    ("contoso.com", None),
    (None, None),
    (42, None),
])
def test_canonical_ip(raw: object, expected: str | None) -> None:
    assert canonical_ip(raw) == expected


def test_canonical_ip_accepts_exactly_what_ipaddress_accepts() -> None:
    rng = random.Random(20260701)
    pieces = ["0", "1", "9", "00", "01", "10", "99", "100", "199", "249", "250", "255", "256", "300", "1000", ""]
    candidates = [".".join(rng.choice(pieces) for _ in range(rng.choice((3, 4, 4, 4, 5)))) for _ in range(5000)]
    candidates += ["0.0.0.0", "255.255.255.255", "1.2.3.4 ", "\t1.2.3.4", "１.2.3.4", "1.2.3.4%eth0", "::ffff:1.2.3.4"]
    for candidate in candidates:
        try:
            address = ipaddress.ip_address(candidate.strip())
        except ValueError:
            expected = None
        else:
            mapped = getattr(address, "ipv4_mapped", None)
            expected = str(mapped or address)
        assert canonical_ip(candidate) == expected, candidate


@pytest.mark.parametrize(("raw", "expected"), [
    ("Contoso.COM", "contoso.com"),
    ("ws-0042.corp.contoso.com.", "ws-0042.corp.contoso.com"),
    ("  desktop-8v3jhhq ", "desktop-8v3jhhq"),
    ("_ldap._tcp.contoso.com", "_ldap._tcp.contoso.com"),
    ("xn--bcher-kva.example", "bücher.example"),
    ("BÜCHER.example", "bücher.example"),
    ("203.0.113.5", None),
    ("-bad.contoso.com", None),
    ("two words.com", None),
    ("contoso..com", None),
    ("a/b.com", None),
    (".", None),
    ("", None),
    ("x" * 64 + ".com", None),
])
def test_canonical_domain(raw: str, expected: str | None) -> None:
    assert canonical_domain(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("Avery.Admin@Contoso.COM", "avery.admin@contoso.com"),
    ("  <Billing@Fabrikam.com> ", "billing@fabrikam.com"),
    ("MAILTO:help@contoso.com", "help@contoso.com"),
    ("user@mail.contoso.com.", "user@mail.contoso.com"),
    ("not an email", None),
    ("@contoso.com", None),
    ("user@", None),
    ("user@localhost", None),
    ("two words@contoso.com", None),
    ("", None),
])
def test_canonical_email(raw: str, expected: str | None) -> None:
    assert canonical_email(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("600BA308684FB5C33F154F8746734778", ("md5", "600ba308684fb5c33f154f8746734778")),
    ("5F1E8ACEDC065031AAD553B710838EB366CFEE9A", ("sha1", "5f1e8acedc065031aad553b710838eb366cfee9a")),
    (" " + "AB" * 32 + " ", ("sha256", "ab" * 32)),
    ("g" * 32, None),
    ("a" * 33, None),
    ("", None),
    (None, None),
])
def test_canonical_hash(raw: object, expected: tuple[str, str] | None) -> None:
    assert canonical_hash(raw) == expected


@pytest.mark.parametrize(("raw", "url", "host"), [
    ("HTTPS://Downloads.Fabrikam.COM./Payload.exe?x=Y", "https://downloads.fabrikam.com/Payload.exe?x=Y",
     "downloads.fabrikam.com"),
    ("http://203.0.113.9:8080/a", "http://203.0.113.9:8080/a", "203.0.113.9"),
    ("http://[2001:DB8::BAD]:8080/x", "http://[2001:db8::bad]:8080/x", "2001:db8::bad"),
    ("https://user@Contoso.com/", "https://user@contoso.com/", "contoso.com"),
    ("c2.fabrikam.net/beacon", "c2.fabrikam.net/beacon", "c2.fabrikam.net"),
    ("https://xn--bcher-kva.example/", "https://xn--bcher-kva.example/", "bücher.example"),
    ("beacon", None, None),
    ("https://exa mple.com/", None, None),
    ("https://contoso.com:port/", None, None),
    ("", None, None),
])
def test_canonical_url_and_host(raw: str, url: str | None, host: str | None) -> None:
    assert canonical_url(raw) == url
    assert url_host(raw) == host


@pytest.mark.parametrize(("raw", "expected"), [
    ("  CONTOSO\\Jordan.Finance ", "contoso\\jordan.finance"),
    ("Avery.Admin@Contoso.com", "avery.admin@contoso.com"),
    ("", None),
    ("   ", None),
])
def test_canonical_username(raw: str, expected: str | None) -> None:
    assert canonical_username(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("7B1C2D3E-4F50-4617-8293-A4B5C6D7E8F9", "7b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"),
    ("{A1B2C3D4-E5F6-4789-90AB-CDEF01234567}", "a1b2c3d4-e5f6-4789-90ab-cdef01234567"),
    ("s-1-5-18", "S-1-5-18"),
    ("S-1-5-21-1004336348-1177238915-682003330-1105", "S-1-5-21-1004336348-1177238915-682003330-1105"),
    ("73E7E2DE709DFF64EF64B1D0C30E67FAB63279DB", "73e7e2de709dff64ef64b1d0c30e67fab63279db"),
    ("not-a-device-id", None),
    ("11161", None),
    ("", None),
])
def test_canonical_actor_id(raw: str, expected: str | None) -> None:
    assert canonical_actor_id(raw) == expected


def test_canonical_forms_give_search_the_columns_a_term_can_live_in() -> None:
    assert canonical_forms("2001:DB8::1") == {"p_any_ip_addresses": "2001:db8::1"}
    assert canonical_forms("Avery.Admin@Contoso.com") == {
        "p_any_emails": "avery.admin@contoso.com", "p_any_usernames": "avery.admin@contoso.com"}
    assert canonical_forms("AB" * 32) == {"p_any_sha256_hashes": "ab" * 32}
    assert canonical_forms("https://Contoso.com/x") == {
        "p_any_urls": "https://contoso.com/x", "p_any_usernames": "https://contoso.com/x"}
    assert canonical_forms("Fabrikam.COM.") == {
        "p_any_domain_names": "fabrikam.com", "p_any_usernames": "fabrikam.com."}
    assert canonical_forms("S-1-5-18") == {"p_any_actor_ids": "S-1-5-18"}
    assert canonical_forms("73E7E2DE709DFF64EF64B1D0C30E67FAB63279DB") == {
        "p_any_sha1_hashes": "73e7e2de709dff64ef64b1d0c30e67fab63279db",
        "p_any_actor_ids": "73e7e2de709dff64ef64b1d0c30e67fab63279db"}


def test_indicator_lists_drop_empties_duplicates_and_invalid_values_and_sort() -> None:
    row = normalize(minimal_alert(evidence=[
        {"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": "2001:DB8::1"},
        {"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": "2001:0db8:0:0::1"},
        {"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": ""},
        {"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": "999.1.1.1"},
        {"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": "198.51.100.1"},
        {"@odata.type": "#microsoft.graph.security.urlEvidence", "url": "https://203.0.113.8/x"},
        {"@odata.type": "#microsoft.graph.security.urlEvidence", "url": "https://Contoso.com./login"},
    ]))
    assert row["p_any_ip_addresses"] == ["198.51.100.1", "2001:db8::1", "203.0.113.8"]
    assert row["p_any_domain_names"] == ["contoso.com"]
    assert row["p_any_urls"] == ["https://203.0.113.8/x", "https://contoso.com/login"]
    assert row["p_any_emails"] is None


def test_os_names_versions_and_netbios_domains_never_become_domains() -> None:
    row = normalize(minimal_alert(evidence=[{
        "@odata.type": "#microsoft.graph.security.deviceEvidence",
        "deviceDnsName": "ws-1.corp.contoso.com",
        "osPlatform": "Windows11", "version": "22H2", "ntDomain": "AzureAD",
        "loggedOnUsers": [{"accountName": "avery", "domainName": "AzureAD"}],
    }, {
        "@odata.type": "#microsoft.graph.security.userEvidence",
        "userAccount": {"accountName": "casey", "domainName": "NT AUTHORITY"},
    }]))
    assert row["p_any_domain_names"] == ["ws-1.corp.contoso.com"]
    assert row["p_any_usernames"] == ["avery", "azuread\\avery", "casey", "nt authority\\casey"]


def test_canonicalisation_stays_right_when_the_cache_is_cleared() -> None:
    rows = []
    for alert in load_golden_inputs("endpoint"):
        core.canonical.cache_clear()
        rows.append(normalize(alert))
    warm = [normalize(alert) for alert in load_golden_inputs("endpoint")]
    assert [render(row) for row in rows] == [render(row) for row in warm]


# --- Unknown evidence, unknown providers, unmapped properties -----------------------------------------------


def test_unknown_evidence_type_is_kept_verbatim_and_scanned_by_key_name() -> None:
    unknown = {
        "@odata.type": "#microsoft.graph.security.futureThingEvidence",
        "verdict": "malicious",
        "osPlatform": "Windows11",
        "target": {"fqdn": "Target.Fabrikam.com", "lastSeenIpAddress": "203.0.113.31", "membership": "gold"},
        "ownerUpn": "Owner@Fabrikam.com",
        "artifacts": [
            {"sha1": "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709"},
            {"url": "https://fabrikam.com/a"},
        ],
        "inner": {"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": "2001:db8::31"},
        "owner": {
            "accountName": "svc", "domainName": "FABRIKAM", "aadUserId": "0C7A3E55-8F1B-4C2D-9E6F-1A2B3C4D5E6F",
        },
    }
    row = normalize(minimal_alert(evidence=[unknown]))
    assert orjson.loads(row["evidence"]) == [unknown]
    assert row["p_any_ip_addresses"] == ["2001:db8::31", "203.0.113.31"]
    assert row["p_any_domain_names"] == ["fabrikam.com", "target.fabrikam.com"]
    assert row["p_any_usernames"] == ["fabrikam\\svc", "owner@fabrikam.com", "svc"]
    assert row["p_any_emails"] == ["owner@fabrikam.com"]
    assert row["p_any_sha1_hashes"] == ["da39a3ee5e6b4b0d3255bfef95601890afd80709"]
    assert row["p_any_urls"] == ["https://fabrikam.com/a"]
    assert row["p_any_actor_ids"] == ["0c7a3e55-8f1b-4c2d-9e6f-1a2b3c4d5e6f"]


def test_an_odata_type_that_is_not_a_string_is_an_unknown_type_not_a_lost_alert() -> None:
    odd = [
        {"@odata.type": ["#microsoft.graph.security.ipEvidence"], "ipAddress": "192.0.2.10"},
        {"@odata.type": "#microsoft.graph.security.networkConnectionEvidence",
         "sourceAddress": {"@odata.type": {"name": "ipEvidence"}, "ipAddress": "192.0.2.11"}},
        {"@odata.type": 7, "wrapped": {"@odata.type": None, "url": "https://fabrikam.com/x"}},
    ]
    row = normalize(minimal_alert(evidence=odd))
    assert orjson.loads(row["evidence"]) == odd
    assert row["p_any_ip_addresses"] == ["192.0.2.10", "192.0.2.11"]
    assert row["p_any_urls"] == ["https://fabrikam.com/x"]


@pytest.mark.parametrize("service_source", ["unknownFutureValue", "microsoftThreatIntelligence", "", None, 7])
def test_unknown_providers_fall_back_to_the_core(service_source: object) -> None:
    assert provider_for(service_source).name == "core"
    row = normalize(minimal_alert(serviceSource=service_source, customDetails={"RemoteIP": ["192.0.2.9"]}))
    assert row["p_any_ip_addresses"] == ["192.0.2.9"]  # The core reads free-form details by key name.


def test_known_providers_route_to_their_entry() -> None:
    assert provider_for("microsoftDefenderForEndpoint").name == "endpoint"
    assert provider_for("microsoftAppGovernance").name == "cloud_apps"
    assert provider_for("azureAdIdentityProtection").name == "entra_id_protection"
    assert provider_for("microsoftSentinel").name == "sentinel"


def test_unmapped_properties_and_unreadable_timestamps_are_kept() -> None:
    row = normalize(minimal_alert(newGraphProperty={"a": 1}, resolvedDateTime="soon"))
    assert orjson.loads(row["p_unmapped"]) == {"newGraphProperty": {"a": 1}, "resolvedDateTime": "soon"}
    assert row["resolvedDateTime"] is None
    assert normalize(minimal_alert())["p_unmapped"] is None


def test_values_of_unexpected_types_become_strings_not_errors() -> None:
    row = normalize(minimal_alert(incidentId=28282, mitreTechniques="T1110", systemTags=[None, "x", 3]))
    assert row["incidentId"] == "28282"
    assert row["mitreTechniques"] == ["T1110"]
    assert row["systemTags"] == ["x", "3"]


@pytest.mark.parametrize("bad", [
    None,
    "an alert",
    [minimal_alert()],
    {},
    {"id": "", "createdDateTime": "2026-06-01T00:00:00Z"},
    {"id": 12, "createdDateTime": "2026-06-01T00:00:00Z"},
    {"id": "da1"},
    {"id": "da1", "createdDateTime": "", "lastUpdateDateTime": None},
    {"@odata.type": "#microsoft.graph.security.incident", "id": "1",
     "createdDateTime": "2026-06-01T00:00:00Z"},
])
def test_input_that_is_not_an_alert_raises_not_an_alert(bad: object) -> None:
    with pytest.raises(NotAnAlert):
        normalize(bad)
    assert issubclass(NotAnAlert, ValueError)


# --- p_ fields -----------------------------------------------------------------------------------------------


def test_p_fields() -> None:
    row = normalize(minimal_alert())
    assert row["p_log_type"] == LOG_TYPE == "MicrosoftGraph.SecurityAlertV2"
    assert row["p_schema_version"] == SCHEMA_VERSION == 2
    assert row["p_event_time"] == datetime(2026, 6, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert row["p_parse_time"] == PARSE_TIME
    assert (row["p_source_id"], row["p_source_label"]) == (SOURCE["source_id"], SOURCE["source_label"])
    assert TABLE == "security_alerts"


@pytest.mark.parametrize("created", [None, "", "27/06/2026", 20260601])
def test_event_time_is_a_function_of_the_alert_never_of_the_parse_time(created: object, tmp_path: Path) -> None:
    # A redelivery parsed on another day must land in the same day partition, where the views deduplicate it.
    alert = minimal_alert(createdDateTime=created, firstActivityDateTime="2026-06-01T09:58:00Z")
    later = PARSE_TIME + timedelta(days=2)
    first, redelivered = (normalize_alert(alert, parse_time=when, **SOURCE) for when in (PARSE_TIME, later))
    assert first["p_event_time"] == redelivered["p_event_time"] == datetime(2026, 6, 1, 9, 58, tzinfo=UTC)
    files = [normalize_events([InboundEvent(orjson.dumps(alert))], lake=LocalStore(tmp_path / f"lake{number}"),
                              state=LocalStore(tmp_path / "state"), parse_time=when).files
             for number, when in enumerate((PARSE_TIME, later))]
    assert files[0] == files[1] and files[0][0].startswith("security_alerts/year=2026/month=06/day=01/")


def test_event_time_falls_back_through_the_alerts_own_timestamps() -> None:
    no_created = minimal_alert(createdDateTime=None)
    assert normalize(no_created)["p_event_time"] == datetime(2026, 6, 1, 10, 5, 0, 120000, tzinfo=UTC)
    naive = normalize_alert(no_created, parse_time=datetime(2026, 7, 1), **SOURCE)
    assert naive["p_parse_time"] == PARSE_TIME and naive["p_parse_time"].tzinfo is not None


def test_an_alert_without_a_readable_timestamp_is_quarantined_with_its_reason(tmp_path: Path) -> None:
    alert = minimal_alert(createdDateTime="soon", lastUpdateDateTime="27/06/2026")
    with pytest.raises(NotAnAlert, match="no readable timestamp"):
        normalize(alert)
    state = LocalStore(tmp_path / "state")
    result = normalize_events([InboundEvent(orjson.dumps(alert))], lake=LocalStore(tmp_path / "lake"), state=state,
                              parse_time=PARSE_TIME)
    assert result.rows == 0 and len(result.quarantined) == 1
    error = orjson.loads(state.read(result.quarantined[0]).data)["error"]
    assert error == ("NotAnAlert: alert da000000000000000001_1 has no readable timestamp: "
                     "createdDateTime 'soon', lastUpdateDateTime '27/06/2026'")


def test_row_id_is_deterministic_and_changes_with_the_version() -> None:
    first = normalize(minimal_alert())["p_row_id"]
    assert len(first) == 32 and int(first, 16) >= 0
    later_parse = normalize_alert(minimal_alert(), parse_time=PARSE_TIME + timedelta(days=3),
                                  source_id="other", source_label="other")
    assert later_parse["p_row_id"] == first
    assert normalize(minimal_alert(status="resolved", title="changed"))["p_row_id"] == first
    assert normalize(minimal_alert(lastUpdateDateTime="2026-06-01T10:05:00.13Z"))["p_row_id"] != first
    # The raw string, not the instant: Graph re-sending a version prints it the same way.
    assert normalize(minimal_alert(lastUpdateDateTime="2026-06-01T10:05:00.1200000Z"))["p_row_id"] != first
    assert normalize(minimal_alert(tenantId="00000000-0000-4000-8000-000000000000"))["p_row_id"] != first
    assert normalize(minimal_alert(id="da000000000000000001_2"))["p_row_id"] != first


def test_row_id_is_the_same_in_another_process() -> None:
    code = (
        "from datetime import datetime, timezone; import normalizers, sys, json;"
        "alert = json.loads(sys.argv[1]);"
        "print(normalizers.normalize_alert(alert, source_id='s', source_label='s',"
        " parse_time=datetime.now(timezone.utc))['p_row_id'])"
    )
    alert = minimal_alert()
    other = subprocess.run([sys.executable, "-c", code, orjson.dumps(alert).decode()], capture_output=True,
                           text=True, check=True, cwd=Path(__file__).resolve().parents[2],
                           env={"PYTHONHASHSEED": "12345", "PATH": ""})
    assert other.stdout.strip() == normalize(alert)["p_row_id"]


@pytest.mark.parametrize(("raw", "expected"), [
    ("2026-04-27T12:19:27.7211305Z", datetime(2026, 4, 27, 12, 19, 27, 721130, tzinfo=UTC)),
    ("2026-04-27T12:19:27.72Z", datetime(2026, 4, 27, 12, 19, 27, 720000, tzinfo=UTC)),
    ("2026-04-27T12:19:27Z", datetime(2026, 4, 27, 12, 19, 27, tzinfo=UTC)),
    ("2026-04-27T12:19:27.123456789Z", datetime(2026, 4, 27, 12, 19, 27, 123456, tzinfo=UTC)),
    ("2026-04-27T14:19:27.5+02:00", datetime(2026, 4, 27, 12, 19, 27, 500000, tzinfo=UTC)),
    ("2026-04-27 12:19:27", datetime(2026, 4, 27, 12, 19, 27, tzinfo=UTC)),
    ("27/04/2026", None),
    ("", None),
])
def test_timestamps_are_parsed_leniently_to_utc(raw: str, expected: datetime | None) -> None:
    row = normalize(minimal_alert(firstActivityDateTime=raw))
    assert row["firstActivityDateTime"] == expected
    if expected is not None:
        assert row["firstActivityDateTime"].utcoffset() == timedelta(0)


# --- Nested evidence, lists, JSON columns ----------------------------------------------------------------


def test_nested_evidence_of_its_expected_type_and_lists_of_values_are_read() -> None:
    row = normalize(minimal_alert(evidence=[
        {"@odata.type": "#microsoft.graph.security.networkConnectionEvidence",
         "sourceAddress": {"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": "192.0.2.7"},
         "destinationAddress": {"ipAddress": "2001:DB8::7"}},
        {"@odata.type": "microsoft.graph.security.deviceEvidence", "ipInterfaces": ["198.51.100.7", "fe80::1"],
         "loggedOnUsers": [{"accountName": "Avery", "domainName": "CONTOSO"}]},
    ]))
    assert row["p_any_ip_addresses"] == ["192.0.2.7", "198.51.100.7", "2001:db8::7"]
    assert row["p_any_usernames"] == ["avery", "contoso\\avery"]


_LOCAL_ADDRESSES = ["127.0.0.1", "127.8.9.10", "::1", "0:0:0:0:0:0:0:1", "[::1]", "169.254.169.254", "fe80::1",
                    "FEBF::a:1", "fe80::1%eth0", "0.0.0.0", "::", "::ffff:127.0.0.1", "::ffff:169.254.0.1"]


@pytest.mark.parametrize("local", _LOCAL_ADDRESSES)
def test_loopback_link_local_and_unspecified_addresses_stay_in_evidence_but_are_no_indicator(local: str) -> None:
    # Every device has these: as indicators they would tie each alert to every other one.
    evidence = [
        {"@odata.type": _IP, "ipAddress": local},
        {"@odata.type": "#microsoft.graph.security.deviceEvidence", "ipInterfaces": [local, "198.51.100.8"],
         "hostName": local},
        {"@odata.type": "#microsoft.graph.security.urlEvidence", "url": f"http://[{local.strip('[]')}]:8080/x"
         if ":" in local else f"http://{local}:8080/x"},
    ]
    row = normalize(minimal_alert(evidence=evidence))
    assert orjson.loads(row["evidence"]) == evidence
    assert row["p_any_ip_addresses"] == ["198.51.100.8"]
    assert row["p_any_urls"] is not None and len(row["p_any_urls"]) == 1


_IP = "#microsoft.graph.security.ipEvidence"


@pytest.mark.parametrize(("evidence", "indicators"), [
    ([{"@odata.type": _IP, "ipAddress": 7}], {}),
    ([{"@odata.type": "#microsoft.graph.security.userEvidence", "userAccount": "casey"}], {}),
    # The nested object's own type wins over the one the table expects there.
    ([{"@odata.type": "#microsoft.graph.security.networkConnectionEvidence",
       "sourceAddress": {"@odata.type": "#microsoft.graph.security.deviceEvidence", "hostName": "ws-9"}}],
     {"p_any_domain_names": ["ws-9"]}),
    ([{"@odata.type": "#microsoft.graph.security.activeDirectoryDomainEvidence",
       "trustedDomains": [{"activeDirectoryDomainName": "fabrikam.com",
                           "trustedDomains": [{"activeDirectoryDomainName": "tailspin.com"}]}]}],
     {"p_any_domain_names": ["fabrikam.com", "tailspin.com"]}),
    ({"@odata.type": _IP, "ipAddress": "192.0.2.1"}, {}),  # Not a list: kept, not read.
], ids=["number for text", "text for object", "nested evidence of another type", "evidence nesting its own type",
        "evidence not a list"])
def test_evidence_of_odd_shapes_gives_a_row_with_what_it_can(evidence: object, indicators: dict) -> None:
    row = normalize(minimal_alert(evidence=evidence))
    assert orjson.loads(row["evidence"]) == evidence
    assert {column: row[column] for column in INDICATOR_COLUMNS if row[column] is not None} == indicators


def test_json_columns_keep_integers_beyond_64_bits_and_details_are_read_by_key_name() -> None:
    row = normalize(minimal_alert(serviceSource="microsoftSentinel", customDetails={"RemoteIP": ["192.0.2.9"]},
                                  evidence=[{"@odata.type": "#microsoft.graph.security.ipEvidence",
                                             "ipAddress": "192.0.2.1", "riskScore": 2 ** 70}]))
    assert row["evidence"] == ('[{"@odata.type":"#microsoft.graph.security.ipEvidence","ipAddress":"192.0.2.1",'
                               f'"riskScore":{2 ** 70}}}]')
    assert row["customDetails"] == '{"RemoteIP":["192.0.2.9"]}'
    assert row["p_any_ip_addresses"] == ["192.0.2.1", "192.0.2.9"]


# --- Arrow table and parquet ------------------------------------------------------------------------------


def all_golden_rows() -> list[dict]:
    return [normalize(alert) for name in GOLDEN_NAMES for alert in load_golden_inputs(name)]


def test_rows_convert_to_the_schema_and_round_trip_through_parquet() -> None:
    rows = all_golden_rows()
    table = rows_to_table(rows)
    assert table.schema.equals(SCHEMA)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    read_back = pq.read_table(io.BytesIO(buffer.getvalue()))
    assert read_back.schema.equals(SCHEMA)
    assert [render(row) for row in read_back.to_pylist()] == [render(row) for row in rows]


def test_recommended_parquet_options_write_a_readable_file() -> None:
    buffer = io.BytesIO()
    pq.write_table(rows_to_table(all_golden_rows()), buffer, **normalizers.schema.PARQUET_WRITE_OPTIONS)
    metadata = pq.ParquetFile(io.BytesIO(buffer.getvalue())).metadata
    assert metadata.row_group(0).column(0).compression == "ZSTD"


def test_empty_batch_gives_an_empty_table_with_the_schema() -> None:
    assert rows_to_table([]).schema.equals(SCHEMA)


# --- Cold start ---------------------------------------------------------------------------------------------


def test_import_pulls_in_no_graph_sdk_azure_or_pandas() -> None:
    code = (
        "import sys, normalizers;"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'msgraph', 'azure', 'kiota_abstractions',"
        " 'pandas', 'pydantic', 'requests', 'httpx'});"
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.stdout.strip() == "", f"import normalizers imported {result.stdout.strip()}"


def regenerate_golden() -> None:
    for name in GOLDEN_NAMES:
        lines = [orjson.dumps(render(normalize(alert))) for alert in load_golden_inputs(name)]
        (GOLDEN / f"{name}.expected.jsonl").write_bytes(b"\n".join(lines) + b"\n")
        print(f"wrote {name}.expected.jsonl ({len(lines)} rows)")


if __name__ == "__main__":
    if sys.argv[1:] != ["--regenerate-golden"]:
        sys.exit("usage: python tests/test_normalizers.py --regenerate-golden")
    regenerate_golden()
