"""Which evidence properties hold which kind of indicator, and the walk that collects them.

`EVIDENCE_INDICATORS` is the table to edit: one entry per Graph evidence type (`@odata.type` without
`#microsoft.graph.security.`), one line per property, mapping it to a rule:
- an indicator kind (below): the string, or each string of a list, is collected as that kind;
- a dict: the property is an object (or a list of objects) read with that nested table;
- `Nested("ipEvidence")`: the property holds evidence of another type, read with that type's entry
  (the object's own `@odata.type` wins when it names a known type);
- a tuple of rules: all of them apply.

Properties not in the table are not indicators: deviceEvidence.osPlatform ("Windows11") and NetBIOS
domains ("AzureAD") are not hosts, and a `domainName` counts only when it is a dotted DNS name. Evidence of
a type missing from the table, and the free-form dictionaries a provider names, are read by key name
(`...IpAddress`, `url`, `userPrincipalName`, `sha256`, ...); core.py validates every value it is given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Union

# Indicator kinds: what a raw value is. core.py turns each into canonical values in one or more p_any lists.
IP = "ip"
HOST = "host"  # A host name or FQDN; an IP address when it parses as one.
DNS_DOMAIN = "dns_domain"  # A domain field that may hold a NetBIOS name: only dotted DNS names count.
URL = "url"  # The URL itself, and its host as a domain or IP.
EMAIL = "email"
SENDER_EMAIL = "sender_email"  # A sender's address, and its domain: sender domains are worth a pivot.
UPN = "upn"  # A username, and an email when it has that shape.
USERNAME = "username"
HASH = "hash"  # md5, sha1 or sha256, told apart by length.
ACTOR_ID = "actor_id"  # Entra/AD object GUIDs, SIDs, Defender device ids (see indicators.py).
QUALIFIED_ACCOUNT = "qualified_account"  # Applies to an object: its domainName\accountName.
KINDS = frozenset({IP, HOST, DNS_DOMAIN, URL, EMAIL, SENDER_EMAIL, UPN, USERNAME, HASH, ACTOR_ID, QUALIFIED_ACCOUNT})


@dataclass(frozen=True, slots=True)
class Nested:
    """A property that holds evidence of `evidence_type` (e.g. networkConnectionEvidence.sourceAddress)."""

    evidence_type: str


Rule = Union[str, Nested, dict[str, "Rule"], tuple["Rule", ...]]

USER_ACCOUNT: Rule = (QUALIFIED_ACCOUNT, {
    "accountName": USERNAME,
    "domainName": DNS_DOMAIN,
    "userPrincipalName": UPN,
    "azureAdUserId": ACTOR_ID,
    "userSid": ACTOR_ID,
    "activeDirectoryObjectGuid": ACTOR_ID,
})
LOGGED_ON_USER: Rule = (QUALIFIED_ACCOUNT, {"accountName": USERNAME, "domainName": DNS_DOMAIN})
FILE_DETAILS: Rule = {"md5": HASH, "sha1": HASH, "sha256": HASH, "sha256Ac": HASH, "sha265Ac": HASH}
EMAIL_SENDER: Rule = {"emailAddress": SENDER_EMAIL, "domainName": DNS_DOMAIN}

EVIDENCE_INDICATORS: dict[str, dict[str, Rule]] = {
    "ipEvidence": {"ipAddress": IP},
    "urlEvidence": {"url": URL},
    "userEvidence": {"userAccount": USER_ACCOUNT},
    "deviceEvidence": {
        "deviceDnsName": HOST,
        "hostName": HOST,
        "dnsDomain": DNS_DOMAIN,
        "ipInterfaces": IP,
        "lastIpAddress": IP,
        "lastExternalIpAddress": IP,
        "mdeDeviceId": ACTOR_ID,  # Panther has no device-id list: it sits beside the same device's Entra id.
        "azureAdDeviceId": ACTOR_ID,
        "loggedOnUsers": LOGGED_ON_USER,
    },
    "fileEvidence": {"fileDetails": FILE_DETAILS, "mdeDeviceId": ACTOR_ID},
    "fileHashEvidence": {"value": HASH},
    "processEvidence": {
        "imageFile": FILE_DETAILS,
        "parentProcessImageFile": FILE_DETAILS,
        "userAccount": USER_ACCOUNT,
        "mdeDeviceId": ACTOR_ID,
    },
    "registryKeyEvidence": {"mdeDeviceId": ACTOR_ID},
    "registryValueEvidence": {"mdeDeviceId": ACTOR_ID},
    "networkConnectionEvidence": {
        "sourceAddress": Nested("ipEvidence"),
        "destinationAddress": Nested("ipEvidence"),
    },
    "dnsEvidence": {
        "domainName": HOST,
        "dnsServerIp": Nested("ipEvidence"),
        "hostIpAddress": Nested("ipEvidence"),
        "ipAddresses": Nested("ipEvidence"),
    },
    "nicEvidence": {"ipAddress": Nested("ipEvidence")},
    "hostLogonSessionEvidence": {"account": Nested("userEvidence"), "host": Nested("deviceEvidence")},
    "cloudLogonSessionEvidence": {"account": Nested("userEvidence")},
    "cloudLogonRequestEvidence": {},
    "mailboxEvidence": {"primaryAddress": EMAIL, "upn": UPN, "userAccount": USER_ACCOUNT},
    "mailboxConfigurationEvidence": {
        "mailboxPrimaryAddress": EMAIL,
        "upn": UPN,
        "externalDirectoryObjectId": ACTOR_ID,
    },
    "analyzedMessageEvidence": {
        "senderIp": IP,
        "recipientEmailAddress": EMAIL,
        "p1Sender": EMAIL_SENDER,
        "p2Sender": EMAIL_SENDER,
        "urls": URL,
    },
    # clusterByValue can be a sender, an IP or a subject depending on clusterBy: not a reliable indicator.
    "mailClusterEvidence": {},
    "submissionMailEvidence": {
        "sender": SENDER_EMAIL,
        "senderIp": IP,
        "recipient": EMAIL,
        "submitter": EMAIL,
    },
    "teamsMessageEvidence": {
        "senderFromAddress": SENDER_EMAIL,
        "senderIP": IP,
        "recipients": UPN,
        "suspiciousRecipients": UPN,
        "urls": Nested("urlEvidence"),
        "files": Nested("fileEvidence"),
    },
    # appId is Defender for Cloud Apps' numeric catalog id, not an Entra application id.
    "cloudApplicationEvidence": {},
    "oauthApplicationEvidence": {"appId": ACTOR_ID, "objectId": ACTOR_ID},
    "servicePrincipalEvidence": {"appId": ACTOR_ID, "servicePrincipalObjectId": ACTOR_ID},
    "securityGroupEvidence": {
        "securityGroupId": ACTOR_ID,
        "sid": ACTOR_ID,
        "activeDirectoryObjectGuid": ACTOR_ID,
    },
    "activeDirectoryDomainEvidence": {
        "activeDirectoryDomainName": DNS_DOMAIN,
        "trustedDomains": Nested("activeDirectoryDomainEvidence"),
    },
    "malwareEvidence": {"files": Nested("fileEvidence"), "processes": Nested("processEvidence")},
    "ioTDeviceEvidence": {
        "ipAddress": Nested("ipEvidence"),
        "nics": Nested("nicEvidence"),
        "sourceRef": Nested("urlEvidence"),
    },
    "blobEvidence": {"url": URL, "fileHashes": {"value": HASH}},
    "kubernetesPodEvidence": {"podIp": Nested("ipEvidence")},
    "gitHubUserEvidence": {"email": EMAIL, "login": USERNAME},
    "aiAgentEvidence": {"agentId": ACTOR_ID},  # The agent acts as a principal, like a service principal.
    "azureResourceEvidence": {},
}

# Properties that mean the same on every evidence type, so the evidence view reads them on every type
# (normalizers/evidence_columns.py, ANY): an entry of the table above still decides how its own type reads them.
ON_EVERY_TYPE: dict[str, Rule] = {"ipAddress": IP, "senderIp": IP, "podIp": {"ipAddress": IP}}
for _table in EVIDENCE_INDICATORS.values():
    for _property, _rule in ON_EVERY_TYPE.items():
        _table.setdefault(_property, _rule)

# Graph writes `#microsoft.graph.security.ipEvidence` at the top and sometimes omits the `#` in nested objects.
_TABLE_BY_ODATA_TYPE = {
    prefix + name: table
    for name, table in EVIDENCE_INDICATORS.items()
    for prefix in ("#microsoft.graph.security.", "microsoft.graph.security.")
}

Found = list[tuple[str, str]]  # (indicator kind, raw value) pairs, repeats included


def evidence_indicators(evidence: list, found: Found) -> None:
    """Add to `found` every indicator of an alert's evidence list."""
    for item in evidence:
        if type(item) is dict:
            table = _declared_table(item)
            if table is None:
                key_name_indicators(item, None, found)
            else:
                _walk(item, table, found)


