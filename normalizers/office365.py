"""Microsoft Defender for Office 365.

Indicators sit in evidence: mailbox, analyzedMessage (sender IP, P1/P2 senders, URLs), mailCluster,
submissionMail, teamsMessage, url and file evidence.
"""

from normalizers.core import Provider

PROVIDER = Provider(service_sources=("microsoftDefenderForOffice365",))
