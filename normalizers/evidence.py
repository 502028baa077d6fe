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

The table is compiled twice, to the same meaning: once to walk evidence parsed into dicts (any shape), and
once into msgspec struct types holding only the table's properties, with a generated walker per type, for
evidence of known types with the shapes the table expects (the fast path, see core.AlertBatch.add_json).
A property is therefore either text (a kind) or one kind of object (a dict or a Nested), never both.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Union

import msgspec
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


Resolved = tuple  # Whatever the owner's memos make of one raw value; the scanner only concatenates them.
# Compiled form of one table entry, for the hot path:
# - (property, memo of its kind) per string property (a property with two kinds appears twice);
# - (property, compiled table) per property holding objects read with a nested table;
# - (property, evidence type name) per property holding evidence of another type (Nested);
# - whether this object's domainName\accountName is a username too (QUALIFIED_ACCOUNT on its property).
_CompiledSpec = tuple[tuple[tuple[str, Mapping], ...], tuple[tuple[str, "_CompiledSpec"], ...],
                      tuple[tuple[str, str], ...], bool]

_TEXT = Union[str, list[str], None]  # A string property's type in the typed structs.
_NO_RAW = msgspec.Raw()


class Untyped(Exception):
    """Typed evidence that only the dict walk reads as the table says (a nested object declaring another
    known evidence type, a Nested cycle): the caller reads the alert as dicts instead."""


