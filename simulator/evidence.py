"""Evidence items shaped like Microsoft's alertEvidence subtypes (microsoft.graph.security.*Evidence).

Field names and value types follow the v1.0 resource pages and the list example; the msgraph-sdk models parse every
item built here. Two types are deliberately outside what most consumers know: kubernetesPodEvidence and
aiAgentEvidence are documented but new, and aiPromptEvidence is invented, standing in for the types Graph keeps
adding (over 40 and counting), so consumers have to pass unknown evidence through.
"""

from __future__ import annotations

import random

from simulator.directory import AD_DOMAIN, DOMAIN, Device, Group, OAuthApp, SaasApp, User, guid, hexstr
from simulator.timefmt import TICKS_PER_SECOND, format_ticks

_NS = "#microsoft.graph.security."


def common(kind: str, created: str, roles: list[str], verdict: str = "suspicious", remediation: str = "none",
           detailed_roles: list[str] | None = None, tags: list[str] | None = None,
           remediation_details: str | None = None) -> dict:
    return {"@odata.type": _NS + kind, "createdDateTime": created, "verdict": verdict,
            "remediationStatus": remediation, "remediationStatusDetails": remediation_details, "roles": roles,
            "detailedRoles": detailed_roles or [], "tags": tags or []}


def user(created: str, who: User, roles: list[str], verdict: str = "suspicious",
         detailed_roles: list[str] | None = None) -> dict:
    item = common("userEvidence", created, roles, verdict, detailed_roles=detailed_roles)
    item["userAccount"] = who.account()
    return item


def ip(created: str, address: str, country: str | None, roles: list[str], verdict: str = "suspicious") -> dict:
    item = common("ipEvidence", created, roles, verdict)
    item["ipAddress"] = address
    item["countryLetterCode"] = country
    return item


def device(rng: random.Random, created: str, host: Device, roles: list[str], logged_on: list[User],
           detailed_roles: list[str] | None = None, verdict: str = "suspicious") -> dict:
    item = common("deviceEvidence", created, roles, verdict, detailed_roles=detailed_roles,
                  tags=["Tier 0"] if host.is_server else [])
    item.update({
        "firstSeenDateTime": format_ticks(host.first_seen_ticks), "mdeDeviceId": host.mde_id,
        "azureAdDeviceId": host.aad_id, "deviceDnsName": host.fqdn, "hostName": host.name.lower(),
        "ntDomain": AD_DOMAIN, "dnsDomain": f"corp.{DOMAIN}",
        "osPlatform": host.os_platform, "osBuild": host.os_build, "version": host.version,
        "healthStatus": rng.choice(("active", "active", "active", "inactive", "impairedCommunication")),
        "riskScore": rng.choice(("low", "medium", "high", "high")), "rbacGroupId": host.rbac_group_id,
        "rbacGroupName": host.rbac_group_name, "onboardingStatus": "onboarded",
        "defenderAvStatus": rng.choice(("updated", "updated", "notUpdated", "unknown")),
        "ipInterfaces": list(host.ips), "lastIpAddress": host.ips[0], "lastExternalIpAddress": None,
        "loggedOnUsers": [{"accountName": u.account_name, "domainName": AD_DOMAIN} for u in logged_on],
        "vmMetadata": None,
    })
    return item


def file_details(rng: random.Random, name: str, path: str | None, publisher: str | None = None,
                 size: int | None = None) -> dict:
    # About one in ten products reports hashes in upper case; consumers must canonicalise before joining.
    upper = rng.random() < 0.1
    sha1, sha256, md5 = hexstr(rng, 40), hexstr(rng, 64), hexstr(rng, 32)
    if upper:
        sha1, sha256, md5 = sha1.upper(), sha256.upper(), md5.upper()
    if size is None:
        size = rng.randrange(4096, 9_000_000)
    signed = publisher == "Microsoft Corporation"
    return {"fileName": name, "filePath": path, "fileSize": size, "filePublisher": publisher, "sha1": sha1,
            "sha256": sha256, "md5": md5, "signer": publisher,
            "issuer": "Microsoft Code Signing PCA 2011" if signed else None}


