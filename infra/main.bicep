// graphlake: Microsoft Graph security alerts (alerts_v2) -> Event Hubs -> parquet lake.
//
// Deploys into one resource group (infra/deploy.sh creates it):
//   - a user-assigned managed identity, the only identity the app uses (host storage, lake and state blobs,
//     Event Hubs send and receive, Application Insights, Microsoft Graph);
//   - a storage account (shared keys off) with the lake, state and Flex deployment containers;
//   - an Event Hubs namespace (SAS off unless diagnosticSettingsSendRule) with the alerts hub and the normalizer's
//     consumer group, and the logs hub (Azure Monitor diagnostic settings) with normalize_logs's consumer group;
//   - Log Analytics + Application Insights (Entra authentication only);
//   - a Flex Consumption plan and the Python function app, with every app setting the code reads;
//   - a lifecycle policy (claim checks, quarantine and ended detections state expire; the lake may move to cool,
//     and is kept);
//   - diagnostic settings of the blob service and the Event Hubs namespace into the workspace;
//   - log search alert rules on graphlake's health records, mailed through an action group when alertEmail is set.
//
// This file holds the parameters, the names, the identity and the outputs, and composes the modules in
// infra/modules/, as Microsoft's Flex Consumption samples compose theirs:
//   storage.bicep      the storage account, its containers and the lifecycle policy;
//   eventhubs.bicep    the Event Hubs namespace, the alerts and logs hubs and their consumer groups;
//   monitoring.bicep   Log Analytics, Application Insights and the diagnostic settings;
//   alerts.bicep       the alert rules and their action group;
//   roles.bicep        the role assignments;
//   functionapp.bicep  the plan, the function app and its settings.
// Every name is computed here from the parameters and passed to the modules, which take this file's parameters under
// the same names. A module reaches another's resources (a role's scope, a diagnostic setting's, the app's storage)
// through `existing` references by those names, never through a module output: names, scopes and loops stay known
// at the start of the deployment (infra/bicep_lint.py checks that). The modules' outputs feed values only.
//
// The Microsoft Graph application role (SecurityAlert.Read.All) is NOT granted here: that needs the Microsoft
// Graph Bicep extension (registry access at build time, and offline parsers cannot read it). Run
// infra/grant-graph-permission.sh after this deployment.
//
// Keep every .bicep file readable by pycep-parser and tree-sitter-bicep (tests/infra/): no `extension`,
// no `import`, no registry modules, no user-defined types or lambdas (pycep-parser, which checkov pins, cannot
// read them). No Bicep compiler runs offline: infra/bicep_lint.py checks its deploy-time-constant rules instead.

targetScope = 'resourceGroup'

// ------------------------------------------------------------------------------------------------------------
// Parameters: placement and names
// ------------------------------------------------------------------------------------------------------------

@description('Azure region of every resource. Must offer Flex Consumption: az functionapp list-flexconsumption-locations.')
param location string = resourceGroup().location

@description('Short prefix of resource names: lowercase letters, digits and hyphens, starting with a letter.')
@minLength(2)
@maxLength(12)
param namePrefix string = 'graphlake'

@description('Tags applied to every resource.')
param tags object = {
  app: 'graphlake'
}

// ------------------------------------------------------------------------------------------------------------
// Parameters: storage
// ------------------------------------------------------------------------------------------------------------

