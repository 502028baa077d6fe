// graphlake Event Hubs (a module of infra/main.bicep): the namespace (SAS off), the alerts hub and the normalizer's
// consumer group.
//
// Parameters: main.bicep's, under the same names (it documents them and sets their limits), and the namespace's
// name, which main.bicep computes.

param location string
param tags object
param eventHubNamespaceName string
param eventHubSku string
param eventHubCapacity int
param eventHubAutoInflate bool
param eventHubMaxThroughputUnits int
param eventHubName string
param eventHubPartitionCount int
param eventHubRetentionDays int
param eventHubConsumerGroupName string

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

// serviceBusEndpoint is https://<namespace>.<cloud's Service Bus suffix>:443/ ; keep the host name.
var eventHubFqdn = split(split(eventHubNamespace.properties.serviceBusEndpoint, '/')[2], ':')[0]

// The host name of the namespace: EventHubConnection__fullyQualifiedNamespace, and deploy.sh's eventHubNamespace.
output fullyQualifiedNamespace string = eventHubFqdn
output eventHubName string = eventHub.name
