"""The settings contract: the Bicep app settings and local.settings.json.example carry every setting of
shared/core/settings.py with its default, and nothing else but host settings; host connections are identity-based; the
parameters file names only parameters of main.bicep, and main.bicep hands each module its parameters unchanged."""

from __future__ import annotations

import json
import re

from shared.core.settings import HOST_SETTING_PREFIXES, SETTING_NAMES, Settings
from tests.infra.facts import (LOCAL_SETTINGS_EXAMPLE, app_settings, attr, bicep_facts, bicep_text, denotes,
                               main_param, parameter_file_values, resolve, same_as_default, var_file)


# App settings the Bicep computes from resources, so their value differs from the code's local default.
DERIVED_SETTINGS = {"STATE_URL", "LAKE_URL", "EventHubConnection__fullyQualifiedNamespace", "AZURE_CLIENT_ID",
                    "GRAPH_CLIENT_ID", "GRAPH_TENANT_ID", "GRAPH_AUTHORITY_HOST"}
# Not on Flex Consumption (runtime lives in functionAppConfig; no content share; deployment is blob-based), and no
# secrets: host storage goes through the identity, not a connection string.
FORBIDDEN_SETTINGS = {"FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_RUN_FROM_PACKAGE",
                      "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING", "WEBSITE_CONTENTSHARE", "WEBSITE_CONTENTOVERVNET",
                      "SCM_DO_BUILD_DURING_DEPLOYMENT", "ENABLE_ORYX_BUILD", "AzureWebJobsStorage",
                      "APPINSIGHTS_INSTRUMENTATIONKEY", "WEBSITE_TIME_ZONE", "TZ"}


def test_bicep_sets_every_setting_with_its_default() -> None:
    settings = app_settings()
    missing = [name for name in SETTING_NAMES if name not in settings]
    assert not missing, f"app settings missing from appSettings ({var_file('appSettings')}): {missing}"

    wrong = []
    for name in SETTING_NAMES:
        default = Settings.model_fields[attr(name)].default
        values = resolve(name, settings[name])
        if not values and name not in DERIVED_SETTINGS:
            wrong.append(f"{name} = {settings[name]['text']}: computed, but the code's default is {default!r}; "
                         "use that (or a parameter defaulting to it)")
        for where, value in values:
            if not same_as_default(name, value):
                wrong.append(f"{name} = {value!r} ({where}), but shared/core/settings.py defaults to {default!r}")
    assert not wrong, "\n".join(wrong)


def test_bicep_sets_nothing_but_known_settings() -> None:
    unknown = [name for name in app_settings()
               if name not in SETTING_NAMES and not name.startswith(HOST_SETTING_PREFIXES)]
    assert not unknown, f"{var_file('appSettings')} sets app settings the code does not read: {unknown}"
    forbidden = sorted(set(app_settings()) & FORBIDDEN_SETTINGS)
    assert not forbidden, f"settings that must not be set on Flex Consumption / with identity connections: {forbidden}"


