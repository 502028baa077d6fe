"""Microsoft Sentinel (only with `Prefer: include-unknown-enum-members`; otherwise unknownFutureValue).

Analytics rules choose their own custom-detail names ("SourceIP", "TargetUPN", ...), so customDetails is
read by key name; additionalData is too, as its shape is undocumented. Evidence is often empty.
"""

from normalizers.core import Provider

PROVIDER = Provider(
    service_sources=("microsoftSentinel",),
    scanned_by_key_name=("customDetails", "additionalData"),
)
