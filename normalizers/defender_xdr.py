"""Microsoft Defender XDR (Graph: microsoft365Defender): correlation alerts and custom detection rules.

Custom detection rules may set custom details with names the rule author chose, so customDetails is read
by key name besides the evidence; additionalData too, as its shape is undocumented.
"""

from normalizers.core import Provider

PROVIDER = Provider(
    service_sources=("microsoft365Defender",),
    scanned_by_key_name=("customDetails", "additionalData"),
)