@description('Replication of the storage account that holds the lake, the state and the host data.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param storageSku string = 'Standard_GRS'

@description('Blob container of the parquet lake (LAKE_URL).')
@minLength(3)
@maxLength(63)
param lakeContainerName string = 'lake'

@description('Blob container of watermarks, claim checks and quarantine (STATE_URL).')
@minLength(3)
@maxLength(63)
param stateContainerName string = 'graphlake-state'

@description('Blob container Flex Consumption deploys the app package to.')
@minLength(3)
@maxLength(63)
param deploymentContainerName string = 'app-package'

@description('Days a deleted or overwritten blob, and a deleted container, can be restored (soft delete).')
@minValue(1)
@maxValue(365)
param blobSoftDeleteDays int = 7

@description('Days a claim check (state container, claimchecks/) is kept. Longer than eventHubRetentionDays: an event in the hub may still point to it.')
@minValue(8)
@maxValue(3650)
param claimCheckRetentionDays int = 14

@description('Days a quarantined event (state container, quarantine/) is kept for graphlake replay.')
@minValue(1)
@maxValue(3650)
param quarantineRetentionDays int = 90

@description('Days detections keep the dedup state and sent marker of an alert (state container, detections/alerts/ and detections/sent/). At least a day: the longest DedupPeriodMinutes a rule may have. The outbox of undelivered alerts is never expired.')
@minValue(1)
@maxValue(3650)
param detectionStateRetentionDays int = 7

@description('Move lake files to the cool tier this many days after they were written; 0 keeps them hot. Cool has a 30-day minimum: compaction rewrites only files younger than that.')
@minValue(0)
@maxValue(3650)
param lakeCoolAfterDays int = 0

@description('Delete lake files this many days after they were written; 0 (the default) never deletes the lake. The detections\' matched markers (detections/matched/) follow the lake, kept at least as long as quarantine and claim checks can bring a version back.')
@minValue(0)
@maxValue(36500)
param lakeDeleteAfterDays int = 0

@description('Delete the log tables (entra_signin_logs, entra_audit_logs, entra_risk_events, azure_activity_logs) this many days after they were written; 0 (the default) keeps them as long as the rest of the lake (lakeDeleteAfterDays). Sign-ins are most of the volume: this keeps alerts longer than logs.')
@minValue(0)
@maxValue(36500)
param logTablesDeleteAfterDays int = 0

@description('Also send blob reads to the workspace (StorageRead). Off by default: the Functions host reads its lease blobs every few seconds, which is most of the volume; writes and deletes are always logged.')
param logBlobReads bool = false

// ------------------------------------------------------------------------------------------------------------
// Parameters: Event Hubs
// ------------------------------------------------------------------------------------------------------------

@description('Event Hubs tier. Basic is not offered: it allows only the $Default consumer group and 256 KB events.')
@allowed([
  'Standard'
  'Premium'
])
param eventHubSku string = 'Standard'

@description('Throughput units (Standard, 1-40) or processing units (Premium: 1, 2, 4, 8 or 16; deploy.sh refuses others). One TU takes 1 MB/s or 1,000 events/s in.')
@minValue(1)
@maxValue(40)
param eventHubCapacity int = 1

@description('Standard only: let the namespace add throughput units up to eventHubMaxThroughputUnits during bursts (backfills).')
param eventHubAutoInflate bool = true

@description('Standard only, with auto-inflate: the most throughput units the namespace may grow to; at least eventHubCapacity (deploy.sh refuses less).')
@minValue(1)
@maxValue(40)
param eventHubMaxThroughputUnits int = 4

@description('Hub pull_alerts sends to and normalize_alerts reads (EVENTHUB_NAME).')
@minLength(1)
@maxLength(256)
param eventHubName string = 'graph-alerts'

@description('Partitions of the alerts hub: the most normalizer instances that can read in parallel. Fixed after creation on Standard.')
@minValue(1)
@maxValue(32)
param eventHubPartitionCount int = 4

@description('Days events stay in the hub, so the normalizer can catch up after an outage (Standard: at most 7).')
@minValue(1)
@maxValue(7)
param eventHubRetentionDays int = 7

@description('Consumer group of normalize_alerts (EVENTHUB_CONSUMER_GROUP).')
@minLength(1)
@maxLength(50)
param eventHubConsumerGroupName string = 'normalizer'

@description('Hub Azure Monitor diagnostic settings stream the Entra and Activity logs to, and normalize_logs reads (LOGS_EVENTHUB_NAME). Same namespace, partitions and retention as the alerts hub.')
@minLength(1)
@maxLength(256)
param logsEventHubName string = 'azure-monitor-logs'

@description('Consumer group of normalize_logs on the logs hub (LOGS_EVENTHUB_CONSUMER_GROUP).')
@minLength(1)
@maxLength(50)
param logsEventHubConsumerGroupName string = 'graphlake-logs'

@description('Create the Send-only authorization rule on the logs hub that Azure Monitor diagnostic settings deliver with, and let the namespace accept SAS for it (local auth). Off: the namespace refuses SAS and no diagnostic setting can deliver. deploy.sh turns it on with --activity-log or --entra-logs.')
param diagnosticSettingsSendRule bool = false

@description('EVENTHUB_PROVIDER_HUBS: optional JSON map serviceSource -> hub. Those hubs are not created here; the identity can send to any hub of the namespace.')
param eventHubProviderHubs string = ''

// ------------------------------------------------------------------------------------------------------------
// Parameters: the function app (Flex Consumption)
// ------------------------------------------------------------------------------------------------------------

@description('Python version of the Flex Consumption runtime (the requirements pin azure-functions 1.x, which needs Python < 3.13).')
@allowed([
  '3.11'
  '3.12'
])
param pythonVersion string = '3.11'

@description('Memory of each instance, in MB. Billing is per GB-second of execution, so smaller instances cost less per run.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Most instances the app may scale out to (Flex Consumption: 40 to 1000). The normalizer never uses more than one instance per partition.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Spread the Flex Consumption plan across availability zones. Only in regions that offer it for Flex Consumption; needs zone-redundant storage (storageSku ZRS, GZRS or RAGZRS; deploy.sh refuses others).')
param zoneRedundant bool = false

@description('Days Log Analytics keeps logs and Application Insights telemetry.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

// ------------------------------------------------------------------------------------------------------------
// Parameters: Microsoft Graph and the pull (app settings; defaults are those of shared/core/settings.py)
// ------------------------------------------------------------------------------------------------------------

@description('GRAPH_ENDPOINT. Global: https://graph.microsoft.com; US Gov L4 (GCC High): https://graph.microsoft.us; DoD: https://dod-graph.microsoft.us.')
param graphEndpoint string = 'https://graph.microsoft.com'

@description('GRAPH_AUTHORITY_HOST: the Entra sign-in host. Default: that of the cloud deployed to (environment().authentication.loginEndpoint).')
param graphAuthorityHost string = split(environment().authentication.loginEndpoint, '/')[2]

@description('GRAPH_TENANT_ID: tenant to pull alerts from when GRAPH_SOURCES is empty. Default: the tenant of this deployment.')
param graphTenantId string = tenant().tenantId

// No 'certificate': Flex Consumption cannot load certificates into the app, and GRAPH_CERTIFICATE_PATH names a
// file, so that credential cannot work as deployed. ARM refuses the value here; deploy.sh explains why.
@description('GRAPH_CREDENTIAL. managed_identity uses the user-assigned identity below; client_secret needs graphClientId and graphClientSecret. certificate is not offered on Flex Consumption (it cannot load certificates).')
@allowed([
  'managed_identity'
  'client_secret'
  'default'
])
param graphCredential string = 'managed_identity'

@description('GRAPH_CLIENT_ID. Empty: the client id of the user-assigned identity. Set it to the app registration id with client_secret.')
param graphClientId string = ''

@description('GRAPH_CLIENT_SECRET, only with client_secret: a Key Vault reference, @Microsoft.KeyVault(SecretUri=<the secret URI>), never the secret itself.')
@secure()
param graphClientSecret string = ''

@description('SOURCE_ID: id of the single source. Empty: the tenant id.')
param sourceId string = ''

@description('SOURCE_LABEL: label of the single source, copied to p_source_label.')
param sourceLabel string = 'Microsoft Graph'

@description('GRAPH_SOURCES: JSON list of sources for pulling many tenants (MSSP). Overrides the single-source settings.')
param graphSources string = ''

@description('PULL_SCHEDULE: NCRONTAB schedule of pull_alerts, six fields with seconds first, in UTC (Flex Consumption has no WEBSITE_TIME_ZONE).')
param pullSchedule string = '*/30 * * * * *'

@description('Object ids of the Entra groups, users or service principals that read the lake (graphlake search and query). Each gets Storage Blob Data Reader on the lake container only.')
param lakeReaderPrincipalIds array = []

@description('What lakeReaderPrincipalIds are: Group, User or ServicePrincipal.')
@allowed([
  'Group'
  'User'
  'ServicePrincipal'
])
param lakeReaderPrincipalType string = 'Group'

@description('COMPACT_SCHEDULE: NCRONTAB schedule of compact_lake, six fields with seconds first, in UTC. Default: daily at 03:30.')
param compactSchedule string = '0 30 3 * * *'

// An object, not a dictionary of strings ({ *: string }): pycep-parser, which checkov pins, cannot read
// user-defined types. deploy.sh refuses a value that is not a string, which ARM would reject.
@description('More app settings, merged last (they win over the settings below, and over the parameters). For tuning (e.g. PULL_LOOKBACK_DAYS) or Key Vault references. String values only. Only names from shared/core/settings.py belong here.')
param appSettingOverrides object = {}

// ------------------------------------------------------------------------------------------------------------
// Parameters: alert rules on graphlake's health records (see the README, "Alert rules")
// ------------------------------------------------------------------------------------------------------------

@description('E-mail address the alert rules notify through an action group. Empty: the rules still fire and show in the portal (Monitor > Alerts), but nobody is mailed.')
param alertEmail string = ''

@description('Alert when a source has failed this many pull runs in a row.')
@minValue(1)
@maxValue(1000)
param alertConsecutiveFailures int = 3

@description('PULL_MAX_LAG_SECONDS: a source whose watermark is further behind the time of its run than this is lagging, for graphlake status and for the pull-lagging alert rule alike.')
@minValue(1)
@maxValue(604800)
param pullMaxLagSeconds int = 900

@description('LOGS_MAX_SILENCE_SECONDS: streamed Entra and Activity logs that have landed nothing for longer than this have stopped, for graphlake status and for the logs-silent alert rule alike (a deployment that never streamed logs is not judged).')
@minValue(1)
@maxValue(86400)
param logsMaxSilenceSeconds int = 3600
@description('PULL_MAX_CLOCK_SKEW_SECONDS: a pull whose clock ran further ahead of Graph\'s (the Date header of its answers) than this is failing, for graphlake status and for the pull-failing alert rule alike.')
@minValue(1)
@maxValue(604800)
param pullMaxClockSkewSeconds int = 60

// ------------------------------------------------------------------------------------------------------------
// Names
// ------------------------------------------------------------------------------------------------------------

var token = toLower(uniqueString(subscription().id, resourceGroup().id, namePrefix))
var identityName = 'id-${namePrefix}-${token}'
var storageAccountName = take('st${replace(toLower(namePrefix), '-', '')}${token}', 24)
var eventHubNamespaceName = 'evhns-${namePrefix}-${token}'
var logAnalyticsName = 'log-${namePrefix}-${token}'
var appInsightsName = 'appi-${namePrefix}-${token}'
var actionGroupName = 'ag-${namePrefix}-${token}'
var planName = 'plan-${namePrefix}-${token}'
var functionAppName = 'func-${namePrefix}-${token}'

// ------------------------------------------------------------------------------------------------------------
// Identity
// ------------------------------------------------------------------------------------------------------------

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: identityName
  location: location
  tags: tags
}

// ------------------------------------------------------------------------------------------------------------
// The modules (infra/modules/). Each gets the names it needs from the variables above; `dependsOn` orders a module
// after those whose resources it references by name.
// ------------------------------------------------------------------------------------------------------------

module storage 'modules/storage.bicep' = {
  name: take('${deployment().name}-storage', 64)
  params: {
    location: location
    tags: tags
    storageAccountName: storageAccountName
    storageSku: storageSku
    lakeContainerName: lakeContainerName
    stateContainerName: stateContainerName
    deploymentContainerName: deploymentContainerName
    blobSoftDeleteDays: blobSoftDeleteDays
    claimCheckRetentionDays: claimCheckRetentionDays
    quarantineRetentionDays: quarantineRetentionDays
    detectionStateRetentionDays: detectionStateRetentionDays
    lakeCoolAfterDays: lakeCoolAfterDays
    lakeDeleteAfterDays: lakeDeleteAfterDays
    logTablesDeleteAfterDays: logTablesDeleteAfterDays
  }
}

module eventHubs 'modules/eventhubs.bicep' = {
  name: take('${deployment().name}-eventhubs', 64)
  params: {
    location: location
    tags: tags
    eventHubNamespaceName: eventHubNamespaceName
    eventHubSku: eventHubSku
    eventHubCapacity: eventHubCapacity
    eventHubAutoInflate: eventHubAutoInflate
    eventHubMaxThroughputUnits: eventHubMaxThroughputUnits
    eventHubName: eventHubName
    eventHubPartitionCount: eventHubPartitionCount
    eventHubRetentionDays: eventHubRetentionDays
    eventHubConsumerGroupName: eventHubConsumerGroupName
    logsEventHubName: logsEventHubName
    logsEventHubConsumerGroupName: logsEventHubConsumerGroupName
    diagnosticSettingsSendRule: diagnosticSettingsSendRule
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: take('${deployment().name}-monitoring', 64)
  params: {
    location: location
    tags: tags
    logAnalyticsName: logAnalyticsName
    appInsightsName: appInsightsName
    logRetentionDays: logRetentionDays
    logBlobReads: logBlobReads
    storageAccountName: storageAccountName
    eventHubNamespaceName: eventHubNamespaceName
  }
  // The diagnostic settings' scopes: the blob service and the namespace.
  dependsOn: [
    storage
    eventHubs
  ]
}

module alerts 'modules/alerts.bicep' = {
  name: take('${deployment().name}-alerts', 64)
  params: {
    location: location
    tags: tags
    namePrefix: namePrefix
    token: token
    actionGroupName: actionGroupName
    logAnalyticsName: logAnalyticsName
    alertEmail: alertEmail
    alertConsecutiveFailures: alertConsecutiveFailures
    pullMaxLagSeconds: pullMaxLagSeconds
    logsMaxSilenceSeconds: logsMaxSilenceSeconds
    pullMaxClockSkewSeconds: pullMaxClockSkewSeconds
  }
  // The rules' scope: the workspace.
  dependsOn: [
    monitoring
  ]
}

module roleAssignments 'modules/roles.bicep' = {
  name: take('${deployment().name}-roles', 64)
  params: {
    identityName: identityName
    storageAccountName: storageAccountName
    lakeContainerName: lakeContainerName
    eventHubNamespaceName: eventHubNamespaceName
    eventHubName: eventHubName
    logsEventHubName: logsEventHubName
    appInsightsName: appInsightsName
    lakeReaderPrincipalIds: lakeReaderPrincipalIds
    lakeReaderPrincipalType: lakeReaderPrincipalType
  }
  // The principal and the scopes: the identity, the storage account and lake container, the namespace and hub,
  // Application Insights.
  dependsOn: [
    identity
    storage
    eventHubs
    monitoring
  ]
}

module app 'modules/functionapp.bicep' = {
  name: take('${deployment().name}-functionapp', 64)
  params: {
    location: location
    tags: tags
    planName: planName
    functionAppName: functionAppName
    identityName: identityName
    storageAccountName: storageAccountName
    lakeContainerName: lakeContainerName
    stateContainerName: stateContainerName
    deploymentContainerName: deploymentContainerName
    appInsightsName: appInsightsName
    eventHubFqdn: eventHubs.outputs.fullyQualifiedNamespace
    eventHubName: eventHubName
    eventHubConsumerGroupName: eventHubConsumerGroupName
    logsEventHubName: logsEventHubName
    logsEventHubConsumerGroupName: logsEventHubConsumerGroupName
    eventHubProviderHubs: eventHubProviderHubs
    pythonVersion: pythonVersion
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    zoneRedundant: zoneRedundant
    graphEndpoint: graphEndpoint
    graphAuthorityHost: graphAuthorityHost
    graphTenantId: graphTenantId
    graphCredential: graphCredential
    graphClientId: graphClientId
    graphClientSecret: graphClientSecret
    sourceId: sourceId
    sourceLabel: sourceLabel
    graphSources: graphSources
    pullSchedule: pullSchedule
    pullMaxLagSeconds: pullMaxLagSeconds
    logsMaxSilenceSeconds: logsMaxSilenceSeconds
    pullMaxClockSkewSeconds: pullMaxClockSkewSeconds
    compactSchedule: compactSchedule
    appSettingOverrides: appSettingOverrides
  }
  // Start the app only once its roles, containers and consumer group exist (Event Hubs: through eventHubFqdn).
  dependsOn: [
    identity
    storage
    monitoring
    roleAssignments
  ]
}

// ------------------------------------------------------------------------------------------------------------
// Outputs (read by deploy.sh and grant-graph-permission.sh)
// ------------------------------------------------------------------------------------------------------------

output functionAppName string = app.outputs.functionAppName
output identityName string = identity.name
output identityPrincipalId string = identity.properties.principalId
output identityClientId string = identity.properties.clientId
output storageAccountName string = storage.outputs.storageAccountName
output lakeUrl string = storage.outputs.lakeUrl
output lakeContainerId string = storage.outputs.lakeContainerId
output stateUrl string = storage.outputs.stateUrl
output eventHubNamespace string = eventHubs.outputs.fullyQualifiedNamespace
output eventHubName string = eventHubs.outputs.eventHubName
output logsEventHubName string = eventHubs.outputs.logsEventHubName
output diagnosticsRuleId string = eventHubs.outputs.diagnosticsRuleId
output appInsightsName string = monitoring.outputs.appInsightsName
output graphEndpoint string = graphEndpoint
