"""The settings contract: every app setting graphlake reads, with its default, in one place.

The README's settings table, `local.settings.json.example` and the Bicep app settings are checked against
`Settings` by tests, so the deployed app and the code cannot drift apart.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Literal
from urllib.parse import urlsplit

import orjson
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.core.blob_url import is_loopback_host
from shared.core.errors import ConfigError

CredentialKind = Literal["managed_identity", "client_secret", "certificate", "default"]


class Source(BaseModel):
    """One tenant to pull from. An MSSP lists many in GRAPH_SOURCES; each keeps its own watermark."""

    id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    label: str
    tenant_id: str
    credential: CredentialKind = "managed_identity"
    client_id: str = ""
    # The secret itself never sits in GRAPH_SOURCES: this names the app setting (a Key Vault reference in
    # Azure) that holds it.
    client_secret_setting: str = ""
    certificate_path: str = ""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", populate_by_name=True)
    # Every variable of the environment the settings were read from, for settings named by another setting (see
    # named_setting); empty when the settings were built directly.
    _environ: dict[str, str] = PrivateAttr(default_factory=dict)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        # Only what load_settings hands over: pydantic-settings would otherwise read the process environment too,
        # so settings built from another environment (the demo's simulator) or from `only` some names would still
        # take, or be refused for, whatever this shell has set.
        return (init_settings,)

    # --- Graph and the sources it is read for ---
    graph_endpoint: str = Field(
        "https://graph.microsoft.com", alias="GRAPH_ENDPOINT",
        description="Graph root. US Gov: https://graph.microsoft.us, DoD: https://dod-graph.microsoft.us.")
    graph_authority_host: str = Field(
        "login.microsoftonline.com", alias="GRAPH_AUTHORITY_HOST",
        description="Entra authority host. US Gov and DoD: login.microsoftonline.us.")
    graph_tenant_id: str = Field(
        "", alias="GRAPH_TENANT_ID", description="Tenant to pull from when GRAPH_SOURCES is empty.")
    graph_credential: CredentialKind = Field(
        "managed_identity", alias="GRAPH_CREDENTIAL",
        description="managed_identity, client_secret, certificate or default (DefaultAzureCredential).")
    graph_client_id: str = Field(
        "", alias="GRAPH_CLIENT_ID",
        description="User-assigned identity's client id, or the app registration's id. Empty: system-assigned.")
    graph_client_secret: str = Field(
        "", alias="GRAPH_CLIENT_SECRET", repr=False,
        description="Only for client_secret: a Key Vault reference, never the secret in plain text.")
    graph_certificate_path: str = Field(
        "", alias="GRAPH_CERTIFICATE_PATH", description="Only for certificate: path to a PEM with the key.")
    source_id: str = Field("", alias="SOURCE_ID", description="Id of the single source. Empty: the tenant id.")
    source_label: str = Field(
        "Microsoft Graph", alias="SOURCE_LABEL", description="Label of the single source, copied to p_source_label.")
    graph_sources: str = Field(
        "", alias="GRAPH_SOURCES",
        description="JSON list of sources (id, label, tenant_id, credential, client_id, client_secret_setting, "
                    "certificate_path) for pulling many tenants. Overrides the single-source settings.")
    graph_max_requests_per_minute: int = Field(
        120, alias="GRAPH_MAX_REQUESTS_PER_MINUTE", gt=0, le=150,
        description="Client-side cap on Graph calls per source; Graph throttles at 150/min per app per tenant.")

    # --- The pull window ---
    pull_schedule: str = Field(
        "*/30 * * * * *", alias="PULL_SCHEDULE",
        description="NCRONTAB schedule of pull_alerts (read by the host): every 30 seconds.")
    pull_overlap_seconds: int = Field(
        3600, alias="PULL_OVERLAP_SECONDS", ge=0,
        description="How far before the watermark each window starts, to catch alerts Graph shows late.")
    pull_delay_seconds: int = Field(
        0, alias="PULL_DELAY_SECONDS", ge=0,
        description="How far behind now each window ends. 0: the overlap and the reconciliation catch what Graph "
                    "shows late.")
    pull_lookback_days: float = Field(
        7.0, alias="PULL_LOOKBACK_DAYS", gt=0, description="How far back the first run of a source reads.")
    pull_slice_minutes: int = Field(
        360, alias="PULL_SLICE_MINUTES", gt=0,
        description="A long window is read in slices of this length; the watermark advances after each.")
    pull_page_size: int = Field(
        2000, alias="PULL_PAGE_SIZE", gt=0, le=2000, description="$top of each Graph call; 2000 is Graph's largest.")
    pull_max_run_seconds: int = Field(
        480, alias="PULL_MAX_RUN_SECONDS", gt=0,
        description="A run starts no new slice after this, so it ends well inside the function timeout.")
    pull_max_lag_seconds: int = Field(
        900, alias="PULL_MAX_LAG_SECONDS", gt=0,
        description="graphlake status (and the lag alert rule) calls a source LAGGING when its watermark is further "
                    "behind now than this.")
    pull_max_clock_skew_seconds: int = Field(
        60, alias="PULL_MAX_CLOCK_SKEW_SECONDS", gt=0,
        description="graphlake status calls a source FAILING when its last pull ran on a clock further ahead of "
                    "Graph's (the Date header of Graph's answers) than this, LAGGING when further behind.")

    # --- Where things are kept ---
    state_url: str = Field(
        "state", alias="STATE_URL",
        description="Watermarks, claim checks and quarantine: a local folder or https://<account>.blob.core."
                    "windows.net/<container>.")
    lake_url: str = Field(
        "lake", alias="LAKE_URL",
        description="The parquet lake: a local folder or https://<account>.blob.core.windows.net/<container>.")

    # --- The normalizer (normalize_alerts) ---
    normalize_max_attempts: int = Field(
        5, alias="NORMALIZE_MAX_ATTEMPTS", gt=0,
        description="Deliveries of a batch that fails for a reason other than a storage outage before its events "
                    "go to quarantine whole and the partition moves on (graphlake replay brings them back).")

    # --- Compaction of the lake (compact_lake) ---
    compact_schedule: str = Field(
        "0 30 3 * * *", alias="COMPACT_SCHEDULE",
        description="NCRONTAB schedule of compact_lake (read by the host): daily at 03:30 UTC.")
    compact_grace_days: int = Field(
        1, alias="COMPACT_GRACE_DAYS", ge=0,
        description="A day partition is compacted once it is more than this many days older than today (UTC), "
                    "so the day still filling up is left alone.")
    compact_target_mb: int = Field(
        128, alias="COMPACT_TARGET_MB", gt=0,
        description="Largest file compaction writes, in MB; a partition that fits stays one file.")
    compact_max_run_seconds: int = Field(
        480, alias="COMPACT_MAX_RUN_SECONDS", gt=0,
        description="A compaction run starts no new partition after this; the next run continues.")

    # --- Reconciliation against Graph (reconcile_alerts, graphlake audit) ---
    reconcile_schedule: str = Field(
        "0 15 * * * *", alias="RECONCILE_SCHEDULE",
        description="NCRONTAB schedule of reconcile_alerts (read by the host): hourly at minute 15.")
    reconcile_lookback_hours: float = Field(
        24.0, alias="RECONCILE_LOOKBACK_HOURS", gt=0,
        description="reconcile_alerts compares the alerts Graph shows updated in this many hours before the pull's "
                    "watermark with the lake.")
    reconcile_max_requests_per_minute: int = Field(
        30, alias="RECONCILE_MAX_REQUESTS_PER_MINUTE", gt=0, le=150,
        description="Graph calls a minute per source for reconcile_alerts and graphlake audit; with the pull's "
                    "GRAPH_MAX_REQUESTS_PER_MINUTE it should stay within Graph's 150.")

    # --- Detections (detections/) ---
    rules_enabled: bool = Field(
        False, alias="RULES_ENABLED",
        description="Evaluate the enabled rules on every new row (normalize_alerts, graphlake normalize and pull) and "
                    "run scheduled rules; off until you have tuned them (graphlake rules backtest).")
    rules_dir: str = Field(
        "", alias="RULES_DIR",
        description="A folder of your own rules (panther-analysis format) loaded on top of the starter pack; a rule "
                    "id in both is yours. Empty: the starter pack alone.")
    rules_schedule: str = Field(
        "0 */5 * * * *", alias="RULES_SCHEDULE",
        description="NCRONTAB schedule of run_scheduled_rules (read by the host): scheduled rules that are due, and "
                    "alerts whose delivery failed before.")
    alert_destinations: str = Field(
        "", alias="ALERT_DESTINATIONS",
        description='JSON list of alert destinations, e.g. [{"type": "teams", "url_setting": "TEAMS_URL"}]; types '
                    "webhook, teams, slack. Empty: matches land in rule_matches, no alert is sent.")
    alert_delivery_budget_seconds: float = Field(
        2.0, alias="ALERT_DELIVERY_BUDGET_SECONDS", ge=0, le=60,
        description="Seconds a normalize batch may spend sending the alerts it queued, all destinations together; "
                    "what is left, and a destination that failed in the last 5 minutes, wait for run_scheduled_rules.")

    # --- Event Hubs ---
    eventhub_namespace: str = Field(
        "", alias="EventHubConnection__fullyQualifiedNamespace",
        description="<namespace>.servicebus.windows.net; shared with the trigger's identity-based connection. "
                    "Empty (CLI only): alerts are normalized in-process into LAKE_URL.")
    eventhub_name: str = Field("graph-alerts", alias="EVENTHUB_NAME", description="Hub that pull_alerts sends to.")
    eventhub_consumer_group: str = Field(
        "normalizer", alias="EVENTHUB_CONSUMER_GROUP", description="Consumer group of normalize_alerts.")
    logs_eventhub_name: str = Field(
        "azure-monitor-logs", alias="LOGS_EVENTHUB_NAME",
        description="Hub Azure Monitor diagnostic settings stream Entra and Activity logs to; normalize_logs reads it.")
    logs_eventhub_consumer_group: str = Field(
        "graphlake-logs", alias="LOGS_EVENTHUB_CONSUMER_GROUP", description="Consumer group of normalize_logs.")
    logs_max_silence_seconds: int = Field(
        3600, alias="LOGS_MAX_SILENCE_SECONDS", gt=0,
        description="graphlake status (and the logs-silent alert rule) calls streamed logs LAGGING when no record "
                    "has landed for longer than this; a deployment that never streamed logs is not judged.")
    eventhub_provider_hubs: str = Field(
        "", alias="EVENTHUB_PROVIDER_HUBS",
        description='Optional JSON map serviceSource -> hub, e.g. {"microsoftSentinel": "sentinel-alerts"}; '
                    "other providers go to EVENTHUB_NAME.")

    # --- Identity for Storage and Event Hubs SDK clients (Graph has its own above) ---
    azure_client_id: str = Field(
        "", alias="AZURE_CLIENT_ID",
        description="Client id of the user-assigned identity the SDK clients use (read by azure-identity).")

    @field_validator("graph_endpoint")
    @classmethod
    def _endpoint_is_url(cls, value: str) -> str:
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            raise ValueError("must be an https URL") from None
        scheme = parts.scheme.lower()
        if scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("must be an https URL with a host name")
        if parts.username is not None:
            raise ValueError("must not carry a user name or password")
        if scheme == "http" and not is_loopback_host(parts.hostname):
            raise ValueError("must be https (plain http only for localhost, 127.0.0.1 or [::1])")
        return value.rstrip("/")

    def sources(self) -> list[Source]:
        if self.graph_sources.strip():
            try:
                raw = orjson.loads(self.graph_sources)
                sources = [Source.model_validate(item) for item in raw]
            except (orjson.JSONDecodeError, ValidationError, TypeError) as exc:
                raise ConfigError(f"GRAPH_SOURCES is not a JSON list of sources: {_first_error(exc)}") from None
            ids = [s.id for s in sources]
            if len(set(ids)) != len(ids):
                raise ConfigError("GRAPH_SOURCES has two sources with the same id")
            return sources
        if not self.graph_tenant_id:
            raise ConfigError("GRAPH_TENANT_ID is not set (or list tenants in GRAPH_SOURCES)")
        return [Source(
            id=self.source_id or self.graph_tenant_id, label=self.source_label, tenant_id=self.graph_tenant_id,
            credential=self.graph_credential, client_id=self.graph_client_id,
            client_secret_setting="GRAPH_CLIENT_SECRET" if self.graph_credential == "client_secret" else "",
            certificate_path=self.graph_certificate_path)]

    def named_setting(self, name: str) -> str:
        """The value of the app setting `name`, named by another setting (GRAPH_SOURCES' client_secret_setting,
        ALERT_DESTINATIONS' url_setting and secret_setting): the operator chooses those names, so they cannot be
        fields. "" when it is not set."""
        for attr, info in type(self).model_fields.items():
            if info.alias == name:
                return str(getattr(self, attr))
        return self._environ.get(name, "")

    def is_set(self, name: str) -> bool:
        """Whether the setting `name` was given, rather than left to its default."""
        return name in self._environ

    def provider_hubs(self) -> dict[str, str]:
        if not self.eventhub_provider_hubs.strip():
            return {}
        try:
            hubs = orjson.loads(self.eventhub_provider_hubs)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"EVENTHUB_PROVIDER_HUBS is not JSON: {exc}") from None
        if not isinstance(hubs, dict) or not all(isinstance(v, str) and v for v in hubs.values()):
            raise ConfigError("EVENTHUB_PROVIDER_HUBS must map serviceSource names to hub names")
        return hubs


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        return f"{where}: {err['msg']}" if where else err["msg"]
    return str(exc).splitlines()[0]


def load_settings(environ: Mapping[str, str] | None = None, *, only: Iterable[str] | None = None) -> Settings:
    """Settings from the environment, or a ConfigError naming the first bad setting. `only`: read just these
    settings, the others keep their defaults (a command that needs a few is not refused for a bad other one)."""
    env = os.environ if environ is None else environ
    _check_ca_bundles(env)
    names = SETTING_NAMES if only is None else tuple(only)
    try:
        settings = Settings.model_validate({k: v for k, v in env.items() if k in names})
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else "settings"
        raise ConfigError(f"setting {name} is invalid: {err['msg']} (got {env.get(name, '')!r:.60})") from None
    settings._environ = dict(env)
    return settings


# Read by Python's ssl module, httpx and requests themselves, not by graphlake; a path that is gone fails deep in
# the first TLS handshake, so it is named here instead.
CA_BUNDLE_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def _check_ca_bundles(env: Mapping[str, str]) -> None:
    for name in CA_BUNDLE_VARIABLES:
        path = env.get(name)
        if path and not os.path.exists(path):
            raise ConfigError(f"{name} names {path}, which does not exist: set it to a CA bundle, or unset it for "
                              "the system's (a simulator's bundle lives only as long as `graphlake simulate` runs)")


class LakeAccess(BaseModel):
    """How `graphlake query` and `search` reach a remote lake whose URL does not name everything: the Azure SDK's
    own variables, not app settings (the Function App's LAKE_URL names its account). Read apart from `Settings`, so
    that a search is not refused for a bad setting it never uses."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    account_name: str = Field("", alias="AZURE_STORAGE_ACCOUNT_NAME",
                              description="The account of an az:// or abfs://<container> lake URL.")
    connection_string: str = Field("", alias="AZURE_STORAGE_CONNECTION_STRING", repr=False,
                                   description="Else the account and key of such a URL.")
    client_id: str = Field("", alias="AZURE_CLIENT_ID",
                           description="The user-assigned identity DefaultAzureCredential uses (azure-identity reads "
                                       "it itself; named in errors).")


def load_lake_access(environ: dict[str, str] | None = None) -> LakeAccess:
    env = os.environ if environ is None else environ
    return LakeAccess.model_validate({f.alias: env[f.alias] for f in LakeAccess.model_fields.values()
                                      if f.alias in env})


SETTING_NAMES: tuple[str, ...] = tuple(f.alias for f in Settings.model_fields.values() if f.alias)
# What the real-time rules are built from (detections.realtime.build_detector).
RULES_SETTINGS: tuple[str, ...] = ("RULES_ENABLED", "RULES_DIR", "ALERT_DESTINATIONS", "ALERT_DELIVERY_BUDGET_SECONDS")

# Settings the Functions host reads, not our code; the Bicep must set them, the code never touches them.
HOST_SETTING_PREFIXES: tuple[str, ...] = (
    "AzureWebJobsStorage", "EventHubConnection__", "APPLICATIONINSIGHTS_", "FUNCTIONS_", "AzureFunctionsJobHost")
