"""Canonical forms of indicator values, shared by the normalizer and by `graphlake search`.

An analyst's search term and a value found in an alert meet only if both pass through the same function here, so
every rule below is a contract with the data already in the lake: changing one means re-normalizing.
"""

from __future__ import annotations

import binascii
import ipaddress
import re

_HASH_KIND_BY_LENGTH = {32: "md5", 40: "sha1", 64: "sha256"}

_ASCII_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_ASCII_DOMAIN = re.compile(rf"(?:{_ASCII_LABEL}\.)*{_ASCII_LABEL}")
_DIGITS_AND_DOTS = re.compile(r"[0-9.]+")
# Exactly what ipaddress.IPv4Address accepts (0-255, no leading zeros), without its cost; the text is
# then already canonical.
_IPV4_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_IPV4_OCTET}(?:\.{_IPV4_OCTET}){{3}}")
# IPv6 text already in the form `ipaddress` prints but for case (no leading zeros, and every zero group
# inside a "::" that stands for two or more), which is how Graph reports addresses: only lower-cased rather
# than parsed and printed again. A leading "::" (IPv4-mapped and other special forms) and any zero group take
# the full path.
_NONZERO_HEXTET = r"[1-9a-f][0-9a-f]{0,3}"
_CANONICAL_IPV6_FULL = re.compile(rf"{_NONZERO_HEXTET}(?::{_NONZERO_HEXTET}){{7}}")
_CANONICAL_IPV6_COMPRESSED = re.compile(
    rf"{_NONZERO_HEXTET}(?::{_NONZERO_HEXTET}){{0,5}}::(?:{_NONZERO_HEXTET}(?::{_NONZERO_HEXTET}){{0,4}})?")
_EMAIL_LOCAL_FORBIDDEN = re.compile(r"[\s<>@,]")
_URL_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_SID = re.compile(r"s-1(?:-[0-9]+)+")
_DEFENDER_DEVICE_ID = re.compile(r"[0-9a-f]{40}")
_GUID_HEX = re.compile(r"[0-9a-f]{32}")


