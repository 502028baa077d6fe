#!/usr/bin/env bash
# Deploy graphlake to Azure with the az CLI, in one command:
#   0. refuse parameter values ARM would reject (infra/check_parameters.py), one line each,
#   1. create the resource group (or reuse it),
#   2. deploy infra/main.bicep with infra/main.parameters.json,
#   3. publish the function code (zip deploy with remote build, as Flex Consumption expects),
#   4. on request (--activity-log, --entra-logs), point the subscription's Activity log and the tenant's Entra logs
#      at the logs hub through Azure Monitor diagnostic settings,
#   5. print what to do next.
# Idempotent: ARM leaves unchanged resources alone, role assignments have deterministic names, and the code is
# republished only when the package's SHA-256 (kept in the resource group tag graphlakePackage) changed or the
# app has no functions.
set -euo pipefail

readonly DEPLOYMENT_NAME="graphlake"
readonly PACKAGE_TAG="graphlakePackage"
# Set once diagnostic settings stream to this deployment's logs hub: later runs keep the Send rule they need.
readonly DIAGNOSTICS_TAG="graphlakeDiagnostics"
readonly DIAGNOSTIC_SETTING="graphlake"
readonly ACTIVITY_CATEGORIES_ALL="Administrative Security ServiceHealth Alert Recommendation Policy Autoscale ResourceHealth"
readonly ACTIVITY_CATEGORIES_DEFAULT="Administrative,Security,Policy"
# Only the categories a graphlake table holds: any other would stream into quarantine.
readonly ENTRA_CATEGORIES_ALL="SignInLogs NonInteractiveUserSignInLogs ServicePrincipalSignInLogs ManagedIdentitySignInLogs AuditLogs RiskyUsers UserRiskEvents"
readonly ENTRA_CATEGORIES_DEFAULT="SignInLogs,NonInteractiveUserSignInLogs,ServicePrincipalSignInLogs,ManagedIdentitySignInLogs,AuditLogs,RiskyUsers,UserRiskEvents"
readonly MIN_AZ_VERSION="2.60.0"

INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(dirname "$INFRA_DIR")"

RESOURCE_GROUP="${GRAPHLAKE_RESOURCE_GROUP:-graphlake}"
LOCATION="${GRAPHLAKE_LOCATION:-}"
# A remote build takes a few minutes; az can also hang in its health poll after the upload, so each publish attempt
# is bounded and the retry loop gets control back.
PUBLISH_TIMEOUT="${GRAPHLAKE_PUBLISH_TIMEOUT:-1200}"
PUBLISH_RETRY_DELAY="${GRAPHLAKE_PUBLISH_RETRY_DELAY:-60}"
PARAMS=()
SKIP_CODE=false
FORCE_CODE=false
WHAT_IF=false
ACTIVITY_LOG=""
ENTRA_LOGS=""
NOT_DONE=()

