"""Microsoft Entra ID Protection (Graph still calls it azureAdIdentityProtection).

Risk detections such as anonymous IP address, unfamiliar sign-in properties and leaked credentials
carry user and ip evidence, sometimes cloudLogonSession.
"""

from normalizers.core import Provider

PROVIDER = Provider(service_sources=("azureAdIdentityProtection",))
