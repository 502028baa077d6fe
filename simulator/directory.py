"""The simulated organisation: users, devices, groups, apps and the outside addresses that show up in alerts.

Everything is fake: made-up names, contoso.com / fabrikam.com, RFC 5737 / RFC 3849 documentation addresses.
Alerts draw from a fixed pool so the same user or device recurs across alerts, as in a real tenant.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass

DOMAIN = "contoso.com"
AD_DOMAIN = "CONTOSO"
PARTNER_DOMAIN = "fabrikam.com"

_FIRST = ("Avery", "Blake", "Casey", "Dana", "Emery", "Finley", "Harper", "Indigo", "Jordan", "Kendall", "Logan",
          "Morgan", "Noel", "Oakley", "Parker", "Quinn", "Reese", "Rowan", "Sage", "Tatum", "Umber", "Vesper",
          "Wren", "Yael", "Zion")
_LAST = ("Ashgrove", "Brindlewood", "Calloway", "Dunmore", "Elderbrook", "Fairhollow", "Greystone", "Hollins",
         "Ivesdale", "Juniper", "Kestrel", "Larkspur", "Merriweather", "Northcott", "Oakhaven", "Pennywhistle",
         "Quillfeather", "Ravensworth", "Stonebridge", "Thistlewood")
_COUNTRIES = ("US", "US", "US", "GB", "DE", "NL", "FR", "IE", "NG", "BR", "RU", "CN", "KP", "IR", "VN", "RO", "UA")


def guid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def hexstr(rng: random.Random, chars: int) -> str:
    return f"{rng.getrandbits(chars * 4):0{chars}x}"


@dataclass(frozen=True, slots=True)
class User:
    account_name: str
    display_name: str
    upn: str
    sid: str
    aad_id: str
    ad_guid: str

    def account(self) -> dict:
        return {"accountName": self.account_name, "domainName": AD_DOMAIN, "userSid": self.sid,
                "azureAdUserId": self.aad_id, "userPrincipalName": self.upn, "displayName": self.display_name,
                "activeDirectoryObjectGuid": self.ad_guid}


@dataclass(frozen=True, slots=True)
class Device:
    name: str
    fqdn: str
    mde_id: str
    aad_id: str | None
    os_platform: str
    os_build: int
    version: str
    ips: tuple[str, ...]
    first_seen_ticks: int
    rbac_group_id: int
    rbac_group_name: str
    is_server: bool


@dataclass(frozen=True, slots=True)
class Group:
    object_id: str
    name: str
    sid: str
    ad_guid: str


@dataclass(frozen=True, slots=True)
class OAuthApp:
    app_id: str
    object_id: str
    name: str
    publisher: str


@dataclass(frozen=True, slots=True)
class SaasApp:
    app_id: int
    name: str
    instance_id: int


class Directory:
    """Built once per tenant from its rng."""

    def __init__(self, rng: random.Random, epoch_ticks: int, users: int = 240, devices: int = 160) -> None:
        domain_sid = f"S-1-5-21-{rng.randrange(10**9, 4 * 10**9)}-{rng.randrange(10**9, 4 * 10**9)}-" \
                     f"{rng.randrange(10**9, 4 * 10**9)}"
        seen: set[str] = set()
        self.users: list[User] = []
        while len(self.users) < users:
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            suffix = ""
            while f"{first}.{last}{suffix}" in seen:
                suffix = str(rng.randrange(2, 99))
            seen.add(f"{first}.{last}{suffix}")
            self.users.append(User(
                account_name=f"{first[0]}{last}{suffix}".lower(), display_name=f"{first} {last}",
                upn=f"{first}.{last}{suffix}@{DOMAIN}".lower(), sid=f"{domain_sid}-{rng.randrange(1100, 90000)}",
                aad_id=guid(rng), ad_guid=guid(rng)))
        self.analysts = [u.upn for u in self.users[:6]]
        self.admins = self.users[6:14]
        self.honeytokens = [User(account_name="svc-backup-legacy", display_name="svc-backup-legacy",
                                 upn=f"svc-backup-legacy@{DOMAIN}", sid=f"{domain_sid}-{rng.randrange(1100, 90000)}",
                                 aad_id=guid(rng), ad_guid=guid(rng))]

        self.devices: list[Device] = []
        for i in range(devices):
            server = i < devices // 8
            name = f"CONTOSO-{'SRV' if server else 'WS'}-{rng.randrange(100, 9999):04d}"
            if i < 2:
                name = f"CONTOSO-DC0{i + 1}"
            platform, build, version = (("WindowsServer2022", 20348, "2022") if server else
                                        rng.choice((("Windows11", 22631, "23H2"), ("Windows11", 26100, "24H2"),
                                                    ("Windows10", 19045, "22H2"))))
            ips = (f"10.{rng.randrange(1, 40)}.{rng.randrange(0, 255)}.{rng.randrange(2, 254)}",)
            if rng.random() < 0.4:
                ips += (f"fe80::{rng.getrandbits(16):x}:{rng.getrandbits(16):x}:{rng.getrandbits(16):x}:"
                        f"{rng.getrandbits(16):x}",)
            group = (12, "Servers - Tier 0") if server else rng.choice(((31, "Workstations"), (75, "UnassignedGroup")))
            self.devices.append(Device(
                name=name, fqdn=f"{name.lower()}.corp.{DOMAIN}", mde_id=hexstr(rng, 40),
                aad_id=None if server else guid(rng), os_platform=platform, os_build=build, version=version,
                ips=ips, first_seen_ticks=epoch_ticks - rng.randrange(30, 900) * 86400 * 10**7,
                rbac_group_id=group[0], rbac_group_name=group[1], is_server=server))
        self.domain_controllers = self.devices[:2]
        self.servers = [d for d in self.devices if d.is_server]
        self.workstations = [d for d in self.devices if not d.is_server]

        self.groups = [Group(object_id=guid(rng), name=name, sid=f"{domain_sid}-{rid}", ad_guid=guid(rng))
                       for name, rid in (("Domain Admins", 512), ("Enterprise Admins", 519),
                                         ("Schema Admins", 518), ("Backup Operators", 551))]
        self.oauth_apps = [OAuthApp(app_id=guid(rng), object_id=guid(rng), name=name, publisher=publisher)
                           for name, publisher in (("MailSorter Pro", "Unverified"),
                                                   ("PDF Converter Online", "Unverified"),
                                                   ("Contoso HR Sync", "Contoso"),
                                                   ("Fabrikam CRM Connector", "Fabrikam"))]
        self.subscription_id = guid(rng)
        self.saas_apps = [SaasApp(app_id=app_id, name=name, instance_id=0)
                          for app_id, name in ((11161, "Microsoft Office 365"), (20893, "Microsoft Exchange Online"),
                                               (15600, "Microsoft OneDrive for Business"),
                                               (20892, "Microsoft SharePoint Online"), (11522, "Box"))]

    def user(self, rng: random.Random) -> User:
        return rng.choice(self.users)

    def device(self, rng: random.Random) -> Device:
        return rng.choice(self.devices)

    def workstation(self, rng: random.Random) -> Device:
        return rng.choice(self.workstations)

    def server(self, rng: random.Random) -> Device:
        return rng.choice(self.servers)


def external_ip(rng: random.Random) -> str:
    """A documentation address; one in four is IPv6, sometimes written non-canonically as real payloads are."""
    if rng.random() < 0.75:
        net = rng.choice(("203.0.113", "198.51.100", "192.0.2"))
        return f"{net}.{rng.randrange(1, 255)}"
    address = ipaddress.IPv6Address((0x20010DB8 << 96) | rng.getrandbits(64))
    style = rng.random()
    if style < 0.6:
        return str(address)
    if style < 0.8:
        return str(address).upper()
    return address.exploded


def country(rng: random.Random) -> str:
    return rng.choice(_COUNTRIES)