class Scanner:
    """Walks evidence with EVIDENCE_INDICATORS and looks each raw value up in the memo of its kind.

    `memos` maps every kind to a mapping, raw value -> resolved tuple, that the owner provides: it resolves
    (and memoizes, and bounds) any value it lacks when looked up, yields () for None (an absent property)
    and for a value that is not a string (a number where the table expects text), and raises TypeError for
    a list or an object, as a dict does. Resolution happens during the walk, so a value seen before (alerts
    repeat the same hosts, users and addresses) costs one dict lookup, and the walk leaves nothing behind
    but the resolved tuples, concatenated into the caller's `out` list.
    """

    def __init__(self, memos: Mapping[str, Mapping[object, Resolved]]) -> None:
        self._memos = memos
        self._by_name = {name: self._compile(spec) for name, spec in EVIDENCE_INDICATORS.items()}
        # Graph writes `#microsoft.graph.security.ipEvidence` at the top and, in nested objects, sometimes
        # omits the `#`; both spellings resolve without string work on the hot path.
        self._by_odata_type = {
            prefix + name: spec for name, spec in self._by_name.items() for prefix in _GRAPH_TYPE_PREFIXES
        }
        self._walker_source: list[str] = []
        self._walker_names: dict[type, str] = {}
        self._walker_globals: dict[str, object] = {
            "Untyped": Untyped, "NO_RAW": _NO_RAW, "add_qualified_username": self._add_qualified_username,
            **{f"memo_{kind}": memo for kind, memo in memos.items()},
            **{f"other_than_{name}": frozenset(self._by_odata_type) - {prefix + name
                                                                        for prefix in _GRAPH_TYPE_PREFIXES}
               for name in EVIDENCE_INDICATORS},
        }
        tagged = [struct for name, spec in EVIDENCE_INDICATORS.items()
                  for struct in self._typed_structs(
                      name, spec, tags=[prefix + name for prefix in _GRAPH_TYPE_PREFIXES], building=(name,))]
        # The walkers are generated, one function per struct type, so that each reads its properties as
        # attributes named in its code: a loop over a table of names calls getattr() per property, and was
        # measured a third slower. typed_walker_source shows what they do.
        self.typed_walker_source = "\n".join(self._walker_source)
        exec(compile(self.typed_walker_source, "<evidence walkers>", "exec"), self._walker_globals)  # noqa: S102
        self._typed_walkers = {struct: self._walker_globals[name] for struct, name in self._walker_names.items()}
        # An evidence list of known types whose properties have the shapes the table expects decodes into
        # structs that hold only the table's properties: the rest of each item is skipped by the decoder, not
        # built into dicts. Anything else (an unknown type, a number where the table expects text) fails
        # to decode, and the caller reads that alert as dicts.
        self.evidence_decoder = msgspec.json.Decoder(list[Union[tuple(tagged)]])

    def _compile(self, spec: dict[str, Rule], qualified_account: bool = False) -> _CompiledSpec:
        strings: list[tuple[str, Mapping]] = []
        tables: list[tuple[str, _CompiledSpec]] = []
        nested: list[tuple[str, str]] = []
        for name, rule in spec.items():
            key = parsed_key(name)
            parts = rule if isinstance(rule, tuple) else (rule,)
            qualified = QUALIFIED_ACCOUNT in parts
            if qualified and not any(isinstance(part, dict) for part in parts):
                tables.append((key, self._compile({}, qualified_account=True)))
            for part in parts:
                if part == QUALIFIED_ACCOUNT:
                    continue  # Read with the object's own table (above, or in the dict part beside it).
                if isinstance(part, str):
                    strings.append((key, self._memos[part]))
                elif isinstance(part, dict):
                    tables.append((key, self._compile(part, qualified_account=qualified)))
                elif isinstance(part, Nested):
                    if part.evidence_type not in EVIDENCE_INDICATORS:
                        raise ValueError(f"{name}: Nested({part.evidence_type!r}) is not in EVIDENCE_INDICATORS")
                    nested.append((key, part.evidence_type))
                else:
                    raise TypeError(f"{name}: a rule is a kind, dict, Nested(...) or tuple of those, not {part!r}")
        return tuple(strings), tuple(tables), tuple(nested), qualified_account

    def _typed_structs(self, name: str, spec: dict[str, Rule], *, tags: list[str] | None = None,
                       qualified_account: bool = False, building: tuple[str, ...] = ()) -> list[type]:
        """Struct types for objects read with `spec`, one per spelling of its tag (evidence in the list) or
        one untagged (objects inside evidence), and the source of the walker they share.

        `building` holds the evidence types being compiled around this one: a Nested reference back to one
        of them (activeDirectoryDomainEvidence.trustedDomains) is a cycle a struct type cannot hold, so that
        property is kept undecoded and the walker gives such an alert to the dict walk.
        """
        fields: dict[str, object] = {}
        body: list[str] = []
        for prop, rule in spec.items():
            if not prop.isidentifier() or keyword.iskeyword(prop):
                raise ValueError(f"{name}.{prop}: not a property name the typed walk can read")
            parts = rule if isinstance(rule, tuple) else (rule,)
            kinds = [part for part in parts if isinstance(part, str) and part != QUALIFIED_ACCOUNT]
            objects = [part for part in parts if isinstance(part, (dict, Nested))]
            if len(objects) > 1 or (kinds and objects):
                raise ValueError(f"{name}.{prop}: a property holds text or one kind of object, not {rule!r}")
            body += [f"    value = obj.{prop}", "    if value is not None:"]
            if kinds:
                fields[prop] = _TEXT
                body += ["        if type(value) is str:",
                         *[f"            out += memo_{kind}[value]" for kind in kinds],
                         "        else:",
                         "            for item in value:",
                         *[f"                out += memo_{kind}[item]" for kind in kinds]]
                continue
            target = objects[0] if objects else {}
            if isinstance(target, Nested) and target.evidence_type in building:
                fields[prop] = msgspec.Raw
                body[-1] = "    if value is not NO_RAW:"
                body.append(f"        raise Untyped('{name}.{prop} nests evidence of its own type')")
                continue
            if isinstance(target, Nested):
                sub, = self._typed_structs(target.evidence_type, EVIDENCE_INDICATORS[target.evidence_type],
                                           building=building + (target.evidence_type,))
                body += ["        for item in value if type(value) is list else (value,):",
                         f"            if item.odata_type in other_than_{target.evidence_type}:",
                         f"                raise Untyped('{name}.{prop} holds ' + item.odata_type)",
                         f"            {self._walker_names[sub]}(item, out)"]
            else:
                sub, = self._typed_structs(f"{name}.{prop}", target,
                                           qualified_account=QUALIFIED_ACCOUNT in parts, building=building)
                body += ["        if type(value) is list:",
                         "            for item in value:",
                         f"                {self._walker_names[sub]}(item, out)",
                         "        else:",
                         f"            {self._walker_names[sub]}(value, out)"]
            fields[prop] = Union[sub, list[sub], None]
        if qualified_account:
            fields.setdefault("accountName", _TEXT)
            fields.setdefault("domainName", _TEXT)
            body.append("    add_qualified_username(obj.accountName, obj.domainName, out)")
        if not tags:
            fields["odata_type"] = Union[str, None]  # What a nested object declares itself to be.
        walker = f"walk_{len(self._walker_source)}"
        self._walker_source.append("\n".join([f"def {walker}(obj, out):  # {name}", *(body or ["    pass"]), ""]))
        structs = [msgspec.defstruct(
            name.replace(".", "_"),
            [(prop, annotation, _NO_RAW if annotation is msgspec.Raw else None)
             for prop, annotation in fields.items()],
            rename={"odata_type": _ODATA_TYPE}, tag_field=_ODATA_TYPE if tag else None, tag=tag,
            gc=False,  # Decoded JSON holds no reference cycles: nothing for the collector to track.
        ) for tag in tags or [None]]
        self._walker_names.update(dict.fromkeys(structs, walker))
        return structs

    def scan_typed(self, evidence: list, out: list) -> None:
        """scan_evidence for what evidence_decoder made of an evidence list; raises Untyped (see there)."""
        walkers = self._typed_walkers
        for item in evidence:
            walkers[type(item)](item, out)

    def _declared_spec(self, obj: dict) -> _CompiledSpec | None:
        """The table of the evidence type `obj` declares, if graphlake knows it."""
        odata_type = obj.get(_ODATA_TYPE)
        # Not a string (a list, say): no type we know, and no reason to lose the alert over it.
        return self._by_odata_type.get(odata_type) if type(odata_type) is str else None

    def scan_evidence(self, evidence: list, out: list) -> None:
        """Extend `out` with the resolved form of every indicator in an alert's evidence list."""
        for item in evidence:
            if type(item) is dict:
                spec = self._declared_spec(item)
                if spec is None:
                    self.scan_by_key_name(item, None, out, 0)
                else:
                    self._walk(item, spec, out)

    # The hot loop. `type(x) is` rather than `x.__class__ is`: Python 3.11 specializes the call to type(),
    # not the attribute. A string property's value goes to its memo unchecked: a string is the common case,
    # and the memo answers None and other scalars itself.
    def _walk(self, obj: dict, spec: _CompiledSpec, out: list) -> None:
        get = obj.get
        strings, tables, nested, qualified_account = spec
        for key, memo in strings:
            try:
                out += memo[get(key)]
            except TypeError:  # A list (ipInterfaces, urls) or an object where the table expects a string.
                value = get(key)
                if type(value) is list:
                    for item in value:
                        if type(item) is str:
                            out += memo[item]
                elif type(value) is not dict:
                    raise  # Not the value's shape: a fault of ours, which must not pass for "no indicators".
        for key, table in tables:
            value = get(key)
            if type(value) is dict:
                self._walk(value, table, out)
            elif type(value) is list:
                for item in value:
                    if type(item) is dict:
                        self._walk(item, table, out)
        for key, evidence_type in nested:
            value = get(key)
            for item in (value,) if type(value) is dict else value if type(value) is list else ():
                if type(item) is dict:  # The object's own @odata.type wins over the table's expectation.
                    spec = self._declared_spec(item) or self._by_name[evidence_type]
                    self._walk(item, spec, out)
        if qualified_account:
            self._qualified_account(obj, out)

    def _qualified_account(self, account: dict, out: list) -> None:
        self._add_qualified_username(account.get(_ACCOUNT_NAME), account.get(_DOMAIN_NAME), out)

    def _add_qualified_username(self, name: object, domain: object, out: list) -> None:
        if type(name) is not str or type(domain) is not str:
            return
        name, domain = name.strip(), domain.strip()
        if name and domain and "\\" not in name:
            out += self._memos[USERNAME][f"{domain}\\{name}"]

    def scan_by_key_name(self, value: object, kind: str | None, out: list, depth: int = 0) -> None:
        """Collect indicators from free-form JSON by key name; `kind` is the one of the key `value` sits under.

        A nested object that declares a known evidence type is read with the table instead, so an unknown
        wrapper around known evidence loses nothing.
        """
        if depth > _SCAN_DEPTH_LIMIT:
            return
        if type(value) is str:
            if kind is not None:
                out += self._memos[kind][value]
        elif type(value) is list:
            for item in value:
                self.scan_by_key_name(item, kind, out, depth + 1)
        elif type(value) is dict:
            spec = self._declared_spec(value)
            if spec is not None:
                self._walk(value, spec, out)
                return
            for key, item in value.items():
                if item is not None and type(key) is str:
                    self.scan_by_key_name(item, kind_for_key(key), out, depth + 1)
            if _ACCOUNT_NAME in value and _DOMAIN_NAME in value:
                self._qualified_account(value, out)