def table_indicators(obj: dict, table: dict[str, Rule], found: Found) -> None:
    """Add to `found` the indicators of any JSON object read with a table in this module's format (the Azure
    Monitor records' tables use it too)."""
    _walk(obj, table, found)


def _declared_table(obj: dict) -> dict | None:
    # Panther's schema spells it at_sign_odata_type: test Logs written for Panther use that name.
    odata_type = obj.get("@odata.type", obj.get("at_sign_odata_type"))
    # Not a string (a list, say): no type we know, and no reason to lose the alert over it.
    return _TABLE_BY_ODATA_TYPE.get(odata_type) if type(odata_type) is str else None


def _walk(obj: dict, table: dict[str, Rule], found: Found) -> None:
    for name, rule in table.items():
        value = obj.get(name)
        if value is not None:
            _apply(rule, value, found)


def _apply(rule: Rule, value: object, found: Found) -> None:
    if type(rule) is str:
        if rule == QUALIFIED_ACCOUNT:
            for account in _objects(value):
                _qualified_account(account, found)
        elif type(value) is str:
            found.append((rule, value))
        elif type(value) is list:
            found.extend((rule, item) for item in value if type(item) is str)
    elif type(rule) is dict:
        for item in _objects(value):
            _walk(item, rule, found)
    elif type(rule) is Nested:
        for item in _objects(value):
            _walk(item, _declared_table(item) or EVIDENCE_INDICATORS[rule.evidence_type], found)
    else:
        for part in rule:
            _apply(part, value, found)


