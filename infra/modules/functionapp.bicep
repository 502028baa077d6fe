// graphlake function app (a module of infra/main.bicep): the Flex Consumption plan, the Python function app with
// every app setting the code reads, and no FTP or SCM basic-auth publishing.
//
// Parameters: main.bicep's, under the same names (it documents them and sets their limits), the names main.bicep
// computes, and the Event Hubs namespace's host name (an output of the Event Hubs module). The identity, the storage
// account and its containers and Application Insights are main.bicep's and the other modules' resources, referenced
// by those names; main.bicep deploys this module after them and after the role assignments, so the app starts only
// once its roles, containers and consumer group exist.

param location string
param tags object
param planName string
param functionAppName string
param identityName string
param storageAccountName string
param lakeContainerName string
param stateContainerName string
param deploymentContainerName string
param appInsightsName string
param eventHubFqdn string
param eventHubName string
param eventHubConsumerGroupName string
param logsEventHubName string
param logsEventHubConsumerGroupName string
param eventHubProviderHubs string
param pythonVersion string
param instanceMemoryMB int
param maximumInstanceCount int
param zoneRedundant bool
param graphEndpoint string
param graphAuthorityHost string
param graphTenantId string
param graphCredential string
param graphClientId string
@secure()
param graphClientSecret string
param sourceId string
param sourceLabel string
param graphSources string
param pullSchedule string
param pullMaxLagSeconds int
param logsMaxSilenceSeconds int
param pullMaxClockSkewSeconds int
param compactSchedule string
param appSettingOverrides object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' existing = {
  name: identityName
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource lakeContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: lakeContainerName
}

resource stateContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: stateContainerName
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: deploymentContainerName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

// ------------------------------------------------------------------------------------------------------------
// App settings: every setting of shared/core/settings.py (same names, same defaults unless derived from a resource),
// plus the host's identity-based connections. Checked by tests/infra/test_settings_contract.py.
// ------------------------------------------------------------------------------------------------------------

var blobEndpoint = storage.properties.primaryEndpoints.blob

var appSettings = {
  // Host storage through the identity (Flex Consumption: no connection string, no content share).
  AzureWebJobsStorage__accountName: storage.name
  AzureWebJobsStorage__blobServiceUri: blobEndpoint
  AzureWebJobsStorage__queueServiceUri: storage.properties.primaryEndpoints.queue
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.properties.clientId
  // Application Insights with Entra authentication.
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.properties.clientId};Authorization=AAD'
  // Event Hubs: the trigger binding (connection="EventHubConnection") and the producer in code.
  EventHubConnection__fullyQualifiedNamespace: eventHubFqdn
  EventHubConnection__credential: 'managedidentity'
  EventHubConnection__clientId: identity.properties.clientId
  EVENTHUB_NAME: eventHubName
  EVENTHUB_CONSUMER_GROUP: eventHubConsumerGroupName
  EVENTHUB_PROVIDER_HUBS: eventHubProviderHubs
  // normalize_logs's trigger: the logs hub, on the same EventHubConnection.
  LOGS_EVENTHUB_NAME: logsEventHubName
  LOGS_EVENTHUB_CONSUMER_GROUP: logsEventHubConsumerGroupName
  LOGS_MAX_SILENCE_SECONDS: string(logsMaxSilenceSeconds)
  // SDK clients (Blob, Event Hubs) use DefaultAzureCredential with this client id.
  AZURE_CLIENT_ID: identity.properties.clientId
  // Where things are kept.
  STATE_URL: '${blobEndpoint}${stateContainer.name}'
  LAKE_URL: '${blobEndpoint}${lakeContainer.name}'
  // Microsoft Graph.
  GRAPH_ENDPOINT: graphEndpoint
  GRAPH_AUTHORITY_HOST: graphAuthorityHost
  GRAPH_TENANT_ID: graphTenantId
  GRAPH_CREDENTIAL: graphCredential
  GRAPH_CLIENT_ID: empty(graphClientId) ? identity.properties.clientId : graphClientId
  GRAPH_CLIENT_SECRET: graphClientSecret
  GRAPH_CERTIFICATE_PATH: ''
  SOURCE_ID: sourceId
  SOURCE_LABEL: sourceLabel
  GRAPH_SOURCES: graphSources
  GRAPH_MAX_REQUESTS_PER_MINUTE: '120'
  // The pull window.
  PULL_SCHEDULE: pullSchedule
  PULL_OVERLAP_SECONDS: '3600'
  PULL_DELAY_SECONDS: '0'
  PULL_LOOKBACK_DAYS: '7'
  PULL_SLICE_MINUTES: '360'
  PULL_PAGE_SIZE: '2000'
  PULL_MAX_RUN_SECONDS: '480'
  PULL_MAX_LAG_SECONDS: string(pullMaxLagSeconds)
  PULL_MAX_CLOCK_SKEW_SECONDS: string(pullMaxClockSkewSeconds)
  NORMALIZE_MAX_ATTEMPTS: '5'
  // Compaction of the lake.
  COMPACT_SCHEDULE: compactSchedule
  COMPACT_GRACE_DAYS: '1'
  COMPACT_TARGET_MB: '128'
  COMPACT_MAX_RUN_SECONDS: '480'
  // Reconciliation against Graph (reconcile_alerts).
  RECONCILE_SCHEDULE: '0 15 * * * *'
  RECONCILE_LOOKBACK_HOURS: '24'
  RECONCILE_MAX_REQUESTS_PER_MINUTE: '30'
  // Detections (detections/).
  RULES_ENABLED: 'false'
  RULES_DIR: ''
  RULES_SCHEDULE: '0 */5 * * * *'
  ALERT_DESTINATIONS: ''
  ALERT_DELIVERY_BUDGET_SECONDS: '2.0'
}