def canonical_ip(value: str) -> str | None:
    """IPv4 or IPv6 address in `ipaddress`'s text form (RFC 5952: compressed, lower-case); None if not an address.

    An IPv4-mapped IPv6 address (`::ffff:203.0.113.5`) becomes the IPv4 address: it names the same host that other
    alerts report in IPv4 form. Zero-padded IPv4 (`010.0.0.1`) is ambiguous (octal or decimal) and rejected.
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    if _IPV4.fullmatch(text):
        return text
    if ":" not in text:
        return None
    if text[:1] == "[" and text[-1:] == "]":
        text = text[1:-1]
    lowered = text.lower()
    if _CANONICAL_IPV6_FULL.fullmatch(lowered) or (
            _CANONICAL_IPV6_COMPRESSED.fullmatch(lowered) and lowered.count(":") - lowered.endswith("::") <= 6):
        return lowered  # Six groups at most beside "::", so that it stands for two or more.
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        return None
    return str(address.ipv4_mapped or address)


def address_noise(ip: str) -> str | None:
    """What kind of address a canonical one (from `canonical_ip`) is when it names no particular host: loopback,
    link-local, unspecified, broadcast (255.255.255.255, Defender for Office 365's placeholder senderIp), multicast
    or reserved; None for a host's address.

    Every device has such addresses, or products write them where they know none, so as indicators they would tie
    each alert to every other one: they stay in the evidence as sent but are not indicators. IPv4-mapped forms were
    already made IPv4 by `canonical_ip`.
    """
    address = ipaddress.ip_address(ip)
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_unspecified:
        return "unspecified"
    if address == _BROADCAST:
        return "broadcast"
    if address.is_multicast:
        return "multicast"
    if address.version == 4 and address in _RESERVED_V4:
        return "reserved"
    return None


_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
_RESERVED_V4 = ipaddress.IPv4Network("240.0.0.0/4")
# Principals every Windows machine has (LocalSystem, LocalService, NetworkService), by SID and by name: like
# loopback addresses they would tie every endpoint alert to every other one.
WELL_KNOWN_LOCAL_SIDS = frozenset({"S-1-5-18", "S-1-5-19", "S-1-5-20"})
WELL_KNOWN_LOCAL_ACCOUNTS = frozenset({
    "nt authority\\system", "nt authority\\local service", "nt authority\\network service",
    "system", "local service", "network service", "localsystem", "localservice", "networkservice"})


def is_well_known_local_principal(canonical_value: str) -> bool:
    """Whether a canonical username or actor id names one of the machine's own built-in principals."""
    return canonical_value in WELL_KNOWN_LOCAL_SIDS or canonical_value in WELL_KNOWN_LOCAL_ACCOUNTS


def canonical_domain(value: str) -> str | None:
    """Host or domain name, lower-case, no trailing dot, punycode decoded; None if not a DNS name.

    Punycode is decoded as Panther does, so `xn--bcher-kva.example` and `bücher.example` are one value. All digits
    and dots is an address, not a domain. Single-label names (`desktop-7`) are accepted: they are host names.
    Callers that need a dotted DNS domain (an AD domain field that may hold a NetBIOS name) check for a dot.
    """
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if text[-1:] == ".":
        text = text[:-1]
    if not text or len(text) > 253 or _DIGITS_AND_DOTS.fullmatch(text):
        return None
    if text.isascii():
        if not _ASCII_DOMAIN.fullmatch(text):
            return None
        return _decode_punycode(text) if "xn--" in text else text
    return text if _is_unicode_domain(text) else None


def _decode_punycode(domain: str) -> str:
    labels = []
    for label in domain.split("."):
        if label.startswith("xn--"):
            try:
                label = label[4:].encode("ascii").decode("punycode").lower()
            except UnicodeError:
                pass  # Not valid IDNA, but still a well-formed DNS label: keep it as sent.
        labels.append(label)
    return ".".join(labels)


def _is_unicode_domain(text: str) -> bool:
    for label in text.split("."):
        if not 0 < len(label) <= 63 or label[0] == "-" or label[-1] == "-":
            return False
        if not all(char.isalnum() or char in "-_" for char in label):
            return False
    return True


def canonical_email(value: str) -> str | None:
    """`local@domain`, lower-case, domain canonical; accepts a `mailto:` prefix and `<...>` brackets.

    The local part is case-sensitive in theory; no mail system we meet treats it so, and Graph reports one mailbox
    in several casings.
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text[:1] == "<" and text[-1:] == ">":
        text = text[1:-1].strip()
    if text[:7].lower() == "mailto:":
        text = text[7:]
    local, at, domain = text.rpartition("@")
    if not at or not local or _EMAIL_LOCAL_FORBIDDEN.search(local):
        return None
    domain = canonical_domain(domain)
    if domain is None or "." not in domain:
        return None
    return f"{local.lower()}@{domain}"


def canonical_hash(value: str) -> tuple[str, str] | None:
    """(`md5` | `sha1` | `sha256`, lower-case hex) by length; None if not a hex digest.

    The length is unambiguous where field names are not (`sha256Ac`, once misspelt `sha265Ac`), as Panther's tags.
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    kind = _HASH_KIND_BY_LENGTH.get(len(text))
    if kind is None:
        return None
    try:
        # Accepts exactly an even number of ASCII hex digits (the lengths above are even).
        binascii.unhexlify(text)
    except ValueError:  # binascii.Error is one; non-ASCII text raises the plain kind.
        return None
    return kind, text.lower()


def canonical_username(value: str) -> str | None:
    """Account name, UPN or `DOMAIN\\account`, trimmed and lower-cased; None if empty.

    Panther keeps usernames as sent; Windows and Entra names are case-insensitive and Graph reports one account as
    `ALICE`, `alice` and `Alice` across evidence items. The original spelling stays in the `evidence` column.
    """
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    return text or None


def canonical_actor_id(value: str) -> str | None:
    """Entra/AD object GUID, SID or Defender device id in canonical case; None for other shapes.

    GUIDs and Defender device ids (40 hex digits) lower-case without braces, SIDs with an upper-case `S-`; a GUID
    written as 32 hex digits without dashes (the Activity log's `authorization.evidence.principalId`) with its dashes,
    so it meets the same object's id from everywhere else. Other shapes are rejected, so a free-form field that
    happens to be named `objectId` cannot fill the column with noise.
    """
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if text[:1] == "{" and text[-1:] == "}":
        text = text[1:-1]
    if text[:2] == "s-":
        return "S" + text[1:] if _SID.fullmatch(text) else None
    if len(text) == 32 and _GUID_HEX.fullmatch(text):
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
    pattern = _DEFENDER_DEVICE_ID if len(text) == 40 else _GUID
    return text if pattern.fullmatch(text) else None


def canonical_url(value: str) -> str | None:
    """URL with scheme and host lower-cased (IPv6 hosts canonical, trailing dot dropped), rest as sent.

    A value without `scheme://` is accepted when it starts with a dotted host (`contoso.com/login`), as
    Defender for Office reports such URLs; None when no host can be found.
    """
    parsed = split_url(value)
    return None if parsed is None else parsed[0]


def url_host(value: str) -> str | None:
    """The host of a URL as a canonical IP address or domain; None if the URL has no valid host."""
    parsed = split_url(value)
    return None if parsed is None else parsed[1]


def split_url(value: str) -> tuple[str, str, bool] | None:
    """(canonical URL, canonical host, whether the host is an IP address) in one pass, or None."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    scheme, separator, rest = text.partition("://")
    if separator:
        scheme = scheme.lower()
        if not _URL_SCHEME.fullmatch(scheme):
            return None
        prefix = scheme + "://"
    else:
        prefix, rest = "", text
    authority_end = len(rest)
    for delimiter in "/?#":
        position = rest.find(delimiter)
        if position != -1 and position < authority_end:
            authority_end = position
    authority, path = rest[:authority_end], rest[authority_end:]
    userinfo, at, host_port = authority.rpartition("@")
    if host_port[:1] == "[":
        bracket_end = host_port.find("]")
        if bracket_end == -1:
            return None
        raw_host, port = host_port[1:bracket_end], host_port[bracket_end + 1:]
    else:
        raw_host, colon, port_digits = host_port.partition(":")
        port = colon + port_digits
    if port and not (port[0] == ":" and port[1:].isdigit()):
        return None
    host = canonical_ip(raw_host)
    is_ip = host is not None
    if is_ip:
        host_text = f"[{host}]" if ":" in host else host
    else:
        host = canonical_domain(raw_host)
        if host is None or (not separator and "." not in host):
            return None
        host_text = raw_host.strip().lower().rstrip(".")
    return f"{prefix}{userinfo}{at}{host_text}{port}{path}", host, is_ip


# The p_any_* columns: each name written here once, for the normalizer, the lake schema, the rule_matches table
# and search.
IP_ADDRESSES = "p_any_ip_addresses"
DOMAIN_NAMES = "p_any_domain_names"
USERNAMES = "p_any_usernames"
EMAILS = "p_any_emails"
HASHES = {"md5": "p_any_md5_hashes", "sha1": "p_any_sha1_hashes", "sha256": "p_any_sha256_hashes"}
URLS = "p_any_urls"
ACTOR_IDS = "p_any_actor_ids"
# In the order the tables hold them.
INDICATOR_COLUMNS = (IP_ADDRESSES, DOMAIN_NAMES, USERNAMES, EMAILS, *HASHES.values(), URLS, ACTOR_IDS)


def canonical_forms(value: str) -> dict[str, str]:
    """Every indicator column a search term could be stored in, with its canonical form there.

    This is what `graphlake search` needs for a term the analyst did not label: `203.0.113.5` is looked up
    in p_any_ip_addresses only, `alice@contoso.com` in p_any_emails and p_any_usernames (UPNs are both).
    Forty hex digits are both a SHA-1 and a Defender device id, so such a term gets both columns.
    """
    forms: dict[str, str] = {}
    ip = canonical_ip(value)
    if ip is not None:
        forms[IP_ADDRESSES] = ip
        return forms
    hashed = canonical_hash(value)
    if hashed is not None:
        forms[HASHES[hashed[0]]] = hashed[1]
    email = canonical_email(value)
    if email is not None:
        forms[EMAILS] = email
    actor_id = canonical_actor_id(value)
    if actor_id is not None:
        forms[ACTOR_IDS] = actor_id
    if isinstance(value, str) and "://" in value:
        url = canonical_url(value)
        if url is not None:
            forms[URLS] = url
    elif hashed is None and email is None and actor_id is None:
        domain = canonical_domain(value)
        if domain is not None:
            forms[DOMAIN_NAMES] = domain
    username = canonical_username(value)
    if username is not None and hashed is None and actor_id is None:
        forms[USERNAMES] = username
    return forms