def test_identity_based_host_connections() -> None:
    s = app_settings()
    literal = {name: node.get("value") for name, node in s.items() if node["kind"] == "string"}
    for prefix in ("AzureWebJobsStorage", "EventHubConnection"):
        assert literal.get(f"{prefix}__credential") == "managedidentity", f"{prefix}__credential"
        assert "identity.properties.clientId" in s[f"{prefix}__clientId"]["text"], f"{prefix}__clientId"
    assert "AzureWebJobsStorage__accountName" in s
    for name in ("AZURE_CLIENT_ID", "GRAPH_CLIENT_ID"):
        assert "identity.properties.clientId" in s[name]["text"], f"{name} must be the identity's client id"
    assert "APPLICATIONINSIGHTS_CONNECTION_STRING" in s
    auth = s["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]["text"]
    assert "ClientId=${identity.properties.clientId}" in auth and "Authorization=AAD" in auth
    assert "stateContainer" in s["STATE_URL"]["text"] and "lakeContainer" in s["LAKE_URL"]["text"]
    # ... and those symbols, in the file of the settings, are the identity and the containers this deployment creates.
    for symbol in ("identity", "stateContainer", "lakeContainer"):
        target = denotes(var_file("appSettings"), symbol)
        assert target and target["symbol"] == symbol, f"{var_file('appSettings')}: {symbol} is not the deployment's"
    # The settings object is what the site actually gets (plus operator overrides, merged last), as the
    # `appsettings` config child: a for-expression over these runtime values cannot compile (BCP178).
    configs = [r for r in bicep_facts()["resources"] if r["type"].startswith("Microsoft.Web/sites/config@")]
    assert [(r["body"]["value"]["name"]["value"], r["body"]["value"]["properties"]["text"]) for r in configs] == \
        [("appsettings", "union(appSettings, appSettingOverrides)")], configs
    assert not re.search(r"^\s*appSettings:", bicep_text(), re.M), "app settings belong in the appsettings child"


def test_container_and_hub_defaults() -> None:
    params = bicep_facts()["params"]
    expected = {"lakeContainerName": "lake", "stateContainerName": "graphlake-state",
                "eventHubName": "graph-alerts", "eventHubConsumerGroupName": "normalizer", "eventHubSku": "Standard",
                "logsEventHubName": "azure-monitor-logs", "logsEventHubConsumerGroupName": "graphlake-logs",
                "pythonVersion": "3.11", "graphEndpoint": "https://graph.microsoft.com"}
    for name, value in expected.items():
        assert params[name]["default"]["value"] == value, f"param {name}"
        if name in parameter_file_values():
            assert parameter_file_values()[name] == value, f"main.parameters.json {name}"
    # The sign-in host is the cloud's own (the code's default, login.microsoftonline.com, in the global cloud),
    # and no parameter file pins it to one cloud.
    assert params["graphAuthorityHost"]["default"]["text"] == \
        "split(environment().authentication.loginEndpoint, '/')[2]"
    assert "graphAuthorityHost" not in parameter_file_values()
    for name in ("instanceMemoryMB", "maximumInstanceCount", "eventHubPartitionCount", "deploymentContainerName"):
        assert name in params, f"main.bicep needs the parameter {name}"


def test_parameter_file_names_only_bicep_parameters() -> None:
    unknown = set(parameter_file_values()) - set(bicep_facts()["params"])
    assert not unknown, f"main.parameters.json sets parameters main.bicep does not declare: {sorted(unknown)}"
    # A module's parameter named like one of main.bicep's receives that one, unchanged: what these tests read off
    # main.bicep's parameters (defaults, limits, the parameters file) is what the modules use.
    # A default there (for checkov, which reads each file on its own) is main.bicep's.
    main = bicep_facts()["params"]
    for file, params in bicep_facts()["module_params"].items():
        for name in set(params) & set(main):
            assert main_param(file, name) == name, f"{file}: param {name} must be given main.bicep's {name}"
            assert params[name]["default"] in (None, main[name]["default"]), f"{file}: param {name}'s default"


def test_local_settings_example() -> None:
    doc = json.loads(LOCAL_SETTINGS_EXAMPLE.read_text())
    assert doc.get("IsEncrypted") is False and isinstance(doc.get("Values"), dict)
    values = doc["Values"]
    assert values.get("AzureWebJobsStorage") == "UseDevelopmentStorage=true"
    assert values.get("FUNCTIONS_WORKER_RUNTIME") == "python"
    missing = [name for name in SETTING_NAMES if name not in values]
    assert not missing, f"local.settings.json.example lacks {missing}"
    wrong = [f"{name}={values[name]!r}" for name in SETTING_NAMES if not same_as_default(name, values[name])]
    assert not wrong, f"local.settings.json.example differs from shared/core/settings.py defaults: {wrong}"
    assert all(isinstance(v, str) for v in values.values()), "local.settings.json values are strings"
    unknown = [name for name in values if name not in SETTING_NAMES and not name.startswith(HOST_SETTING_PREFIXES)]
    assert not unknown, f"local.settings.json.example has settings the code does not read: {unknown}"
