// graphlake: Microsoft Graph security alerts (alerts_v2) -> Event Hubs -> parquet lake.
//
// Deploys into one resource group (infra/deploy.sh creates it):
//   - a user-assigned managed identity, the only identity the app uses (host storage, lake and state blobs,
//     Event Hubs send and receive, Application Insights, Microsoft Graph);
//   - a storage account (shared keys off) with the lake, state and Flex deployment containers;
//   - an Event Hubs namespace (SAS off) with the alerts hub and the normalizer's consumer group;
//   - Log Analytics + Application Insights (Entra authentication only);
//   - a Flex Consumption plan and the Python function app, with every app setting the code reads;
//   - a lifecycle policy (claim checks, quarantine and ended detections state expire; the lake may move to cool,
//     and is kept);
//   - diagnostic settings of the blob service and the Event Hubs namespace into the workspace;
//   - log search alert rules on graphlake's health records, mailed through an action group when alertEmail is set.
//
// The Microsoft Graph application role (SecurityAlert.Read.All) is NOT granted here: that needs the Microsoft
// Graph Bicep extension (registry access at build time, and offline parsers cannot read it). Run
// infra/grant-graph-permission.sh after this deployment.
//
// Keep this file readable by pycep-parser and tree-sitter-bicep (tests/infra/): no `extension`,
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

@description('Delete lake files this many days after they were written; 0 (the default) never deletes the lake.')
@minValue(0)
@maxValue(36500)
param lakeDeleteAfterDays int = 0

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
// Parameters: Microsoft Graph and the pull (app settings; defaults are those of shared/settings.py)
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
@description('More app settings, merged last (they win over the settings below, and over the parameters). For tuning (e.g. PULL_LOOKBACK_DAYS) or Key Vault references. String values only. Only names from shared/settings.py belong here.')
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

// ------------------------------------------------------------------------------------------------------------
// Names and role ids
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

// Built-in role definition ids (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  eventHubsDataSender: '2b629674-e913-4c01-ae53-ef4638d8f975'
  eventHubsDataReceiver: 'a638d3c7-ab3a-418d-83e6-5f17a39d4fde'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  storageBlobDataReader: '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
}

// ------------------------------------------------------------------------------------------------------------
// Identity
// ------------------------------------------------------------------------------------------------------------

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: identityName
  location: location
  tags: tags
}

// ------------------------------------------------------------------------------------------------------------
// Storage: lake, state, Flex deployment package and the Functions host's own containers
// ------------------------------------------------------------------------------------------------------------

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_43: the name is an expression checkov cannot evaluate: 'st' + namePrefix without hyphens + uniqueString(), lower-cased and cut to 24 characters (3-24 lowercase letters and digits for a prefix of letters, digits and hyphens).
  name: storageAccountName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: storageSku
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    // checkov:skip=CKV_AZURE_59: Flex Consumption without VNet integration reaches storage over public endpoints from shared outbound addresses; access is Entra-only (shared keys disabled) and RBAC-scoped to one identity.
    publicNetworkAccess: 'Enabled'
    // checkov:skip=CKV_AZURE_35: the app's outbound addresses are shared and change, so a firewall cannot list them; access is Entra-only (shared keys disabled) and RBAC-scoped to one identity.
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: blobSoftDeleteDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: blobSoftDeleteDays
    }
  }
}

resource lakeContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: lakeContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource stateContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: stateContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Claim checks and quarantine expire; the lake is kept unless lakeDeleteAfterDays says otherwise. Shape of the
// rules as in Microsoft's sample "Configure a lifecycle management policy" (Bicep tab,
// https://learn.microsoft.com/azure/storage/blobs/lifecycle-management-policy-configure) and the type reference
// Microsoft.Storage/storageAccounts/managementPolicies. A prefixMatch starts with the container's name.
var lifecycleRules = concat([
  {
    name: 'claim-checks'
    prefix: '${stateContainerName}/claimchecks/'
    action: {
      delete: {
        daysAfterModificationGreaterThan: claimCheckRetentionDays
      }
    }
  }
  {
    name: 'quarantine'
    prefix: '${stateContainerName}/quarantine/'
    action: {
      delete: {
        daysAfterModificationGreaterThan: quarantineRetentionDays
      }
    }
  }
  // An alert's dedup state and sent marker are read only while its dedup period is open (at most a day); the
  // outbox (detections/outbox/) keeps undelivered alerts until a destination takes them, so it has no rule.
  {
    name: 'detection-alert-state'
    prefix: '${stateContainerName}/detections/alerts/'
    action: {
      delete: {
        daysAfterModificationGreaterThan: detectionStateRetentionDays
      }
    }
  }
  {
    name: 'detection-sent-markers'
    prefix: '${stateContainerName}/detections/sent/'
    action: {
      delete: {
        daysAfterModificationGreaterThan: detectionStateRetentionDays
      }
    }
  }
], lakeCoolAfterDays > 0 ? [
  {
    name: 'lake-to-cool'
    prefix: '${lakeContainerName}/'
    action: {
      tierToCool: {
        daysAfterModificationGreaterThan: lakeCoolAfterDays
      }
    }
  }
] : [], lakeDeleteAfterDays > 0 ? [
  {
    name: 'lake-delete'
    prefix: '${lakeContainerName}/'
    action: {
      delete: {
        daysAfterModificationGreaterThan: lakeDeleteAfterDays
      }
    }
  }
] : [])

resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    policy: {
      rules: [for rule in lifecycleRules: {
        enabled: true
        name: rule.name
        type: 'Lifecycle'
        definition: {
          actions: {
            baseBlob: rule.action
          }
          filters: {
            blobTypes: [
              'blockBlob'
            ]
            prefixMatch: [
              rule.prefix
            ]
          }
        }
      }]
    }
  }
  // The containers first: a rule's prefix names one.
  dependsOn: [
    lakeContainer
    stateContainer
  ]
}

// ------------------------------------------------------------------------------------------------------------
// Event Hubs
// ------------------------------------------------------------------------------------------------------------

resource eventHubNamespace 'Microsoft.EventHub/namespaces@2024-01-01' = {
  name: eventHubNamespaceName
  location: location
  tags: tags
  sku: {
    name: eventHubSku
    tier: eventHubSku
    capacity: eventHubCapacity
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
    isAutoInflateEnabled: eventHubSku == 'Standard' && eventHubAutoInflate
    maximumThroughputUnits: eventHubSku == 'Standard' && eventHubAutoInflate ? eventHubMaxThroughputUnits : 0
  }
}

resource eventHub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' = {
  parent: eventHubNamespace
  name: eventHubName
  properties: {
    partitionCount: eventHubPartitionCount
    messageRetentionInDays: eventHubRetentionDays
  }
}

resource consumerGroup 'Microsoft.EventHub/namespaces/eventhubs/consumergroups@2024-01-01' = {
  parent: eventHub
  name: eventHubConsumerGroupName
  properties: {
    userMetadata: 'normalize_alerts (graphlake)'
  }
}

// ------------------------------------------------------------------------------------------------------------
// Monitoring: Application Insights on Log Analytics, Entra authentication only
// ------------------------------------------------------------------------------------------------------------

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: logRetentionDays
    features: {
      disableLocalAuth: true
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
    DisableLocalAuth: true
    IngestionMode: 'LogAnalytics'
  }
}

// Resource logs into the workspace: who wrote or deleted which blob (the lake, the state), and the Event Hubs
// namespace's operational and auto-inflate logs. Shape as in Microsoft's "Resource Manager template samples for
// diagnostic settings in Azure Monitor" (https://learn.microsoft.com/azure/azure-monitor/essentials/resource-manager-diagnostic-settings:
// storage accounts take the setting on the blob service, not the account).
resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'graphlake-blob'
  scope: blobService
  properties: {
    workspaceId: logAnalytics.id
    logs: [
      {
        category: 'StorageWrite'
        enabled: true
      }
      {
        category: 'StorageDelete'
        enabled: true
      }
      {
        category: 'StorageRead'
        enabled: logBlobReads
      }
    ]
    metrics: [
      {
        category: 'Transaction'
        enabled: true
      }
    ]
  }
}

resource eventHubDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'graphlake-eventhubs'
  scope: eventHubNamespace
  properties: {
    workspaceId: logAnalytics.id
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

// ------------------------------------------------------------------------------------------------------------
// Role assignments: least privilege, each scoped to the one resource it is about
// ------------------------------------------------------------------------------------------------------------

// Host storage (timer locks, Event Hubs checkpoints and leases, host keys), the Flex deployment package, the lake
// and the state all live in this one account. The Functions host needs Storage Blob Data Owner on the account that
// backs AzureWebJobsStorage (it creates its own containers), which also covers the lake and state containers, so
// no narrower Contributor assignment is added beside it. No queue or table roles: the app uses neither.
resource storageBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    description: 'graphlake: Functions host storage, deployment package, lake and state'
  }
}

