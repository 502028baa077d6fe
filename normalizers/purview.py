"""Microsoft Purview Data Loss Prevention and Insider Risk Management.

additionalData is read by key name: its shape is undocumented, and policy-match details (recipients,
devices, file hashes) are expected there under names that vary by workload *(inference)*. Insider risk
alerts report detectionSource microsoftInsiderRiskManagement; their serviceSource is not documented
*(unsure)*, so both names route here.
"""

from normalizers.core import Provider

PROVIDER = Provider(
    service_sources=("dataLossPrevention", "microsoftInsiderRiskManagement"),
    scanned_by_key_name=("additionalData",),
)