usage() {
  cat <<EOF
Usage: infra/deploy.sh [-g RESOURCE_GROUP] [-l LOCATION] [-p NAME=VALUE]... [--what-if] [--skip-code]
                       [--force-code] [--activity-log[=CATEGORIES]] [--entra-logs[=CATEGORIES]]

Creates or updates the resource group, deploys infra/main.bicep and publishes the function code.

  -g, --resource-group NAME  resource group (default: \$GRAPHLAKE_RESOURCE_GROUP or "graphlake")
  -l, --location REGION      region; needed when the group does not exist yet (default: \$GRAPHLAKE_LOCATION,
                             else the group's region). Flex Consumption regions:
                               az functionapp list-flexconsumption-locations -o table
  -p, --parameter NAME=VALUE override a Bicep parameter (repeatable), e.g. -p eventHubPartitionCount=8
                             or -p graphEndpoint=https://graph.microsoft.us (also: -p @my.parameters.json)
      --what-if              show what the deployment would change (az deployment group what-if), then stop
      --skip-code            deploy the infrastructure only
      --force-code           publish the code even if it did not change
      --activity-log[=CATS]  stream the subscription's Activity log to the logs hub (a subscription diagnostic
                             setting named "$DIAGNOSTIC_SETTING"). Needs Monitoring Contributor or Owner on the
                             subscription. CATS, comma-separated, default $ACTIVITY_CATEGORIES_DEFAULT; any of:
                             ${ACTIVITY_CATEGORIES_ALL// /, }
      --entra-logs[=CATS]    stream the tenant's Entra logs to the logs hub (a microsoft.aadiam diagnostic setting
                             named "$DIAGNOSTIC_SETTING"). Needs Security Administrator or Global Administrator in
                             the tenant; without it, prints the command for one to run. CATS default: all
                             that a graphlake table holds, ${ENTRA_CATEGORIES_ALL// /, }
                             (sign-in logs need Entra ID P1 or P2).
                             Either flag creates the Send-only rule on the logs hub that Azure Monitor delivers
                             with, which needs the namespace to accept SAS (parameter diagnosticSettingsSendRule;
                             see the README, "Logs beside the alerts").
  -h, --help                 show this help

Environment: GRAPHLAKE_PUBLISH_TIMEOUT, the seconds one code publish attempt may take before it is stopped and
retried (default 1200); GRAPHLAKE_PUBLISH_RETRY_DELAY, the seconds between attempts (default 60).

Needs: az (>= $MIN_AZ_VERSION, logged in with 'az login'), git, python3 with pathspec (make install puts it in
.venv, which is used when present; or set GRAPHLAKE_PYTHON), timeout (GNU coreutils; gtimeout from Homebrew's
coreutils on macOS), and Owner (or Contributor + User Access Administrator) on the subscription or resource group,
because the template assigns roles.
EOF
}

die() { echo "deploy.sh: error: $*" >&2; exit 1; }
info() { echo "==> $*" >&2; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    -g|--resource-group) [[ $# -ge 2 ]] || die "$1 needs a value"; RESOURCE_GROUP="$2"; shift 2 ;;
    -l|--location) [[ $# -ge 2 ]] || die "$1 needs a value"; LOCATION="$2"; shift 2 ;;
    -p|--parameter) [[ $# -ge 2 ]] || die "$1 needs a value"; PARAMS+=("$2"); shift 2 ;;
    --what-if) WHAT_IF=true; shift ;;
    --skip-code) SKIP_CODE=true; shift ;;
    --force-code) FORCE_CODE=true; shift ;;
    --activity-log) ACTIVITY_LOG="$ACTIVITY_CATEGORIES_DEFAULT"; shift ;;
    --activity-log=*) ACTIVITY_LOG="${1#*=}"; [[ -n "$ACTIVITY_LOG" ]] || die "--activity-log= names no category"; shift ;;
    --entra-logs) ENTRA_LOGS="$ENTRA_CATEGORIES_DEFAULT"; shift ;;
    --entra-logs=*) ENTRA_LOGS="${1#*=}"; [[ -n "$ENTRA_LOGS" ]] || die "--entra-logs= names no category"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

# --- Prerequisites -------------------------------------------------------------------------------------------

command -v az >/dev/null 2>&1 \
  || die "the Azure CLI (az) is not installed or not on PATH. Install it: https://learn.microsoft.com/cli/azure/install-azure-cli"
# The package is built by infra/package.py, which needs pathspec: the repository's virtualenv has it.
PYTHON="${GRAPHLAKE_PYTHON:-}"
if [[ -z "$PYTHON" ]]; then
  if [[ -x "$REPO_DIR/.venv/bin/python" ]]; then PYTHON="$REPO_DIR/.venv/bin/python"; else PYTHON=python3; fi
fi
command -v "$PYTHON" >/dev/null 2>&1 || die "python3 is needed to check the parameters and build the function package"

"$PYTHON" "$INFRA_DIR/check_parameters.py" "$INFRA_DIR/main.parameters.json" ${PARAMS[@]+"${PARAMS[@]}"} \
  || die "parameters refused (above); nothing was deployed"