// pull_alerts sends to the alerts hub and to any per-provider hub named in EVENTHUB_PROVIDER_HUBS, so the sender
// role sits on the namespace (still not the group).
resource eventHubSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(eventHubNamespace.id, identity.id, roles.eventHubsDataSender)
  scope: eventHubNamespace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.eventHubsDataSender)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    description: 'graphlake: pull_alerts sends alerts'
  }
}

// normalize_alerts reads only the alerts hub.
resource eventHubReceiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(eventHub.id, identity.id, roles.eventHubsDataReceiver)
  scope: eventHub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.eventHubsDataReceiver)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    description: 'graphlake: normalize_alerts reads alerts'
  }
}

// Application Insights with local auth disabled accepts telemetry only from identities with this role.
resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, identity.id, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    description: 'graphlake: telemetry with Entra authentication'
  }
}

// People and tools that search the lake: read-only, on the lake container alone (not state, not host storage).
resource lakeReaders 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for principalId in lakeReaderPrincipalIds: {
  name: guid(lakeContainer.id, principalId, roles.storageBlobDataReader)
  scope: lakeContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataReader)
    principalId: principalId
    principalType: lakeReaderPrincipalType
    description: 'graphlake: read the lake (graphlake search and query)'
  }
}]

// ------------------------------------------------------------------------------------------------------------
// App settings: every setting of shared/settings.py (same names, same defaults unless derived from a resource),
// plus the host's identity-based connections. Checked by tests/infra/test_settings_contract.py.
// ------------------------------------------------------------------------------------------------------------

// serviceBusEndpoint is https://<namespace>.<cloud's Service Bus suffix>:443/ ; keep the host name.
var eventHubFqdn = split(split(eventHubNamespace.properties.serviceBusEndpoint, '/')[2], ':')[0]
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
  // Start the app only once its roles, containers and consumer group exist.
  dependsOn: [
    consumerGroup
    storageBlobOwner
    eventHubSender
    eventHubReceiver
    metricsPublisher
  ]
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

// ------------------------------------------------------------------------------------------------------------
// Alert rules on graphlake's health records
// ------------------------------------------------------------------------------------------------------------

// Every run logs its health record (shared/health.py) as one trace line `graphlake.health {json}`, which
// workspace-based Application Insights stores in the workspace's AppTraces table, Message column. The rules read
// the record's fields (component, key, result, consecutive_failures, lag_seconds, quarantined, late_found, ...)
// from that JSON. Shapes as in Microsoft's samples: the action group as in azure-quickstart-templates
// quickstarts/microsoft.insights/insights-alertrules-servicehealth/main.bicep, the log search alert rules as in
// "Resource Manager template samples for log search alert rules in Azure Monitor"
// (https://learn.microsoft.com/azure/azure-monitor/alerts/resource-manager-alerts-log) and the type reference
// Microsoft.Insights/scheduledQueryRules.
var healthEvents = '''
AppTraces
| where Message startswith "graphlake.health {"
| extend h = parse_json(substring(Message, strlen("graphlake.health ")))
| extend component = tostring(h.component), key = tostring(h.key)
'''