// ------------------------------------------------------------------------------------------------------------
// Flex Consumption plan and function app
// ------------------------------------------------------------------------------------------------------------

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
    // checkov:skip=CKV_AZURE_225: zone redundancy is the zoneRedundant parameter; it is off by default because Flex Consumption offers it only in some regions, where it also needs zone-redundant storage.
    zoneRedundant: zoneRedundant
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: functionAppName
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Key Vault references in app settings (GRAPH_CLIENT_SECRET) resolve with the same identity.
    keyVaultReferenceIdentity: identity.id
    // checkov:skip=CKV_AZURE_222: deploy.sh publishes the package through the app's SCM endpoint from the operator's machine, which needs public network access; the app has no HTTP trigger and its admin endpoints need keys or Entra tokens.
    publicNetworkAccess: 'Enabled'
    // checkov:skip=CKV_AZURE_17: the app has only timer and Event Hubs triggers and serves no HTTP clients whose certificates could be checked.
    clientCertEnabled: false
    // Only properties Flex Consumption accepts: it rejects ftpsState, numberOfWorkers, linuxFxVersion, alwaysOn and
    // other App Service plan settings with ARM error 51021.
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      http20Enabled: true
      // checkov:skip=CKV_AZURE_78: Flex Consumption has no FTP endpoint and rejects siteConfig.ftpsState (ARM error 51021); FTP and SCM basic-auth publishing are disabled below.
      // checkov:skip=CKV_AZURE_213: health check probes an HTTP path to take instances out of a load balancer; the app has no HTTP trigger and Flex Consumption replaces unhealthy instances itself.
      // checkov:skip=CKV_AZURE_212: siteConfig.numberOfWorkers belongs to App Service plans; Flex Consumption has no fixed worker count and adds instances per function on demand (up to maximumInstanceCount).
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${blobEndpoint}${deploymentContainer.name}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identity.id
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
}

// The app settings, as Microsoft's Flex Consumption sample sets them: a `config` child named `appsettings` whose
// properties are the settings (azure-quickstart-templates, quickstarts/microsoft.web/function-app-flex-managed-identities
// /main.bicep). Not siteConfig.appSettings: that takes a list, and a for-expression over these settings cannot
// compile, since their values come from resources (BCP178). The whole set: a redeploy replaces every app setting,
// so one removed here (or from appSettingOverrides) disappears from the app, and one set by hand in the portal is
// gone after the next deployment; overrides are merged last, so they win.
resource functionAppSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov reads every Microsoft.Web/sites/config as the site's web config; this one is the app settings dictionary,
  // where the properties these checks look for cannot be set:
  // checkov:skip=CKV_AZURE_13: App Service authentication guards HTTP endpoints; the app has only timer and Event Hubs triggers.
  // checkov:skip=CKV_AZURE_63: HTTP logging records HTTP requests; the app serves none (timer and Event Hubs triggers only).
  // checkov:skip=CKV_AZURE_65: detailed error pages are for HTTP responses; the app serves none and logs to Application Insights.
  // checkov:skip=CKV_AZURE_66: failed request tracing traces HTTP requests; the app serves none and logs to Application Insights.
  // checkov:skip=CKV_AZURE_80: the .NET Framework version does not apply to a Python function app on Flex Consumption.
  // checkov:skip=CKV_AZURE_88: Flex Consumption has no Azure Files content share; the package is in a blob container.
  // checkov:skip=CKV_AZURE_222: public network access is a property of the site (suppressed there, with its reason), not of its app settings.
  parent: functionApp
  name: 'appsettings'
  properties: union(appSettings, appSettingOverrides)
}

// No FTP or SCM basic-auth publishing: az functionapp deployment source config-zip sends an Entra token.
// `location` is not in the type (Bicep warns BCP187), but ARM has rejected these policies without it
// (Azure/bicep-types-az#1526).
resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  #disable-next-line BCP187
  location: location
  properties: {
    allow: false
  }
}

resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  #disable-next-line BCP187
  location: location
  properties: {
    allow: false
  }
}

output functionAppName string = functionApp.name
