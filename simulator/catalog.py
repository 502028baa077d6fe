"""Which products raise which alerts: service sources, id prefixes, titles, tactics and scenes.

Weights give a realistic mix (Endpoint and Office 365 dominate). Id prefixes "da" (MDE), "fa" (MDO), "aa" (MDI)
and "ca" (Cloud Apps) are observed in real payloads (reference §2); the others are plausible inventions, and
consumers must treat ids as opaque anyway. Titles include the scenarios in /work/shared/seed.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from functools import partial

from simulator import scenes
from simulator.directory import guid

_DETECTOR_NAMESPACE = uuid.UUID("6f1c3c1e-4b8e-4d55-9a55-2f3c8e1d0a11")

_MDE_ACTIONS = (
    "1. Review the device timeline for activity before and after the alert.\n"
    "2. Isolate the device if the activity is confirmed.\n"
    "3. Collect an investigation package and submit unknown files for deep analysis.\n"
    "4. Reset the credentials of users that signed in to the device.")
_MDO_ACTIONS = (
    "1. Confirm that the messages were removed from all mailboxes.\n"
    "2. Block the sender and the URLs in the Tenant Allow/Block List.\n"
    "3. Check whether recipients clicked the URLs and reset their passwords if they did.")
_MDI_ACTIONS = (
    "1. Contain the source computer and find the process that performed the activity.\n"
    "2. Reset the password of the involved accounts and enforce MFA.\n"
    "3. Review the domain controller's event log for related activity.")
_IDENTITY_ACTIONS = (
    "1. Confirm with the user whether the sign-in was legitimate.\n"
    "2. If not, revoke sessions, reset the password and require MFA re-registration.")
_CLOUD_ACTIONS = (
    "1. Review the resource's activity logs for the suspicious address.\n"
    "2. Restrict network access to the resource and rotate its keys.")


@dataclass(frozen=True, slots=True)
class Template:
    title: str
    category: str
    severities: tuple[str, ...]
    mitre: tuple[str, ...]
    detection_sources: tuple[str, ...]
    scene: scenes.Scene
    description: str
    detector_id: str
    weight: int = 1
    # Share of alerts that a product closes on its own at creation (resolvedDateTime = createdDateTime).
    auto_resolve: float = 0.0
    has_policy: bool = False


@dataclass(frozen=True, slots=True)
class Provider:
    service_source: str
    product_name: str
    prefix: str
    weight: int
    recommended_actions: str | None
    templates: tuple[Template, ...] = field(default_factory=tuple)

    def provider_alert_id(self, rng: random.Random, created_ticks: int) -> str:
        if self.prefix in ("da", "ra"):
            # MDE style: .NET ticks of the detection and a signed 32-bit hash.
            return f"{created_ticks + 621_355_968_000_000_000}_{rng.randrange(-2**31, 2**31)}"
        if self.prefix == "ca":
            return f"{rng.getrandbits(96):024x}"
        if self.prefix == "ad":
            return f"{rng.getrandbits(160):040x}"
        return guid(rng)


def _t(title: str, category: str, severities: tuple[str, ...], mitre: tuple[str, ...], sources: tuple[str, ...],
       scene: scenes.Scene, description: str, weight: int = 1, auto_resolve: float = 0.0,
       has_policy: bool = False) -> Template:
    detector = str(uuid.uuid5(_DETECTOR_NAMESPACE, title))  # stable per detection, as a real detector id is
    return Template(title, category, severities, mitre, sources, scene, description, detector, weight, auto_resolve,
                    has_policy)


_MDE = ("microsoftDefenderForEndpoint",)
_MDO = ("microsoftDefenderForOffice365",)
_MDI = ("microsoftDefenderForIdentity",)
_MDCA = ("cloudAppSecurity",)
_AADIP = ("azureAdIdentityProtection",)

PROVIDERS: tuple[Provider, ...] = (
    Provider("microsoftDefenderForEndpoint", "Microsoft Defender for Endpoint", "da", 30, _MDE_ACTIONS, (
        _t("Suspicious PowerShell command line", "Execution", ("medium", "high"), ("T1059.001",), _MDE,
           scenes.mde_process, "A suspicious PowerShell command line was run. Attackers use PowerShell to download "
           "and run payloads in memory.", weight=4),
        _t("Suspicious execution of hidden file", "DefenseEvasion", ("low", "medium"), ("T1564.001",), _MDE,
           scenes.mde_process, "A hidden file has been launched. This activity could indicate a compromised host.",
           weight=2),
        _t("'Mimikatz' credential theft tool", "CredentialAccess", ("high",), ("T1003.001",),
           ("microsoftDefenderForEndpoint", "antivirus"),
           partial(scenes.mde_malware, family="Mimikatz", threat="HackTool:Win32/Mimikatz.D", prevented=False),
           "The credential theft tool Mimikatz was detected on the device.", weight=1),
        _t("'Emotet' malware was prevented", "Malware", ("informational", "low"), (), ("antivirus",),
           partial(scenes.mde_malware, family="Emotet", threat="Trojan:Win32/Emotet.RTH!MTB", prevented=True),
           "Malware was detected and prevented from running.", weight=4, auto_resolve=0.3),
        _t("Ransomware behavior detected in the file system", "Ransomware", ("high",), ("T1486",), _MDE,
           scenes.mde_ransomware, "A process encrypted many files in a short time, typical of ransomware.",
           weight=1),
        _t("Anomaly detected in ASEP registry", "Persistence", ("medium",), ("T1547.001",), _MDE,
           scenes.mde_registry, "A process registered a file to run at logon through an autostart registry key.",
           weight=2),
        _t("Connection to a custom network indicator", "CommandAndControl", ("medium", "high"), ("T1071.001",),
           ("customTi", "smartScreen"), scenes.mde_network,
           "The device connected to an address on the organization's block list.", weight=2),
    )),
    Provider("microsoftDefenderForOffice365", "Microsoft Defender for Office 365", "fa", 25, _MDO_ACTIONS, (
        _t("Email messages containing malicious URL removed after delivery", "InitialAccess",
           ("informational", "medium"), ("T1566.002",), _MDO, partial(scenes.mdo_message, kind="phish"),
           "Emails with a malicious URL were delivered and later removed by zero-hour auto purge.",
           weight=5, auto_resolve=0.5),
        _t("Email messages containing malware removed after delivery", "InitialAccess", ("informational", "medium"),
           ("T1566.001",), _MDO, partial(scenes.mdo_message, kind="malware"),
           "Emails with a malicious attachment were delivered and later removed.", weight=3, auto_resolve=0.5),
        _t("A potentially malicious URL click was detected", "InitialAccess", ("high",), ("T1566.002",), _MDO,
           scenes.mdo_click, "A user clicked a link in an email that was later found malicious.", weight=2),
        _t("Email reported by user as malware or phish", "InitialAccess", ("informational",), (), _MDO,
           partial(scenes.mdo_message, kind="phish"), "A user reported an email as phishing.", weight=3),
        _t("Suspicious email sending patterns detected", "Exfiltration", ("medium",), ("T1114",), _MDO,
           scenes.mdo_outbound, "A mailbox sent email in a pattern consistent with a compromised account.",
           weight=1),
    )),
    Provider("microsoftDefenderForIdentity", "Microsoft Defender for Identity", "aa", 7, _MDI_ACTIONS, (
        _t("Suspected identity theft (pass-the-hash)", "LateralMovement", ("high",), ("T1550.002",), _MDI,
           scenes.mdi_lateral, "An account's NTLM hash was used from a computer the account never signed in to.",
           weight=2),
        _t("Honeytoken activity", "CredentialAccess", ("medium",), ("T1078", "T1110"), _MDI, scenes.mdi_honeytoken,
           "The honeytoken account, which should never be used, attempted to authenticate.", weight=1),
        _t("Data exfiltration over SMB", "Exfiltration", ("high",), ("T1041", "T1020"), _MDI,
           scenes.mdi_smb_exfiltration, "A user copied sensitive domain controller data over SMB to a workstation.",
           weight=1),
        _t("Suspected DCSync attack (replication of directory services)", "CredentialAccess", ("high",),
           ("T1003.006",), _MDI, scenes.mdi_dc_attack,
           "A computer that is not a domain controller requested directory replication.", weight=1),
        _t("Suspected brute-force attack (Kerberos, NTLM)", "CredentialAccess", ("low", "medium"), ("T1110",), _MDI,
           scenes.mdi_dc_attack, "Many authentication failures for several accounts came from one computer.",
           weight=2),
        _t("Suspicious additions to sensitive groups", "Persistence", ("medium",), ("T1098",), _MDI,
           scenes.mdi_group_change, "A user was added to a highly privileged group.", weight=1),
    )),
    Provider("microsoftDefenderForCloudApps", "Microsoft Defender for Cloud Apps", "ca", 8, _IDENTITY_ACTIONS, (
        _t("Compromised account", "InitialAccess", ("high",), ("T1078.004",), _MDCA, scenes.cloud_apps,
           "Activity indicates that the user's account is compromised.", weight=1),
        _t("Impossible travel activity", "InitialAccess", ("medium",), ("T1078",), _MDCA, scenes.cloud_apps,
           "The same user was active from two distant locations within a short time.", weight=3),
        _t("Mass download by a single user", "Exfiltration", ("medium",), ("T1530",), _MDCA, scenes.cloud_apps,
           "A user downloaded an unusually large number of files in one session.", weight=2),
        _t("Suspicious inbox forwarding", "Exfiltration", ("medium",), ("T1114.003",), _MDCA,
           partial(scenes.cloud_apps, forwarding=True), "A user created an inbox rule forwarding mail outside.",
           weight=1),
    )),
    Provider("azureAdIdentityProtection", "Microsoft Entra ID Protection", "ad", 8, _IDENTITY_ACTIONS, (
        _t("Anonymous IP address", "InitialAccess", ("low", "medium"), ("T1090.003",), _AADIP, scenes.identity_signin,
           "A sign-in came from an anonymous IP address such as a Tor exit node or anonymizing VPN.", weight=3),
        _t("Atypical travel", "InitialAccess", ("medium",), ("T1078",), _AADIP, scenes.identity_signin,
           "Two sign-ins came from locations too far apart for the time between them.", weight=3),
        _t("Unfamiliar sign-in properties", "InitialAccess", ("low",), ("T1078",), _AADIP, scenes.identity_signin,
           "A sign-in had properties not seen recently for this user.", weight=2),
        _t("Password spray", "CredentialAccess", ("high",), ("T1110.003",), _AADIP, scenes.identity_signin,
           "Many accounts were tried with a few common passwords from one source.", weight=1),
    )),
    Provider("microsoft365Defender", "Microsoft Defender XDR", "ra", 5, None, (
        _t("Compromised credentials", "CredentialAccess", ("high",), ("T1078",), ("microsoft365Defender",),
           scenes.xdr_credentials, "Signals across products show that the user's credentials are compromised.",
           weight=2),
        _t("Possible BEC financial fraud", "Collection", ("high",), ("T1114",), ("microsoft365Defender",),
           scenes.xdr_bec, "A compromised mailbox was used in a way typical of business email compromise.", weight=1),
        _t("Rare process connecting to external IP (custom detection)", "CommandAndControl", ("medium",),
           ("T1071",), ("customDetection",), scenes.mde_network,
           "Custom detection rule: a rarely seen process connected to an external address.", weight=2),
    )),
    Provider("microsoftAppGovernance", "Microsoft app governance", "ma", 2, None, (
        _t("App with suspicious OAuth scope made graph calls to read email", "Collection", ("medium",),
           ("T1114.002",), ("appGovernanceDetection",), scenes.app_governance,
           "An OAuth app with unverified publisher read mail through Graph.", weight=2),
        _t("Increase in app API calls to Exchange", "Exfiltration", ("low", "medium"), ("T1567",),
           ("appGovernancePolicy",), scenes.app_governance, "An app policy matched: Graph calls to Exchange rose.",
           weight=1, has_policy=True),
    )),
    Provider("dataLossPrevention", "Microsoft Data Loss Prevention", "dl", 6, None, (
        _t("DLP policy (U.S. Financial Data) matched for document in SharePoint", "Exfiltration", ("low", "medium"),
           (), ("microsoftDataLossPrevention",), scenes.dlp_document,
           "A document with financial data was shared outside the organization.", weight=2, has_policy=True),
        _t("DLP policy (Credit Card Number) matched for email", "Exfiltration", ("low", "medium", "high"), (),
           ("microsoftDataLossPrevention",), scenes.dlp_email, "An email contained credit card numbers.",
           weight=1, has_policy=True),
    )),
    Provider("microsoftDefenderForCloud", "Microsoft Defender for Cloud", "dc", 5, _CLOUD_ACTIONS, (
        _t("Access from a suspicious IP to a storage account", "InitialAccess", ("medium",), ("T1078",),
           ("microsoftDefenderForStorage",),
           partial(scenes.defender_for_cloud_resource, provider="Microsoft.Storage", kind="storageAccounts",
                   name="stcontosoprod01", label="Storage Account"),
           "A storage account was accessed from an address with a bad reputation.", weight=2),
        _t("Unusual access to a key vault from a suspicious IP", "CredentialAccess", ("high",), ("T1555",),
           ("microsoftDefenderForKeyVault",),
           partial(scenes.defender_for_cloud_resource, provider="Microsoft.KeyVault", kind="vaults",
                   name="kv-contoso-prod", label="Key Vault"),
           "A key vault was accessed from an unusual address.", weight=1),
        _t("Privileged container detected", "PrivilegeEscalation", ("medium",), ("T1611",),
           ("microsoftDefenderForContainers",), scenes.defender_for_containers,
           "A pod runs a privileged container, which gives it access to the host.", weight=1),
        _t("A jailbreak attempt on an Azure AI model deployment was blocked by Prompt Shields", "DefenseEvasion",
           ("medium",), ("T1562",), ("microsoftDefenderForAIServices",), scenes.defender_for_ai,
           "Prompt Shields blocked a prompt that tried to bypass the model's system instructions.", weight=1),
    )),
    Provider("microsoftSentinel", "Microsoft Sentinel", "sn", 4, None, (
        _t("Brute force attack against Azure Portal", "CredentialAccess", ("medium",), ("T1110",),
           ("scheduledAlerts",), partial(scenes.sentinel_rule, with_device=False),
           "Scheduled analytics rule: many failed Azure Portal sign-ins for one user.", weight=2),
        _t("Rare RDP Connections", "LateralMovement", ("low",), ("T1021.001",), ("scheduledAlerts",),
           partial(scenes.sentinel_rule, with_device=True),
           "Scheduled analytics rule: an account opened RDP sessions to a host it does not usually use.", weight=1),
        _t("Suspicious sign-in followed by MFA modification", "Persistence", ("high",), ("T1556.006",),
           ("nrtAlerts",), partial(scenes.sentinel_rule, with_device=False),
           "Near-real-time rule: a risky sign-in was followed by a change to the user's MFA methods.", weight=1),
    )),
)


def coverage_order() -> list[tuple[Provider, Template]]:
    """Every template once, round-robin over providers, so even a small tenant has every product early on."""
    order: list[tuple[Provider, Template]] = []
    depth = max(len(p.templates) for p in PROVIDERS)
    for i in range(depth):
        order += [(p, p.templates[i]) for p in PROVIDERS if i < len(p.templates)]
    return order


def weighted_pairs() -> tuple[list[tuple[Provider, Template]], list[float]]:
    """Every (provider, template) with cumulative weights, for random.choices(cum_weights=...)."""
    pairs, cumulative, total = [], [], 0.0
    for p in PROVIDERS:
        share = sum(t.weight for t in p.templates)
        for t in p.templates:
            total += p.weight * t.weight / share
            pairs.append((p, t))
            cumulative.append(total)
    return pairs, cumulative