def _objects(value: object) -> list[dict]:
    if type(value) is dict:
        return [value]
    return [item for item in value if type(item) is dict] if type(value) is list else []


def _qualified_account(account: dict, found: Found) -> None:
    """`domain\\account` as a username too, when the object has both parts."""
    name, domain = account.get("accountName"), account.get("domainName")
    if type(name) is str and type(domain) is str:
        name, domain = name.strip(), domain.strip()
        if name and domain and "\\" not in name:
            found.append((USERNAME, f"{domain}\\{name}"))


# The key-name reading: a key is normalized (lower-case, letters and digits only), then matched whole, then by
# suffix, longest first. Kinds validate their values, so `...ip` matching "membership" is harmless.
_KIND_BY_KEY_NAME = {
    "ip": IP, "ips": IP, "ipaddress": IP, "ipaddresses": IP, "ipv4": IP, "ipv6": IP, "ipinterfaces": IP,
    "url": URL, "urls": URL, "uri": URL,
    "userprincipalname": UPN, "upn": UPN,
    "accountname": USERNAME, "username": USERNAME, "samaccountname": USERNAME,
    "email": EMAIL, "emails": EMAIL, "emailaddress": EMAIL, "emailaddresses": EMAIL, "mail": EMAIL,
    "primaryaddress": EMAIL, "recipients": UPN,
    "sender": SENDER_EMAIL, "senderaddress": SENDER_EMAIL, "senderfromaddress": SENDER_EMAIL,
    "md5": HASH, "sha1": HASH, "sha256": HASH, "sha256ac": HASH, "hash": HASH, "hashvalue": HASH,
    "host": HOST, "hostname": HOST, "devicename": HOST, "computername": HOST, "devicednsname": HOST,
    "fqdn": HOST, "dnsname": HOST,
    "domainname": DNS_DOMAIN, "domain": DNS_DOMAIN,
    "azureaduserid": ACTOR_ID, "aaduserid": ACTOR_ID, "azureaddeviceid": ACTOR_ID, "objectid": ACTOR_ID,
    "usersid": ACTOR_ID, "sid": ACTOR_ID, "mdedeviceid": ACTOR_ID, "objectguid": ACTOR_ID,
}
_KEY_NAME_SUFFIXES = sorted(_KIND_BY_KEY_NAME.items(), key=lambda item: -len(item[0]))
_NON_ALNUM = re.compile(r"[^a-z0-9]")
_DEPTH_LIMIT = 12  # Evidence nests a few levels; deeper is pathological input, not data.


@lru_cache(maxsize=4096)
def kind_for_key(key: str) -> str | None:
    """The indicator kind the key-name reading gives a property name, or None."""
    normalized = _NON_ALNUM.sub("", key.lower())
    kind = _KIND_BY_KEY_NAME.get(normalized)
    if kind is None:
        kind = next((kind for suffix, kind in _KEY_NAME_SUFFIXES if normalized.endswith(suffix)), None)
    return kind


def key_name_indicators(value: object, kind: str | None, found: Found, depth: int = 0) -> None:
    """Add to `found` the indicators of free-form JSON by key name; `kind` is the one of the key `value` sits under.

    A nested object that declares a known evidence type is read with the table instead, so an unknown wrapper
    around known evidence loses nothing.
    """
    if depth > _DEPTH_LIMIT:
        return
    if type(value) is str:
        if kind is not None:
            found.append((kind, value))
    elif type(value) is list:
        for item in value:
            key_name_indicators(item, kind, found, depth + 1)
    elif type(value) is dict:
        table = _declared_table(value)
        if table is not None:
            _walk(value, table, found)
            return
        for key, item in value.items():
            if item is not None and type(key) is str:
                key_name_indicators(item, kind_for_key(key), found, depth + 1)
        _qualified_account(value, found)


def check_table(table: dict[str, Rule], where: str) -> None:
    """Fail at import, naming the property, on a rule the walk cannot read."""
    for name, rule in table.items():
        for part in rule if type(rule) is tuple else (rule,):
            if type(part) is dict:
                check_table(part, f"{where}.{name}")
            elif type(part) is Nested:
                if part.evidence_type not in EVIDENCE_INDICATORS:
                    raise ValueError(f"{where}.{name}: Nested({part.evidence_type!r}) is not in EVIDENCE_INDICATORS")
            elif part not in KINDS:
                raise ValueError(f"{where}.{name}: a rule is a kind, a dict, Nested(...) or a tuple of those, "
                                 f"not {part!r}")


for _name, _table in EVIDENCE_INDICATORS.items():
    check_table(_table, _name)
