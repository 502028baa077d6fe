#!/usr/bin/env python3
"""A stand-in for the az CLI: answers what deploy.sh and grant-graph-permission.sh ask, and logs every call.

tests/infra/test_scripts.py installs it as `az` on the scripts' PATH. Standard library only. Environment:
FAKE_AZ_STATE, a folder for its state (calls.log, one JSON argument list a line; the resource group; what was
published and granted); FAKE_AZ_LOGGED_OUT, FAKE_AZ_DENY and FAKE_AZ_DENY_READ make `az account show`, the Graph
POST and the Graph read of the identity's assignments fail as Azure does; FAKE_AZ_DENY_ACTIVITY and
FAKE_AZ_DENY_ENTRA refuse the subscription's and the tenant's diagnostic setting for a missing role, and
FAKE_AZ_FAIL_ENTRA refuses the tenant's for another reason (the diagnostic settings made are kept in the state's
diag.activity and diag.entra); FAKE_AZ_HANG_PUBLISH=N makes the first N
config-zip calls hang, as az can in its health poll after the upload (each writes its process id to the state's
hung file first; it gives up after 5 minutes, so a test that fails leaves nothing running for long).
"""
import json, os, sys, time
state_dir = os.environ["FAKE_AZ_STATE"]
args = sys.argv[1:]
line = " ".join(args)
with open(os.path.join(state_dir, "calls.log"), "a") as log:
    log.write(json.dumps(args) + "\n")

def state(name, default=""):
    path = os.path.join(state_dir, name)
    return open(path).read() if os.path.exists(path) else default

def put(name, value):
    open(os.path.join(state_dir, name), "w").write(value)

def opt(name):
    return args[args.index(name) + 1] if name in args else None

PRINCIPAL = "11111111-2222-3333-4444-555555555555"
GRAPH_SP = "99999999-8888-7777-6666-555555555555"
ROLE_ID = "472e4a4d-bb4a-4026-98d1-0b0d74cb74a5"
OUTPUTS = {"functionAppName": "func-graphlake-x", "identityName": "id-graphlake-x",
           "identityPrincipalId": PRINCIPAL, "identityClientId": "cid", "storageAccountName": "stgraphlakex",
           "lakeUrl": "https://stgraphlakex.blob.core.windows.net/lake",
           "lakeContainerId": "/subscriptions/s/resourceGroups/rg-test/providers/Microsoft.Storage/storageAccounts/"
                              "stgraphlakex/blobServices/default/containers/lake",
           "stateUrl": "https://stgraphlakex.blob.core.windows.net/graphlake-state",
           "eventHubNamespace": "evhns-x.servicebus.windows.net", "eventHubName": "graph-alerts",
           "appInsightsName": "appi-x", "graphEndpoint": "https://graph.microsoft.com",
           "logsEventHubName": "azure-monitor-logs",
           "diagnosticsRuleId": "/subscriptions/s/resourceGroups/rg-test/providers/Microsoft.EventHub/namespaces/"
                                "evhns-x/eventhubs/azure-monitor-logs/authorizationRules/azure-monitor-send"}
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"

if args[:1] == ["version"]:
    print("2.70.0")
elif args[:2] == ["account", "show"]:
    if os.environ.get("FAKE_AZ_LOGGED_OUT"):
        print("ERROR: Please run 'az login' to setup account.", file=sys.stderr)
        sys.exit(1)
    print(SUBSCRIPTION if opt("--query") == "id" else f"Test subscription\t{SUBSCRIPTION}")
elif args[:2] == ["group", "exists"]:
    print("true" if state("group") else "false")
elif args[:2] == ["group", "create"]:
    put("group", opt("--location"))
elif args[:2] == ["group", "show"]:
    query = opt("--query")
    if query == "location":
        print(state("group"))
    elif query and query.startswith("tags."):
        print(state(f"tag.{query[5:]}"))
elif args[:2] == ["group", "update"]:
    name, value = opt("--set").removeprefix("tags.").split("=", 1)
    put(f"tag.{name}", value)
elif args[:2] == ["cloud", "show"]:
    print("https://management.azure.com/")