def file(created: str, details: dict, host: Device | None, roles: list[str], verdict: str = "malicious",
         remediation: str = "none", detection: str = "detected", detailed_roles: list[str] | None = None) -> dict:
    item = common("fileEvidence", created, roles, verdict, remediation, detailed_roles=detailed_roles)
    item["detectionStatus"] = detection
    item["mdeDeviceId"] = host.mde_id if host else None
    item["fileDetails"] = details
    return item


def process(rng: random.Random, created: str, started_ticks: int, host: Device, image: dict, parent: dict,
            command_line: str, account: dict, roles: list[str], verdict: str = "suspicious",
            remediation: str = "none", detection: str = "detected") -> dict:
    item = common("processEvidence", created, roles, verdict, remediation)
    item.update({
        "processId": rng.randrange(400, 40000), "parentProcessId": rng.randrange(4, 4000),
        "processCommandLine": command_line, "processCreationDateTime": format_ticks(started_ticks),
        "parentProcessCreationDateTime": format_ticks(started_ticks - rng.randrange(1, 86400) * TICKS_PER_SECOND),
        "detectionStatus": detection, "mdeDeviceId": host.mde_id, "imageFile": image,
        "parentProcessImageFile": parent, "userAccount": account,
    })
    return item


def registry_key(created: str, hive: str, key: str, roles: list[str]) -> dict:
    item = common("registryKeyEvidence", created, roles)
    item["registryHive"] = hive
    item["registryKey"] = key
    return item


def registry_value(created: str, host: Device, hive: str, key: str, name: str, value: str, value_type: str,
                   roles: list[str]) -> dict:
    item = common("registryValueEvidence", created, roles)
    item.update({"mdeDeviceId": host.mde_id, "registryHive": hive, "registryKey": key, "registryValueName": name,
                 "registryValue": value, "registryValueType": value_type})
    return item


def url(created: str, address: str, roles: list[str], verdict: str = "suspicious") -> dict:
    item = common("urlEvidence", created, roles, verdict)
    item["url"] = address
    return item


def mailbox(created: str, who: User, roles: list[str], verdict: str = "unknown") -> dict:
    item = common("mailboxEvidence", created, roles, verdict)
    item.update({"displayName": who.display_name, "primaryAddress": who.upn, "upn": who.upn,
                 "userAccount": who.account()})
    return item


def sender(display_name: str, address: str) -> dict:
    return {"displayName": display_name, "domainName": address.split("@", 1)[1], "emailAddress": address}


def analyzed_message(rng: random.Random, created: str, received_ticks: int, recipient: User, from_addr: str,
                     from_name: str, sender_ip: str, subject: str, urls: list[str], attachments: int,
                     threats: list[str], delivery: tuple[str, str], verdict: str = "malicious",
                     remediation: str = "none") -> dict:
    item = common("analyzedMessageEvidence", created, ["contextual"], verdict, remediation)
    network_id = guid(rng)
    item.update({
        "networkMessageId": network_id,
        "internetMessageId": f"<{hexstr(rng, 24)}@{from_addr.split('@', 1)[1]}>",
        "subject": subject, "language": "en", "senderIp": sender_ip,
        "recipientEmailAddress": recipient.upn, "antiSpamDirection": "inbound",
        "deliveryAction": delivery[0], "deliveryLocation": delivery[1],
        "p1Sender": sender(from_name, from_addr), "p2Sender": sender(from_name, from_addr),
        "receivedDateTime": format_ticks(received_ticks), "threats": threats,
        "threatDetectionMethods": rng.sample(["urlDetonationReputation", "fingerprintMatching", "spoofDmarc",
                                              "generalFiltering", "urlMaliciousReputation"], 2),
        "urls": urls, "urlCount": len(urls), "attachmentsCount": attachments,
        "urn": f"urn:MailEntity:{hexstr(rng, 32)}",
    })
    return item


