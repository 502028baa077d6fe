import pytest

from shared.core.errors import ConfigError
from shared.core.settings import SETTING_NAMES, Settings, load_settings


def test_defaults_hold_without_any_setting_but_the_tenant():
    settings = load_settings({"GRAPH_TENANT_ID": "tenant-a"})
    assert settings.pull_overlap_seconds == 3600
    assert settings.pull_delay_seconds == 0
    assert settings.pull_page_size == 2000
    [source] = settings.sources()
    assert (source.id, source.tenant_id, source.credential) == ("tenant-a", "tenant-a", "managed_identity")


def test_malformed_setting_is_named_in_one_line():
    with pytest.raises(ConfigError) as err:
        load_settings({"PULL_DELAY_SECONDS": "two minutes"})
    message = str(err.value)
    assert "PULL_DELAY_SECONDS" in message and "\n" not in message


def test_page_size_above_graph_maximum_is_rejected():
    with pytest.raises(ConfigError, match="PULL_PAGE_SIZE"):
        load_settings({"PULL_PAGE_SIZE": "5000"})


def test_plain_http_graph_endpoint_only_for_localhost():
    with pytest.raises(ConfigError, match="GRAPH_ENDPOINT"):
        load_settings({"GRAPH_ENDPOINT": "http://graph.example.com"})
    assert load_settings({"GRAPH_ENDPOINT": "http://127.0.0.1:8080/"}).graph_endpoint == "http://127.0.0.1:8080"


def test_missing_tenant_names_the_setting():
    with pytest.raises(ConfigError, match="GRAPH_TENANT_ID"):
        load_settings({}).sources()


def test_many_sources_from_json_with_secret_by_reference():
    settings = load_settings({"GRAPH_SOURCES": '[{"id": "contoso", "label": "Contoso", "tenant_id": "t1"},'
                                               '{"id": "fabrikam", "label": "Fabrikam", "tenant_id": "t2",'
                                               ' "credential": "client_secret", "client_id": "app",'
                                               ' "client_secret_setting": "FABRIKAM_SECRET"}]'})
    contoso, fabrikam = settings.sources()
    assert contoso.credential == "managed_identity"
    assert fabrikam.client_secret_setting == "FABRIKAM_SECRET"


@pytest.mark.parametrize("raw, fragment", [
    ("not json", "GRAPH_SOURCES"),
    ('[{"id": "a b", "label": "x", "tenant_id": "t"}]', "id"),
    ('[{"id": "a", "label": "x", "tenant_id": "t"}, {"id": "a", "label": "y", "tenant_id": "u"}]', "same id"),
])
def test_bad_source_lists_are_explained(raw, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_settings({"GRAPH_SOURCES": raw}).sources()


def test_provider_hub_map_must_be_names():
    assert load_settings({"EVENTHUB_PROVIDER_HUBS": '{"microsoftSentinel": "sentinel"}'}).provider_hubs() == {
        "microsoftSentinel": "sentinel"}
    with pytest.raises(ConfigError, match="EVENTHUB_PROVIDER_HUBS"):
        load_settings({"EVENTHUB_PROVIDER_HUBS": '["x"]'}).provider_hubs()


def test_every_setting_has_a_description():
    missing = [f.alias for f in Settings.model_fields.values() if not f.description]
    assert not missing
    assert len(SETTING_NAMES) == len(set(SETTING_NAMES))


@pytest.mark.parametrize("endpoint", [
    "http://localhost.attacker.example", "http://localhost@evil.example", "http://127.0.0.1.evil.example/",
    "http://[::1]@evil.example", "https://", "ftp://graph.microsoft.com", "graph.microsoft.com",
    "https://user:pass@graph.microsoft.com",
])
def test_graph_endpoint_is_checked_on_the_parsed_url(endpoint):
    # A bearer token must never travel in clear text, nor to a host a string prefix only seems to name.
    with pytest.raises(ConfigError, match="GRAPH_ENDPOINT"):
        load_settings({"GRAPH_ENDPOINT": endpoint})


@pytest.mark.parametrize("endpoint", [
    "https://graph.microsoft.com", "https://graph.microsoft.us/", "http://localhost:8080", "http://[::1]:9000",
    "HTTPS://dod-graph.microsoft.us",
])
def test_graph_endpoints_that_name_their_host(endpoint):
    assert load_settings({"GRAPH_ENDPOINT": endpoint}).graph_endpoint == endpoint.rstrip("/")
