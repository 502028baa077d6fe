// graphlake monitoring (a module of infra/main.bicep): Log Analytics and Application Insights on it, Entra
// authentication only, and the diagnostic settings that send the blob service's and the Event Hubs namespace's
// logs and metrics to the workspace.
//
// Parameters: main.bicep's, under the same names (it documents them and sets their limits), and the names main.bicep
// computes. The blob service and the namespace are the storage and Event Hubs modules' resources, referenced by
// those names (main.bicep deploys this module after them).

param location string
param tags object
param logAnalyticsName string
param appInsightsName string
param logRetentionDays int
param logBlobReads bool
param storageAccountName string
param eventHubNamespaceName string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource eventHubNamespace 'Microsoft.EventHub/namespaces@2024-01-01' existing = {
  name: eventHubNamespaceName
}

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

output appInsightsName string = appInsights.name
