"""Microsoft Defender for Identity (pass-the-hash, honeytoken activity, SMB exfiltration, ...).

Indicators sit in evidence: user accounts (with SIDs and AD object GUIDs), source and destination
devices, IPs, hostLogonSession, securityGroup and activeDirectoryDomain evidence.
"""

from normalizers.core import Provider

PROVIDER = Provider(service_sources=("microsoftDefenderForIdentity",))
