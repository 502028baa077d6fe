#!/usr/bin/env bash
# Grant graphlake's managed identity the Microsoft Graph application role SecurityAlert.Read.All, so pull_alerts
# can read /security/alerts_v2.
#
# Who can run it: someone allowed to grant application permissions in the tenant, i.e. a Privileged Role
# Administrator or Global Administrator (the Graph permissions behind it are AppRoleAssignment.ReadWrite.All and
# Application.Read.All). Owner of the subscription is not enough: this is a tenant (Entra ID) operation.
#
# Idempotent: it reads the identity's existing app-role assignments first and posts only the missing ones.
# The role id is looked up on the Microsoft Graph service principal by value, not hard-coded, so the script also
# works in clouds where the id differs.
#
# Sovereign clouds: sign the az CLI into that cloud first (e.g. 'az cloud set --name AzureUSGovernment' and
# 'az login'), and pass its Graph endpoint: --graph-endpoint https://graph.microsoft.us (GCC High) or
# https://dod-graph.microsoft.us (DoD). By default the endpoint the Bicep deployment used is taken.
#
# Without a managed identity (the MSSP case, one app pulling from customers' tenants): use an app registration
# with a client secret instead; see the README, "Pulling from other tenants (MSSP)". This script does not apply.
set -euo pipefail

readonly GRAPH_APP_ID="00000003-0000-0000-c000-000000000000"
readonly DEPLOYMENT_NAME="graphlake"

RESOURCE_GROUP="${GRAPHLAKE_RESOURCE_GROUP:-graphlake}"
PRINCIPAL_ID=""
GRAPH_ENDPOINT=""
ROLES=()

