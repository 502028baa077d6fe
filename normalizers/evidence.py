"""Which evidence fields feed which indicator list, per evidence type, plus a scanner for types we don't know.

`EVIDENCE_INDICATORS` is the table to edit: one entry per Graph evidence type (the `@odata.type` without
`#microsoft.graph.security.`), mapping property names to a rule. A rule is
- an indicator kind (below): the string, or each string of a list, is collected as that kind;
- a dict: the property is an object (or a list of objects) read with that nested table;
- `Nested("ipEvidence")`: the property holds evidence of another type, read with that type's entry
  (the object's own `@odata.type` wins when present);
- a tuple of rules: all of them apply.

Fields that are absent are deliberately ignored. Elastic's pitfall is the model: deviceEvidence.osPlatform
and .version ("Windows11", "22H2") and NetBIOS domains ("AzureAD", ntDomain) are not hosts, so they map to
nothing, and a `domainName` counts as a domain only when it is a dotted DNS name.

Decisions the table encodes:
- p_any_usernames: account names, `domain\\account` (from userAccount and loggedOnUsers), UPNs. A UPN also
  goes to p_any_emails when it has that shape, so an analyst's email search finds the account.
- p_any_actor_ids: ids of principals and devices: Entra user, device and service-principal object ids,
  application (client) ids, AI agent ids, SIDs, AD object GUIDs, and Defender for Endpoint's mdeDeviceId.
  Panther has no device-id list, and azureAdDeviceId (a directory object) already sits here, so the
  Defender id of the same device sits beside it rather than in a column of its own.
- p_any_domain_names: host names and FQDNs (single-label host names included, as Panther's `hostname`),
  DNS domains, URL hosts, and sender domains; not recipient domains, which are the tenant's own and
  would match every mail alert.

Evidence types missing from the table are never dropped: they stay in the `evidence` column as received and
are read by `scan_by_key_name`, which walks every property and picks values by key name
(`...IpAddress`, `url`, `userPrincipalName`, `sha256`, ...). Every kind is validated when canonicalised,
so a key-name guess cannot put a non-address into p_any_ip_addresses.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Union

import orjson

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
        "mdeDeviceId": ACTOR_ID,
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

_GRAPH_TYPE_PREFIXES = ("#microsoft.graph.security.", "microsoft.graph.security.")


def parsed_key(name: str) -> str:
    """`name` as the very str object that orjson.loads makes of that object key.

    orjson keeps the key strings it creates in a cache and hands the same objects out again, so a dict lookup
    with one of them matches on identity instead of comparing characters: the normalizer looks up a few
    hundred keys per alert. Only ever faster, never different: if orjson's cache has let the key go, the
    lookup compares equal strings as it would anyway.
    """
    return next(iter(orjson.loads(orjson.dumps({name: None}))))


_ODATA_TYPE = parsed_key("@odata.type")
_ACCOUNT_NAME = parsed_key("accountName")
_DOMAIN_NAME = parsed_key("domainName")

# The key-name scanner: a key is normalized (lower-case, letters and digits only), then matched whole,
# then by suffix, longest first. Kinds validate their values, so `...ip` matching "membership" is harmless.
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
_KEY_KIND_CACHE_LIMIT = 4096
_key_kind_cache: dict[str, str | None] = {}
_SCAN_DEPTH_LIMIT = 12  # Evidence nests a few levels; deeper is pathological input, not data.


def kind_for_key(key: str) -> str | None:
    """The indicator kind the key-name scanner assigns to a property name, or None."""
    kind = _key_kind_cache.get(key, "")
    if kind != "":
        return kind
    normalized = _NON_ALNUM.sub("", key.lower())
    kind = _KIND_BY_KEY_NAME.get(normalized)
    if kind is None:
        for suffix, suffix_kind in _KEY_NAME_SUFFIXES:
            if normalized.endswith(suffix):
                kind = suffix_kind
                break
    if len(_key_kind_cache) >= _KEY_KIND_CACHE_LIMIT:
        _key_kind_cache.clear()
    _key_kind_cache[key] = kind
    return kind


# Compiled form of the table, for the hot path: per type, (property, kind, memo) triples for string values
# (a property with two kinds appears twice) and (property, handler) pairs for object values, where a
# handler is a nested compiled spec, a Nested type, or QUALIFIED_ACCOUNT.
_CompiledSpec = tuple[tuple[tuple[str, str, dict], ...], tuple[tuple[str, object], ...]]
Resolved = tuple  # Whatever the caller's resolver makes of one raw value; the scanner only concatenates them.


class Scanner:
    """Walks evidence with EVIDENCE_INDICATORS and hands each raw value to the caller's resolver for its kind.

    `memos` maps every kind to a dict, raw value -> resolved tuple, that the caller owns (and bounds);
    `resolve(kind, raw)` computes a value missing from it and stores it there. Resolution happens during the
    walk: each rule carries its kind's memo, so a value seen before (alerts repeat the same hosts, users and
    addresses) costs one dict lookup, and the walk leaves nothing behind but the resolved tuples, concatenated
    into the caller's `out` list.
    """

    def __init__(self, memos: dict[str, dict[str, Resolved]], resolve: Callable[[str, str], Resolved]) -> None:
        self._memos = memos
        self._resolve = resolve
        self._by_name = {name: self._compile(spec) for name, spec in EVIDENCE_INDICATORS.items()}
        # Graph writes `#microsoft.graph.security.ipEvidence` at the top and, in nested objects, sometimes
        # omits the `#`; both spellings resolve without string work on the hot path.
        self._by_odata_type = {
            prefix + name: spec for name, spec in self._by_name.items() for prefix in _GRAPH_TYPE_PREFIXES
        }

    def _compile(self, spec: dict[str, Rule]) -> _CompiledSpec:
        string_rules: list[tuple[str, str, dict]] = []
        object_rules: list[tuple[str, object]] = []
        for key, rule in spec.items():
            for part in rule if isinstance(rule, tuple) else (rule,):
                if part == QUALIFIED_ACCOUNT:
                    object_rules.append((parsed_key(key), part))
                elif isinstance(part, str):
                    string_rules.append((parsed_key(key), part, self._memos[part]))
                elif isinstance(part, dict):
                    object_rules.append((parsed_key(key), self._compile(part)))
                elif isinstance(part, Nested):
                    if part.evidence_type not in EVIDENCE_INDICATORS:
                        raise ValueError(f"{key}: Nested({part.evidence_type!r}) is not in EVIDENCE_INDICATORS")
                    object_rules.append((parsed_key(key), part))
                else:
                    raise TypeError(f"{key}: a rule is a kind, dict, Nested(...) or tuple of those, not {part!r}")
        return tuple(string_rules), tuple(object_rules)

    def scan_evidence(self, evidence: list, out: list) -> None:
        """Extend `out` with the resolved form of every indicator in an alert's evidence list."""
        specs_get = self._by_odata_type.get
        for item in evidence:
            if item.__class__ is dict:
                spec = specs_get(item.get(_ODATA_TYPE))
                if spec is None:
                    self.scan_by_key_name(item, None, out, 0)
                else:
                    self._walk(item, spec, out)

    def _walk(self, obj: dict, spec: _CompiledSpec, out: list) -> None:
        get = obj.get
        resolve = self._resolve
        string_rules, object_rules = spec
        for key, kind, memo in string_rules:
            value = get(key)
            if value.__class__ is str:
                resolved = memo.get(value)
                out += resolve(kind, value) if resolved is None else resolved
            elif value.__class__ is list:
                for item in value:
                    if item.__class__ is str:
                        resolved = memo.get(item)
                        out += resolve(kind, item) if resolved is None else resolved
        for key, handler in object_rules:
            value = get(key)
            if value is None:
                continue
            for item in value if value.__class__ is list else (value,):
                if item.__class__ is not dict:
                    continue
                if handler.__class__ is tuple:
                    self._walk(item, handler, out)
                elif handler.__class__ is Nested:
                    self._walk(item, self._by_odata_type.get(item.get(_ODATA_TYPE))
                               or self._by_name[handler.evidence_type], out)
                else:
                    self._qualified_account(item, out)

    def _qualified_account(self, account: dict, out: list) -> None:
        name = account.get(_ACCOUNT_NAME)
        domain = account.get(_DOMAIN_NAME)
        if name.__class__ is not str or domain.__class__ is not str:
            return
        name, domain = name.strip(), domain.strip()
        if name and domain and "\\" not in name:
            self._add(USERNAME, f"{domain}\\{name}", out)

    def _add(self, kind: str, raw: str, out: list) -> None:
        resolved = self._memos[kind].get(raw)
        out += self._resolve(kind, raw) if resolved is None else resolved

    def scan_by_key_name(self, value: object, kind: str | None, out: list, depth: int = 0) -> None:
        """Collect indicators from free-form JSON by key name; `kind` is the one of the key `value` sits under.

        A nested object that declares a known evidence type is read with the table instead, so an unknown
        wrapper around known evidence loses nothing.
        """
        if depth > _SCAN_DEPTH_LIMIT:
            return
        if value.__class__ is str:
            if kind is not None:
                self._add(kind, value, out)
        elif value.__class__ is list:
            for item in value:
                self.scan_by_key_name(item, kind, out, depth + 1)
        elif value.__class__ is dict:
            spec = self._by_odata_type.get(value.get(_ODATA_TYPE))
            if spec is not None:
                self._walk(value, spec, out)
                return
            for key, item in value.items():
                if item is not None and key.__class__ is str:
                    self.scan_by_key_name(item, kind_for_key(key), out, depth + 1)
            if _ACCOUNT_NAME in value and _DOMAIN_NAME in value:
                self._qualified_account(value, out)