# check_categories FLAG GIVEN ALLOWED: each of the comma-separated GIVEN is one of the space-separated ALLOWED.
check_categories() {
  local flag="$1" given="$2" allowed="$3" category
  local -a categories
  [[ "$given" =~ ^[A-Za-z]+(,[A-Za-z]+)*$ ]] \
    || die "$flag=$given: give category names separated by single commas, e.g. ${allowed%% *}"
  IFS=',' read -r -a categories <<<"$given"
  for category in "${categories[@]}"; do
    [[ " $allowed " == *" $category "* ]] \
      || die "$flag: no graphlake table holds category '$category'; the categories are: ${allowed// /, }"
  done
}
[[ -z "$ACTIVITY_LOG" ]] || check_categories --activity-log "$ACTIVITY_LOG" "$ACTIVITY_CATEGORIES_ALL"
[[ -z "$ENTRA_LOGS" ]] || check_categories --entra-logs "$ENTRA_LOGS" "$ENTRA_CATEGORIES_ALL"

[[ "$PUBLISH_TIMEOUT" =~ ^[1-9][0-9]*$ ]] \
  || die "GRAPHLAKE_PUBLISH_TIMEOUT is '$PUBLISH_TIMEOUT'; give a whole number of seconds, e.g. 1200"
[[ "$PUBLISH_RETRY_DELAY" =~ ^[0-9]+$ ]] \
  || die "GRAPHLAKE_PUBLISH_RETRY_DELAY is '$PUBLISH_RETRY_DELAY'; give a whole number of seconds, e.g. 60"

if [[ "$SKIP_CODE" != true && "$WHAT_IF" != true ]]; then
  command -v git >/dev/null 2>&1 || die "git is needed: the package holds the files git tracks"
  TIMEOUT="$(command -v timeout || command -v gtimeout || true)"
  [[ -n "$TIMEOUT" ]] \
    || die "timeout (GNU coreutils) is needed to bound the code publish: install coreutils (macOS: brew install coreutils)"
  "$PYTHON" -c 'import pathspec' 2>/dev/null \
    || die "$PYTHON lacks pathspec, which builds the package: run 'make install' (or set GRAPHLAKE_PYTHON)"
fi

az_version="$(az version --query '"azure-cli"' -o tsv 2>/dev/null || true)"
if [[ -n "$az_version" ]] \
  && [[ "$(printf '%s\n%s\n' "$MIN_AZ_VERSION" "$az_version" | sort -V | head -n1)" != "$MIN_AZ_VERSION" ]]; then
  die "az $az_version is too old for Flex Consumption; need >= $MIN_AZ_VERSION (run: az upgrade)"
fi

if ! subscription="$(az account show --query '[name, id]' -o tsv 2>/dev/null)"; then
  die "az is not logged in. Run 'az login' (and 'az account set --subscription <id>'), then run this again."
fi
info "subscription: $(echo "$subscription" | tr '\n' ' ')"

# --- Resource group ------------------------------------------------------------------------------------------

if [[ "$(az group exists --name "$RESOURCE_GROUP" -o tsv)" == "true" ]]; then
  group_location="$(az group show --name "$RESOURCE_GROUP" --query location -o tsv)"
  LOCATION="${LOCATION:-$group_location}"
  info "resource group $RESOURCE_GROUP exists ($group_location)"
elif [[ "$WHAT_IF" == true ]]; then
  die "resource group $RESOURCE_GROUP does not exist, and what-if compares with an existing group: create it (az group create -n $RESOURCE_GROUP -l <region>) or deploy without --what-if (everything would be created)"
else
  [[ -n "$LOCATION" ]] || die "resource group $RESOURCE_GROUP does not exist: give --location <region> (a Flex Consumption region: az functionapp list-flexconsumption-locations -o table)"
  info "creating resource group $RESOURCE_GROUP in $LOCATION"
  az group create --name "$RESOURCE_GROUP" --location "$LOCATION" --tags app=graphlake -o none