def mail_cluster(rng: random.Random, created: str, from_addr: str, count: int) -> dict:
    item = common("mailClusterEvidence", created, ["contextual"], "malicious")
    ids = [guid(rng) for _ in range(min(count, 5))]
    item.update({
        "clusterBy": "SenderEmailAddress", "clusterByValue": from_addr, "emailCount": count,
        "networkMessageIds": ids,
        "query": f"(SenderEmailAddress:\"{from_addr}\") AND (ThreatTypes:Phish)",
        "urn": f"urn:MailClusterEntity:{hexstr(rng, 32)}",
    })
    return item


def cloud_application(created: str, app: SaasApp, roles: list[str]) -> dict:
    item = common("cloudApplicationEvidence", created, roles, "unknown")
    item.update({"appId": app.app_id, "displayName": app.name, "instanceId": app.instance_id,
                 "instanceName": app.name, "saasAppId": app.app_id})
    return item


def oauth_application(created: str, app: OAuthApp, roles: list[str], verdict: str = "suspicious") -> dict:
    item = common("oauthApplicationEvidence", created, roles, verdict)
    item.update({"appId": app.app_id, "displayName": app.name, "objectId": app.object_id,
                 "publisher": app.publisher})
    return item


def security_group(created: str, group: Group, roles: list[str]) -> dict:
    item = common("securityGroupEvidence", created, roles, "unknown")
    item.update({"securityGroupId": group.object_id, "displayName": group.name,
                 "distinguishedName": f"CN={group.name},CN=Users,DC=corp,DC=contoso,DC=com",
                 "friendlyName": group.name, "sid": group.sid, "activeDirectoryObjectGuid": group.ad_guid})
    return item


def azure_resource(created: str, resource_id: str, resource_type: str, roles: list[str]) -> dict:
    item = common("azureResourceEvidence", created, roles, "unknown")
    item.update({"resourceId": resource_id, "resourceName": resource_id.rsplit("/", 1)[1],
                 "resourceType": resource_type})
    return item


def kubernetes_pod(rng: random.Random, created: str, cluster_resource: dict, pod_ip: str, image: str) -> dict:
    item = common("kubernetesPodEvidence", created, ["compromised"])
    pod = f"web-frontend-{hexstr(rng, 10)}-{hexstr(rng, 5)}"
    namespace = {"@odata.type": _NS + "kubernetesNamespaceEvidence", "name": "storefront", "labels": {},
                 "cluster": {"@odata.type": _NS + "kubernetesClusterEvidence", "name": "aks-prod-weu",
                             "distribution": "AKS", "platform": "aks", "version": "1.31.2",
                             "cloudResource": cluster_resource}}
    container = {"@odata.type": _NS + "containerEvidence", "name": "frontend",
                 "containerId": hexstr(rng, 64), "isPrivileged": True, "command": ["/bin/sh"],
                 "args": ["-c", "sleep infinity"],
                 "image": {"@odata.type": _NS + "containerImageEvidence", "imageId": image,
                           "digestImage": None, "containerRegistry": None}}
    item.update({"name": pod, "namespace": namespace, "labels": {"app": "web-frontend"},
                 "podIp": {"@odata.type": _NS + "ipEvidence", "ipAddress": pod_ip},
                 "containers": [container], "initContainers": [], "ephemeralContainers": [],
                 "controller": None, "serviceAccount": None})
    return item


def ai_agent(rng: random.Random, created: str, name: str) -> dict:
    item = common("aiAgentEvidence", created, ["contextual"], "unknown")
    item.update({"agentId": guid(rng), "agentName": name, "hostingPlatformType": "azureAIFoundry",
                 "instructions": "Answer employee questions about travel and expense policy."})
    return item


def ai_prompt(rng: random.Random, created: str, prompt: str) -> dict:
    """Invented type (not in any Graph schema): consumers must keep evidence they cannot type."""
    item = common("aiPromptEvidence", created, ["attacker"], "malicious")
    item.update({"promptId": guid(rng), "promptText": prompt, "promptShieldsResult": "jailbreakDetected",
                 "tokenCount": rng.randrange(40, 900)})
    return item
