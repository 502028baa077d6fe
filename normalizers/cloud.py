"""Microsoft Defender for Cloud (only with `Prefer: include-unknown-enum-members`).

Besides azureResource, ip, process and kubernetes evidence, the plan's extended properties ("Client IP
address", "Compromised host", ...) are expected in additionalData *(inference: shape undocumented)*, so it
is read by key name.
"""

from normalizers.core import Provider

PROVIDER = Provider(service_sources=("microsoftDefenderForCloud",), scanned_by_key_name=("additionalData",))