fi

# --- Infrastructure ------------------------------------------------------------------------------------------

# Azure Monitor delivers with an authorization rule's key: the Send-only rule on the logs hub, which needs the
# namespace to accept SAS. Asked for by a flag now, or by an earlier run whose diagnostic settings still stream here
# (the group's tag): without the rule they would stop delivering.
if [[ -n "$ACTIVITY_LOG$ENTRA_LOGS" ]]; then
  PARAMS=("diagnosticSettingsSendRule=true" ${PARAMS[@]+"${PARAMS[@]}"})
  info "the logs hub gets a Send-only rule for Azure Monitor, and the namespace accepts SAS for it"
elif [[ "$(az group show --name "$RESOURCE_GROUP" --query "tags.$DIAGNOSTICS_TAG" -o tsv 2>/dev/null || true)" == "on" ]]; then
  PARAMS=("diagnosticSettingsSendRule=true" ${PARAMS[@]+"${PARAMS[@]}"})
  info "diagnostic settings stream here (tag $DIAGNOSTICS_TAG): keeping their Send-only rule on the logs hub"
fi

if [[ "$WHAT_IF" == true ]]; then
  info "what-if: what deploying infra/main.bicep to $RESOURCE_GROUP would change (nothing is changed)"
  az deployment group what-if \
    --resource-group "$RESOURCE_GROUP" \
    --name "$DEPLOYMENT_NAME" \
    --template-file "$INFRA_DIR/main.bicep" \
    --parameters "@$INFRA_DIR/main.parameters.json" \
    --parameters location="$LOCATION" ${PARAMS[@]+"${PARAMS[@]}"} \
    || die "what-if failed (error above)"
  exit 0
fi

info "deploying infra/main.bicep (a few minutes the first time; az compiles Bicep with its own Bicep CLI)"
outputs="$(az deployment group create \
  --resource-group "$RESOURCE_GROUP" \
  --name "$DEPLOYMENT_NAME" \
  --template-file "$INFRA_DIR/main.bicep" \
  --parameters "@$INFRA_DIR/main.parameters.json" \
  --parameters location="$LOCATION" ${PARAMS[@]+"${PARAMS[@]}"} \
  --query properties.outputs -o json)" \
  || die "the Bicep deployment failed (error above). Details: az deployment operation group list -g $RESOURCE_GROUP -n $DEPLOYMENT_NAME -o table"

output() {
  # output NAME: one value of the deployment outputs.
  python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]]["value"])' "$1" <<<"$outputs"
}

APP_NAME="$(output functionAppName)"
IDENTITY_NAME="$(output identityName)"
LAKE_URL="$(output lakeUrl)"
LAKE_CONTAINER_ID="$(output lakeContainerId)"
EVENT_HUB="$(output eventHubNamespace)/$(output eventHubName)"
APP_INSIGHTS="$(output appInsightsName)"
LOGS_HUB="$(output logsEventHubName)"
DIAGNOSTICS_RULE="$(output diagnosticsRuleId)"
info "function app $APP_NAME, identity $IDENTITY_NAME"

# --- Code ----------------------------------------------------------------------------------------------------

# One publish attempt, at most PUBLISH_TIMEOUT seconds. timeout stops az and its children (az is a script that runs
# Python) by putting them in a process group of its own, which the terminal's Ctrl-C does not reach; so it runs in the
# background, and an interrupt here is passed on to it instead of waiting out the timeout.
publish_pid=""
publish() {
  "$TIMEOUT" --kill-after=30 "$PUBLISH_TIMEOUT" az functionapp deployment source config-zip \
    --resource-group "$RESOURCE_GROUP" --name "$APP_NAME" --src "$package" --build-remote true -o none &
  publish_pid=$!
  local status=0
  wait "$publish_pid" || status=$?
  publish_pid=""
  # 124: timed out; 137: killed after ignoring the TERM.
  if [[ $status -eq 124 || $status -eq 137 ]]; then
    info "publish did not finish within $PUBLISH_TIMEOUT s (az can hang polling the app's health); stopped it"
  fi
  return "$status"
}

