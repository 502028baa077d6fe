"""Microsoft Defender for Endpoint.

Its indicators all sit in evidence (device, file, process, registry, ip, url, networkConnection), which
evidence.py reads; additionalData and customDetails come back empty in published payloads.
"""

from normalizers.core import Provider

PROVIDER = Provider(service_sources=("microsoftDefenderForEndpoint",))
