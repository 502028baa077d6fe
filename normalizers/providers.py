"""Providers by serviceSource, and the free-form dictionaries of their alerts that hold indicators too.

Most providers keep every indicator in evidence. Where a rule's author names the fields (Sentinel's and Defender
XDR's custom details, "SourceIP", "TargetUPN"...) or the shape is undocumented (additionalData), the dictionary is
read by key name. `name` is the provider's golden files' name (normalizers/golden/<name>.input.json).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Provider:
    name: str
    read_by_key_name: tuple[str, ...] = ()


_DETAILS = ("customDetails", "additionalData")
_ADDITIONAL_DATA = ("additionalData",)

PROVIDERS: dict[str, Provider] = {
    "microsoftDefenderForEndpoint": Provider("endpoint"),
    "microsoftDefenderForIdentity": Provider("identity"),
    "microsoftDefenderForCloudApps": Provider("cloud_apps"),
    "microsoftAppGovernance": Provider("cloud_apps"),  # Reports through Defender for Cloud Apps.
    "microsoftDefenderForOffice365": Provider("office365"),
    "azureAdIdentityProtection": Provider("entra_id_protection"),  # Graph's name for Entra ID Protection.
    "microsoft365Defender": Provider("defender_xdr", _DETAILS),  # Defender XDR: custom detection rules.
    # Sentinel and Defender for Cloud come only with `Prefer: include-unknown-enum-members`.
    "microsoftSentinel": Provider("sentinel", _DETAILS),
    "microsoftDefenderForCloud": Provider("cloud", _ADDITIONAL_DATA),
    # Purview DLP and insider risk; the latter's serviceSource is undocumented, so both names route here.
    "dataLossPrevention": Provider("purview", _ADDITIONAL_DATA),
    "microsoftInsiderRiskManagement": Provider("purview", _ADDITIONAL_DATA),
}

# Unknown providers (a new serviceSource, unknownFutureValue): where they keep indicators is unknown, so every
# free-form dictionary is read by key name.
DEFAULT_PROVIDER = Provider("core", ("additionalData", "customDetails"))


def provider_for(service_source: object) -> Provider:
    return PROVIDERS.get(service_source, DEFAULT_PROVIDER) if type(service_source) is str else DEFAULT_PROVIDER