stop_publish() {
  if [[ -n "$publish_pid" ]]; then
    kill -TERM "$publish_pid" 2>/dev/null || true
    wait "$publish_pid" 2>/dev/null || true
  fi
}
trap 'stop_publish; exit 130' INT
trap 'stop_publish; exit 143' TERM

if [[ "$SKIP_CODE" == true ]]; then
  info "--skip-code: function code not published"
else
  work_dir="$(mktemp -d)"
  trap 'rm -rf "$work_dir"' EXIT
  package="$work_dir/graphlake.zip"
  package_sha="$("$PYTHON" "$INFRA_DIR/package.py" --root "$REPO_DIR" --out "$package")"
  deployed_sha="$(az group show --name "$RESOURCE_GROUP" --query "tags.$PACKAGE_TAG" -o tsv 2>/dev/null || true)"
  function_count="$(az functionapp function list --resource-group "$RESOURCE_GROUP" --name "$APP_NAME" \
    --query 'length(@)' -o tsv 2>/dev/null || echo 0)"

  if [[ "$FORCE_CODE" != true && "$package_sha" == "$deployed_sha" && "${function_count:-0}" != "0" ]]; then
    info "function code unchanged (sha256 ${package_sha:0:12}), not republished"
  else
    info "publishing function code (remote build installs requirements.txt; a few minutes)"
    # Fresh role assignments can take a few minutes to reach the deployment container: retry.
    attempt=1
    until publish; do
      if [[ $attempt -ge 3 ]]; then
        die "code publish failed $attempt times; see the deployment log: az functionapp log deployment show -g $RESOURCE_GROUP -n $APP_NAME"
      fi
      info "publish failed (attempt $attempt); retrying in $PUBLISH_RETRY_DELAY s"
      sleep "$PUBLISH_RETRY_DELAY"
      attempt=$((attempt + 1))
    done
    az group update --name "$RESOURCE_GROUP" --set "tags.$PACKAGE_TAG=$package_sha" -o none
    info "function code published (sha256 ${package_sha:0:12})"
  fi
fi

# --- Azure Monitor diagnostic settings (--activity-log, --entra-logs) ----------------------------------------------

# logs_json CATEGORIES: the diagnostic setting's logs, one enabled entry per comma-separated category.
logs_json() {
  local json="" category
  local -a categories
  IFS=',' read -r -a categories <<<"$1"
  for category in "${categories[@]}"; do
    json+="${json:+,}{\"category\":\"$category\",\"enabled\":true}"
  done
  echo "[$json]"
}

# quoted ARGS...: the command line, each argument quoted for a shell, to print for someone else to run.
quoted() {
  local out="" arg
  for arg in "$@"; do out+="${out:+ }$(printf '%q' "$arg")"; done
  echo "$out"
}

# diagnostic_setting WHAT ROLE COMMAND...: runs the command; refused for a missing role, prints it for someone who
# holds the role and remembers it as not done; any other error stops the script.
diagnostic_setting() {
  local what="$1" role="$2" errors
  shift 2
  errors="$(mktemp)"
  if "$@" -o none 2>"$errors"; then
    rm -f "$errors"
    info "$what: streams to $EVENT_HUB_NAMESPACE/$LOGS_HUB"
    az group update --name "$RESOURCE_GROUP" --set "tags.$DIAGNOSTICS_TAG=on" -o none
  elif grep -qiE 'AuthorizationFailed|Forbidden|does not have authorization|AccessDenied|insufficient privileges' \
      "$errors"; then
    cat "$errors" >&2
    rm -f "$errors"
    info "$what: not set. It needs $role, which you do not hold. Ask someone who does to run:"
    echo "  $(quoted "$@")"
    NOT_DONE+=("$what")
  else
    cat "$errors" >&2
    rm -f "$errors"
    die "$what: az failed (above)"
  fi
}