usage() {
  cat <<EOF
Usage: infra/grant-graph-permission.sh [-g RESOURCE_GROUP] [--principal-id OBJECT_ID]
                                       [--graph-endpoint URL] [--role VALUE]...

Grants the managed identity deployed by infra/deploy.sh the Microsoft Graph application role
SecurityAlert.Read.All (app-role assignment through the appRoleAssignedTo API).

  -g, --resource-group NAME  group deployed by infra/deploy.sh (default: \$GRAPHLAKE_RESOURCE_GROUP or
                             "graphlake"); the identity is read from its deployment outputs
      --principal-id ID      object id of the service principal to grant (skips the deployment lookup)
      --graph-endpoint URL   Microsoft Graph root (default: the deployment's graphEndpoint, else
                             https://graph.microsoft.com); US Gov: https://graph.microsoft.us,
                             DoD: https://dod-graph.microsoft.us
      --role VALUE           application role to grant (repeatable; default: SecurityAlert.Read.All)
  -h, --help                 show this help

The person running this needs the right to grant app roles: Privileged Role Administrator or Global
Administrator (AppRoleAssignment.ReadWrite.All + Application.Read.All).
EOF
}

die() { echo "grant-graph-permission.sh: error: $*" >&2; exit 1; }
info() { echo "==> $*" >&2; }

# A 403 from Graph means the signed-in account lacks the directory rights, not that something is missing.
is_forbidden() { grep -qiE 'Authorization_RequestDenied|Forbidden|Insufficient privileges|\b403\b' <<<"$1"; }
forbidden() {
  die "403: you need Privileged Role Administrator or Global Administrator (AppRoleAssignment.ReadWrite.All and Application.Read.All) to $1; ask one to run this script"
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    -g|--resource-group) [[ $# -ge 2 ]] || die "$1 needs a value"; RESOURCE_GROUP="$2"; shift 2 ;;
    --principal-id) [[ $# -ge 2 ]] || die "$1 needs a value"; PRINCIPAL_ID="$2"; shift 2 ;;
    --graph-endpoint) [[ $# -ge 2 ]] || die "$1 needs a value"; GRAPH_ENDPOINT="$2"; shift 2 ;;
    --role) [[ $# -ge 2 ]] || die "$1 needs a value"; ROLES+=("$2"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[[ ${#ROLES[@]} -gt 0 ]] || ROLES=("SecurityAlert.Read.All")

command -v az >/dev/null 2>&1 \
  || die "the Azure CLI (az) is not installed or not on PATH. Install it: https://learn.microsoft.com/cli/azure/install-azure-cli"
az account show -o none 2>/dev/null \
  || die "az is not logged in. Run 'az login' as a Privileged Role Administrator or Global Administrator of the tenant."

# --- Which identity, which Graph ----------------------------------------------------------------------------

deployment_output() {
  az deployment group show --resource-group "$RESOURCE_GROUP" --name "$DEPLOYMENT_NAME" \
    --query "properties.outputs.$1.value" -o tsv 2>/dev/null || true
}

if [[ -z "$PRINCIPAL_ID" ]]; then
  PRINCIPAL_ID="$(deployment_output identityPrincipalId)"
  [[ -n "$PRINCIPAL_ID" ]] \
    || die "no deployment '$DEPLOYMENT_NAME' in resource group $RESOURCE_GROUP: run infra/deploy.sh first, or pass --principal-id"
fi
if [[ -z "$GRAPH_ENDPOINT" ]]; then
  GRAPH_ENDPOINT="$(deployment_output graphEndpoint)"
  GRAPH_ENDPOINT="${GRAPH_ENDPOINT:-https://graph.microsoft.com}"
fi
GRAPH_ENDPOINT="${GRAPH_ENDPOINT%/}"
[[ "$GRAPH_ENDPOINT" =~ ^https://[A-Za-z0-9.-]+$ ]] || die "--graph-endpoint must look like https://graph.microsoft.com"
[[ "$PRINCIPAL_ID" =~ ^[0-9a-fA-F-]{36}$ ]] || die "principal id '$PRINCIPAL_ID' is not an object id (GUID)"

graph() {
  # graph METHOD PATH [az rest options...]: a Microsoft Graph v1.0 call with a token for GRAPH_ENDPOINT.
  local method="$1" path="$2"
  shift 2
  az rest --method "$method" --url "$GRAPH_ENDPOINT/v1.0$path" --resource "$GRAPH_ENDPOINT" "$@"
}

info "Microsoft Graph: $GRAPH_ENDPOINT; managed identity service principal: $PRINCIPAL_ID"

errors="$(mktemp)"
trap 'rm -f "$errors"' EXIT

if ! graph_sp_id="$(graph get "/servicePrincipals(appId='$GRAPH_APP_ID')?\$select=id" --query id -o tsv 2>"$errors")"; then
  cat "$errors" >&2
  is_forbidden "$(cat "$errors")" && forbidden "read service principals"
  die "cannot read the Microsoft Graph service principal (is az signed in to the cloud of $GRAPH_ENDPOINT?)"
fi
[[ -n "$graph_sp_id" ]] || die "the Microsoft Graph service principal was not found in this tenant"

# A new managed identity takes a little while to appear in Entra ID: wait for it.
existing=""
for attempt in 1 2 3 4 5 6; do
  if existing="$(graph get "/servicePrincipals/$PRINCIPAL_ID/appRoleAssignments" \
      --query "value[?resourceId=='$graph_sp_id'].appRoleId" -o tsv 2>"$errors")"; then
    break
  fi
  is_forbidden "$(cat "$errors")" && forbidden "read the identity's app-role assignments"
  [[ $attempt -lt 6 ]] || die "service principal $PRINCIPAL_ID not found in Entra ID (wrong id, or another tenant?)"
  info "service principal $PRINCIPAL_ID not visible yet; retrying in 20 s"
  sleep 20
done

# --- Grant each role that is missing ------------------------------------------------------------------------

granted=0
for role in "${ROLES[@]}"; do
  [[ "$role" =~ ^[A-Za-z0-9.]+$ ]] || die "role value '$role' is not a Graph permission name"
  role_id="$(graph get "/servicePrincipals/$graph_sp_id?\$select=appRoles" \
    --query "appRoles[?value=='$role' && contains(allowedMemberTypes, 'Application')].id | [0]" -o tsv)"
  [[ -n "$role_id" && "$role_id" != "None" ]] \
    || die "Microsoft Graph has no application role '$role' in this cloud"

  if grep -qixF "$role_id" <<<"$existing"; then
    info "$role ($role_id) is already granted: nothing to do"
    continue
  fi

  info "granting $role ($role_id)"
  body="{\"principalId\": \"$PRINCIPAL_ID\", \"resourceId\": \"$graph_sp_id\", \"appRoleId\": \"$role_id\"}"
  if ! error="$(graph post "/servicePrincipals/$graph_sp_id/appRoleAssignedTo" \
      --headers "Content-Type=application/json" --body "$body" -o none 2>&1)"; then
    echo "$error" >&2
    is_forbidden "$error" && forbidden "grant app roles"
    die "granting $role failed (see above)"
  fi
  granted=$((granted + 1))
done

if [[ $granted -gt 0 ]]; then
  info "done. Tokens issued before the grant lack the role: the app picks it up with its next token (up to ~24 h;"
  app_name="$(deployment_output functionAppName)"
  info "restart it to hurry: az functionapp restart -g $RESOURCE_GROUP -n ${app_name:-<function app>})."
else
  info "done: every role was already granted."
fi