elif args[:4] == ["monitor", "diagnostic-settings", "subscription", "create"]:
    assert opt("--subscription") == SUBSCRIPTION and opt("--location"), line
    if os.environ.get("FAKE_AZ_DENY_ACTIVITY"):
        print(f"ERROR: (AuthorizationFailed) The client 'deployer@contoso.com' does not have authorization to perform "
              f"action 'microsoft.insights/diagnosticSettings/write' over scope '/subscriptions/{SUBSCRIPTION}'",
              file=sys.stderr)
        sys.exit(1)
    put("diag.activity", json.dumps({"name": opt("--name"), "eventHubName": opt("--event-hub-name"),
                                     "rule": opt("--event-hub-auth-rule"), "logs": json.loads(opt("--logs"))}))
elif args[:1] == ["rest"] and opt("--url").startswith("https://management.azure.com/providers/microsoft.aadiam/"):
    assert opt("--method") == "put" and opt("--url").endswith("?api-version=2017-04-01"), line
    if os.environ.get("FAKE_AZ_DENY_ENTRA"):
        print("ERROR: Forbidden({\"error\":{\"code\":\"AuthorizationFailed\",\"message\":\"The client "
              "'deployer@contoso.com' does not have authorization to perform action "
              "'microsoft.aadiam/diagnosticSettings/write' over scope '/providers/microsoft.aadiam'\"}})",
              file=sys.stderr)
        sys.exit(1)
    if os.environ.get("FAKE_AZ_FAIL_ENTRA"):
        print("ERROR: Bad Request({\"code\":\"BadRequest\",\"message\":\"The event hub namespace belongs to a "
              "subscription of another tenant\"})", file=sys.stderr)
        sys.exit(1)
    put("diag.entra", json.dumps({"url": opt("--url"), **json.loads(opt("--body"))}))
elif args[:3] == ["deployment", "group", "create"]:
    assert opt("--template-file").endswith("main.bicep")
    print(json.dumps({k: {"type": "String", "value": v} for k, v in OUTPUTS.items()}))
elif args[:3] == ["deployment", "group", "what-if"]:
    assert opt("--template-file").endswith("main.bicep")
    print("Resource changes: 31 to create.")
elif args[:3] == ["deployment", "group", "show"]:
    key = opt("--query").split(".")[2]
    print(OUTPUTS[key])
elif args[:3] == ["functionapp", "function", "list"]:
    print("2" if state("published") else "0")
elif args[:4] == ["functionapp", "deployment", "source", "config-zip"]:
    assert opt("--build-remote") == "true", line
    assert os.path.getsize(opt("--src")) > 0
    hung = state("hung").split()
    if len(hung) < int(os.environ.get("FAKE_AZ_HANG_PUBLISH", "0")):
        put("hung", " ".join([*hung, str(os.getpid())]))
        time.sleep(300)
        sys.exit(1)
    put("published", state("published") + "x")
elif args[:1] == ["rest"]:
    url, method = opt("--url"), opt("--method")
    assert opt("--resource") == "https://graph.microsoft.com", line
    if method == "get" and "servicePrincipals(appId='00000003-0000-0000-c000-000000000000')" in url:
        print(GRAPH_SP)
    elif method == "get" and url.endswith(f"/servicePrincipals/{PRINCIPAL}/appRoleAssignments"):
        if os.environ.get("FAKE_AZ_DENY_READ"):
            print("ERROR: Forbidden({\"error\":{\"code\":\"Authorization_RequestDenied\",\"message\":"
                  "\"Insufficient privileges to complete the operation.\"}})", file=sys.stderr)
            sys.exit(1)
        print(state("granted"))
    elif method == "get" and f"/servicePrincipals/{GRAPH_SP}?" in url:
        print(ROLE_ID if "value=='SecurityAlert.Read.All'" in opt("--query") else "None")
    elif method == "post" and url.endswith(f"/servicePrincipals/{GRAPH_SP}/appRoleAssignedTo"):
        if os.environ.get("FAKE_AZ_DENY"):
            print("ERROR: Forbidden({\"error\":{\"code\":\"Authorization_RequestDenied\"}})", file=sys.stderr)
            sys.exit(1)
        body = json.loads(opt("--body"))
        assert body == {"principalId": PRINCIPAL, "resourceId": GRAPH_SP, "appRoleId": ROLE_ID}, body
        put("granted", state("granted") + ROLE_ID + "\n")
    else:
        print(f"fake az: unexpected call {line}", file=sys.stderr)
        sys.exit(2)
else:
    print(f"fake az: unexpected call {line}", file=sys.stderr)
    sys.exit(2)
