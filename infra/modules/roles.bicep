// graphlake role assignments (a module of infra/main.bicep): least privilege, each scoped to the one resource it is
// about. The identity and the resources are main.bicep's and the other modules' (storage, Event Hubs, monitoring),
// referenced by the names main.bicep computes and passes here; main.bicep deploys this module after them. The
// assignments' names are guid()s of those resources' ids, the same whichever file declares them.
//
// Parameters: main.bicep's, under the same names (it documents them and sets their limits), and those names.

param identityName string
param storageAccountName string
param lakeContainerName string
param eventHubNamespaceName string
param eventHubName string
param logsEventHubName string
param appInsightsName string
param lakeReaderPrincipalIds array
param lakeReaderPrincipalType string

// Built-in role definition ids (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  eventHubsDataSender: '2b629674-e913-4c01-ae53-ef4638d8f975'
  eventHubsDataReceiver: 'a638d3c7-ab3a-418d-83e6-5f17a39d4fde'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  storageBlobDataReader: '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
}

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

resource eventHubNamespace 'Microsoft.EventHub/namespaces@2024-01-01' existing = {
  name: eventHubNamespaceName
}

resource eventHub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' existing = {
  parent: eventHubNamespace
  name: eventHubName
}

resource logsEventHub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' existing = {
  parent: eventHubNamespace
  name: logsEventHubName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

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

// normalize_logs reads only the logs hub. Nothing of graphlake sends there: Azure Monitor does, with its own rule.
resource logsEventHubReceiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(logsEventHub.id, identity.id, roles.eventHubsDataReceiver)
  scope: logsEventHub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.eventHubsDataReceiver)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    description: 'graphlake: normalize_logs reads Azure Monitor logs'
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
