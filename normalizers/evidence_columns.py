"""The typed columns of the `security_alert_evidence` view: one row per evidence item of every alert version.

`EVIDENCE_COLUMNS` is the table to edit: column name -> where its value sits in an evidence item, as a list of
(evidence types, JSON path) tried in order, the first non-null value winning. `ANY` means every evidence type:
a property that means the same thing wherever it appears (an `ipAddress` is an IP address in ipEvidence and in
a nested address alike). Adding an evidence type's field is one entry here; the view SQL is generated from it.

Values are as Graph sent them (not canonicalised, unlike the p_any lists), so the evidence row shows what the
product reported; search canonical values through `graphlake search` and join on `p_row_id`. Evidence of a type
named nowhere here still gets its row, with `evidence_type`, the common fields and the whole item in `evidence`.
"""

from __future__ import annotations

ANY: tuple[str, ...] = ()
_FILE = ("fileEvidence",)
_PROCESS = ("processEvidence",)
_MESSAGE = ("analyzedMessageEvidence",)
_DEVICE = ("deviceEvidence",)
_APP = ("cloudApplicationEvidence", "oauthApplicationEvidence", "servicePrincipalEvidence")

EVIDENCE_COLUMNS: dict[str, list[tuple[tuple[str, ...], str]]] = {
    "ip": [(ANY, "$.ipAddress"), (ANY, "$.senderIp"), (ANY, "$.podIp.ipAddress"),
           (("deviceEvidence",), "$.lastIpAddress")],
    "country": [(ANY, "$.countryLetterCode"), (ANY, "$.location.countryCode")],
    "account_name": [(ANY, "$.userAccount.accountName"), (("hostLogonSessionEvidence", "cloudLogonSessionEvidence"),
                                                          "$.account.userAccount.accountName")],
    "domain": [(ANY, "$.userAccount.domainName"), (("deviceEvidence",), "$.dnsDomain"),
               (("dnsEvidence",), "$.domainName"), (("activeDirectoryDomainEvidence",), "$.activeDirectoryDomainName")],
    "upn": [(ANY, "$.userAccount.userPrincipalName"), (ANY, "$.upn")],
    "sid": [(ANY, "$.userAccount.userSid"), (("securityGroupEvidence",), "$.sid")],
    "entra_user_id": [(ANY, "$.userAccount.azureAdUserId")],
    "device_dns_name": [(ANY, "$.deviceDnsName"), (("hostLogonSessionEvidence",), "$.host.deviceDnsName")],
    "mde_device_id": [(ANY, "$.mdeDeviceId"), (("hostLogonSessionEvidence",), "$.host.mdeDeviceId")],
    "file_name": [(_FILE, "$.fileDetails.fileName"), (_PROCESS, "$.imageFile.fileName")],
    # The process that started the one in evidence: Word starting PowerShell is what an analyst pivots on.
    "parent_file_name": [(_PROCESS, "$.parentProcessImageFile.fileName")],
    "file_path": [(_FILE, "$.fileDetails.filePath"), (_PROCESS, "$.imageFile.filePath")],
    "sha1": [(_FILE, "$.fileDetails.sha1"), (_PROCESS, "$.imageFile.sha1")],
    "sha256": [(_FILE, "$.fileDetails.sha256"), (_PROCESS, "$.imageFile.sha256")],
    "md5": [(_FILE, "$.fileDetails.md5"), (_PROCESS, "$.imageFile.md5")],
    "url": [(("urlEvidence", "blobEvidence"), "$.url")],
    "mailbox": [(("mailboxEvidence",), "$.primaryAddress"), (("mailboxConfigurationEvidence",),
                                                             "$.mailboxPrimaryAddress")],
    # P1 is the envelope (MAIL FROM) sender, P2 the From header's; Graph leaves either empty at times.
    "sender": [(_MESSAGE, "$.p1Sender.emailAddress"), (_MESSAGE, "$.p2Sender.emailAddress"),
               (("submissionMailEvidence",), "$.sender"), (("teamsMessageEvidence",), "$.senderFromAddress")],
    "recipient": [(_MESSAGE, "$.recipientEmailAddress"), (("submissionMailEvidence",), "$.recipient")],
    # Defender for Office 365's ids of one message, shared by the alerts and submissions about it.
    "network_message_id": [(ANY, "$.networkMessageId")],
    "internet_message_id": [(ANY, "$.internetMessageId")],
    "cloud_app": [(_APP, "$.displayName"), (_APP, "$.appId")],
    # cloud_app shows an app's id only when it has no name; search must find a named app by its id too. An Entra
    # application (client) id for OAuth apps and service principals, Defender for Cloud Apps' catalog number for a
    # cloud application.
    "app_id": [(_APP, "$.appId")],
    "process_command_line": [(_PROCESS, "$.processCommandLine")],
    "registry_key": [(("registryKeyEvidence", "registryValueEvidence"), "$.registryKey")],
    # An Azure resource named as evidence, or the Azure VM a Defender for Endpoint device runs on (vmMetadata).
    "azure_resource_id": [(("azureResourceEvidence",), "$.resourceId"), (_DEVICE, "$.vmMetadata.resourceId")],
    "vm_id": [(_DEVICE, "$.vmMetadata.vmId")],
    "subscription_id": [(_DEVICE, "$.vmMetadata.subscriptionId")],
}

# Every evidence type has these (Graph's alertEvidence base type).
COMMON_COLUMNS = {"verdict": "$.verdict", "remediation_status": "$.remediationStatus"}
ROLES_PATH = "$.roles"
