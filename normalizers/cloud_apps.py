"""Microsoft Defender for Cloud Apps and app governance (which reports through the same product).

Indicators sit in evidence: user, ip, cloudApplication, oauthApplication and cloudLogonSession.
"""

from normalizers.core import Provider

PROVIDER = Provider(service_sources=("microsoftDefenderForCloudApps", "microsoftAppGovernance"))