// Each rule fires when its query returns a row (one alert per `dimension` value: a source or a partition), except
// pull-silent, which fires when no pull reported at all in its window (the app stopped, or cannot start).
var alertRules = [
  {
    name: 'pull-failing'
    severity: 1
    window: 'PT15M'
    operator: 'GreaterThan'
    dimension: 'source'
    description: 'A source failed ${alertConsecutiveFailures} pull runs in a row or more: its alerts are not reaching the lake. The error says why (403: the Graph permission; 429/5xx: Graph; storage or Event Hubs errors).'
    query: '${healthEvents}| where component == "pull" | summarize arg_max(TimeGenerated, h) by key | where toint(h.consecutive_failures) >= ${alertConsecutiveFailures} | project source = key, consecutive_failures = toint(h.consecutive_failures), error = tostring(h.error)'
  }
  {
    name: 'pull-lagging'
    severity: 2
    window: 'PT15M'
    operator: 'GreaterThan'
    dimension: 'source'
    description: 'A source lags more than ${pullMaxLagSeconds} seconds (PULL_MAX_LAG_SECONDS) behind Graph (its watermark against the time of the run), or has slices it could not confirm complete.'
    query: '${healthEvents}| where component == "pull" | summarize arg_max(TimeGenerated, h) by key | where todouble(h.lag_seconds) > ${pullMaxLagSeconds} or toint(h.unconfirmed_slices) > 0 | project source = key, lag_minutes = round(todouble(h.lag_seconds) / 60, 1), watermark = tostring(h.watermark), unconfirmed_slices = toint(h.unconfirmed_slices)'
  }
  {
    name: 'pull-silent'
    severity: 1
    window: 'PT30M'
    operator: 'LessThan'
    dimension: ''
    description: 'No pull reported its health for 30 minutes: the function app is stopped, cannot start, or cannot log.'
    query: '${healthEvents}| where component == "pull" | project source = key, result = tostring(h.result)'
  }
  {
    name: 'normalize-failing'
    severity: 1
    window: 'PT15M'
    operator: 'GreaterThan'
    dimension: 'partition'
    description: 'The normalizer failed on a partition, or gave up on a batch and quarantined it whole: events are not reaching the lake until it recovers (graphlake replay re-ingests the quarantined ones after a fix).'
    query: '${healthEvents}| where component == "normalize" and tostring(h.result) in ("failed", "gave_up") | summarize arg_max(TimeGenerated, h) by key | project partition = key, result = tostring(h.result), consecutive_failures = toint(h.consecutive_failures), error = tostring(h.error)'
  }
  {
    name: 'quarantine-growing'
    severity: 2
    window: 'PT15M'
    operator: 'GreaterThan'
    dimension: 'partition'
    description: 'Events were quarantined: bad input, or a batch the normalizer gave up on. graphlake replay re-ingests them after a fix.'
    query: '${healthEvents}| where component == "normalize" | summarize quarantined = sum(toint(h.quarantined)) by key | where quarantined > 0 | project partition = key, quarantined'
  }
  {
    name: 'reconcile-late-alerts'
    severity: 3
    window: 'PT1H'
    operator: 'GreaterThan'
    dimension: 'source'
    description: 'Reconciliation found alert versions the lake lacked: Graph published them later than the pull overlap covers (repaired, unless the error says otherwise), or reconciliation failed.'
    query: '${healthEvents}| where component == "reconcile" | where toint(h.late_found) > 0 or toint(h.missing) > toint(h.repaired) or tostring(h.result) != "ok" | project source = key, late_found = toint(h.late_found), missing = toint(h.missing), repaired = toint(h.repaired), error = tostring(h.error)'
  }
  {
    name: 'detections-undelivered'
    severity: 2
    window: 'PT30M'
    operator: 'GreaterThan'
    dimension: ''
    description: 'Every delivery run of the last 30 minutes left detection alerts in the outbox: a destination keeps failing, or ALERT_DESTINATIONS cannot be used. The alerts wait there and are sent once it is fixed; the error says which destination.'
    query: '${healthEvents}| where component == "detections" and key == "delivery" | summarize waiting = min(toint(h.undelivered)), error = take_anyif(tostring(h.error), isnotempty(tostring(h.error))) | where waiting > 0 | project waiting, error'
  }
]

// No e-mail, no action group: the rules still fire and show in the portal (Monitor > Alerts).
resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: actionGroupName
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'graphlake'
    enabled: true
    emailReceivers: [
      {
        name: 'graphlake-operator'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

resource healthAlerts 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [for rule in alertRules: {
  name: '${namePrefix}-${rule.name}-${token}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'graphlake: ${rule.name}'
    description: rule.description
    severity: rule.severity
    enabled: true
    scopes: [
      logAnalytics.id
    ]
    evaluationFrequency: 'PT15M'
    windowSize: rule.window
    criteria: {
      allOf: [
        {
          query: rule.query
          timeAggregation: 'Count'
          operator: rule.operator
          threshold: rule.operator == 'LessThan' ? 1 : 0
          dimensions: empty(rule.dimension) ? [] : [
            {
              name: rule.dimension
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    // A new workspace has no AppTraces rows until the app first logs; the queries are checked offline instead
    // (tests/infra/test_alert_rules.py).
    skipQueryValidation: true
    actions: {
      actionGroups: empty(alertEmail) ? [] : [
        resourceId('Microsoft.Insights/actionGroups', actionGroupName)
      ]
    }
  }
  dependsOn: [
    actionGroup
  ]
}]

// ------------------------------------------------------------------------------------------------------------
// Outputs (read by deploy.sh and grant-graph-permission.sh)
// ------------------------------------------------------------------------------------------------------------

output functionAppName string = functionApp.name
output identityName string = identity.name
output identityPrincipalId string = identity.properties.principalId
output identityClientId string = identity.properties.clientId
output storageAccountName string = storage.name
output lakeUrl string = '${blobEndpoint}${lakeContainer.name}'
output lakeContainerId string = lakeContainer.id
output stateUrl string = '${blobEndpoint}${stateContainer.name}'
output eventHubNamespace string = eventHubFqdn
output eventHubName string = eventHub.name
output appInsightsName string = appInsights.name
output graphEndpoint string = graphEndpoint