if [[ -n "$ACTIVITY_LOG$ENTRA_LOGS" ]]; then
  [[ -n "$DIAGNOSTICS_RULE" ]] \
    || die "the deployment made no Send rule for Azure Monitor (-p diagnosticSettingsSendRule=false?): no diagnostic setting could deliver"
  EVENT_HUB_NAMESPACE="$(output eventHubNamespace)"
fi

if [[ -n "$ACTIVITY_LOG" ]]; then
  subscription_id="$(az account show --query id -o tsv)"
  diagnostic_setting "the Activity log of subscription $subscription_id ($ACTIVITY_LOG)" \
    "Monitoring Contributor (or Owner) on the subscription" \
    az monitor diagnostic-settings subscription create --name "$DIAGNOSTIC_SETTING" --location "$LOCATION" \
      --subscription "$subscription_id" --event-hub-name "$LOGS_HUB" --event-hub-auth-rule "$DIAGNOSTICS_RULE" \
      --logs "$(logs_json "$ACTIVITY_LOG")"
fi

if [[ -n "$ENTRA_LOGS" ]]; then
  # The tenant-scope resource microsoft.aadiam/diagnosticSettings, on this cloud's Resource Manager endpoint.
  arm="$(az cloud show --query endpoints.resourceManager -o tsv 2>/dev/null || true)"
  arm="${arm:-https://management.azure.com/}"
  body="{\"properties\":{\"eventHubAuthorizationRuleId\":\"$DIAGNOSTICS_RULE\",\"eventHubName\":\"$LOGS_HUB\",\"logs\":$(logs_json "$ENTRA_LOGS")}}"
  diagnostic_setting "the Entra logs of the tenant ($ENTRA_LOGS)" \
    "Security Administrator (or Global Administrator) in the Entra tenant" \
    az rest --method put \
      --url "${arm%/}/providers/microsoft.aadiam/diagnosticSettings/$DIAGNOSTIC_SETTING?api-version=2017-04-01" \
      --body "$body"
fi

# --- Next steps ----------------------------------------------------------------------------------------------

cat <<EOF

graphlake is deployed to resource group $RESOURCE_GROUP ($LOCATION).
  Function app:         $APP_NAME
  Managed identity:     $IDENTITY_NAME
  Event hub:            $EVENT_HUB
  Lake:                 $LAKE_URL
  Application Insights: $APP_INSIGHTS

Next:
  1. Let the managed identity read alerts: grant it the Microsoft Graph application role SecurityAlert.Read.All.
     This needs a Privileged Role Administrator or Global Administrator (AppRoleAssignment.ReadWrite.All):
       infra/grant-graph-permission.sh -g $RESOURCE_GROUP
  2. Watch the first pulls (every 30 seconds by default) in Application Insights:
       az monitor app-insights query -g $RESOURCE_GROUP --app $APP_INSIGHTS \\
         --analytics-query "traces | where timestamp > ago(15m) | order by timestamp desc | take 50"
  3. Read the lake (graphlake search and query): Storage Blob Data Reader on the lake container only, not the
     account (shared keys are disabled, so this is the only way in). For a group, prefer the parameter:
       infra/deploy.sh -g $RESOURCE_GROUP -p 'lakeReaderPrincipalIds=["<group-object-id>"]'
     or for one person:
       az role assignment create --role "Storage Blob Data Reader" --assignee <your-upn-or-object-id> \\
         --scope $LAKE_CONTAINER_ID
  4. Tear everything down when done:
       az group delete --name $RESOURCE_GROUP
     Diagnostic settings named "$DIAGNOSTIC_SETTING" on the subscription or the tenant outlive the group: delete them
     with az monitor diagnostic-settings subscription delete, or az rest --method delete on the tenant's.
EOF

if [[ ${#NOT_DONE[@]} -gt 0 ]]; then
  die "deployed, but not set (run the commands above): $(IFS=';'; echo "${NOT_DONE[*]}")"
fi
