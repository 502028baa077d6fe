// graphlake Event Hubs (a module of infra/main.bicep): the namespace (SAS off unless diagnosticSettingsSendRule), the
// alerts hub and the normalizer's consumer group, the logs hub Azure Monitor diagnostic settings stream to and
// normalize_logs's consumer group, and (with diagnosticSettingsSendRule) the Send-only rule those settings name.
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
param logsEventHubName string
param logsEventHubConsumerGroupName string
// main.bicep always passes it. Its default here is main.bicep's for checkov, which does not follow what main.bicep
// passes: with it, checkov checks the namespace a default deployment gets (local auth off).
param diagnosticSettingsSendRule bool = false

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
    // Azure Monitor's diagnostic settings deliver with an authorization rule's key (SAS), the only way Microsoft
    // documents; with SAS refused they cannot deliver. So the namespace accepts SAS only when the deployment asks
    // for that rule (the README, "Logs beside the alerts", says what that opens). graphlake's own clients always
    // use Entra ID.
    disableLocalAuth: !diagnosticSettingsSendRule
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

// The logs hub: Azure Monitor diagnostic settings (the subscription's Activity log, the tenant's Entra logs) send
// `{"records": [...]}` bodies here; normalize_logs reads them. Partitions and retention as the alerts hub.
resource logsEventHub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' = {
  parent: eventHubNamespace
  name: logsEventHubName
  properties: {
    partitionCount: eventHubPartitionCount
    messageRetentionInDays: eventHubRetentionDays
  }
}

resource logsConsumerGroup 'Microsoft.EventHub/namespaces/eventhubs/consumergroups@2024-01-01' = {
  parent: logsEventHub
  name: logsEventHubConsumerGroupName
  properties: {
    userMetadata: 'normalize_logs (graphlake)'
  }
}

// Least privilege for Azure Monitor: Send only, on the logs hub alone (not the namespace, not the alerts hub). ARM
// asks for Manage as well only when a diagnostic setting names no hub; deploy.sh always names this one.
resource diagnosticsSendRule 'Microsoft.EventHub/namespaces/eventhubs/authorizationRules@2024-01-01' = if (diagnosticSettingsSendRule) {
  parent: logsEventHub
  name: 'azure-monitor-send'
  properties: {
    rights: [
      'Send'
    ]
  }
}

// serviceBusEndpoint is https://<namespace>.<cloud's Service Bus suffix>:443/ ; keep the host name.
var eventHubFqdn = split(split(eventHubNamespace.properties.serviceBusEndpoint, '/')[2], ':')[0]

// The host name of the namespace: EventHubConnection__fullyQualifiedNamespace, and deploy.sh's eventHubNamespace.
output fullyQualifiedNamespace string = eventHubFqdn
output eventHubName string = eventHub.name
output logsEventHubName string = logsEventHub.name
// What deploy.sh's diagnostic settings name as eventHubAuthorizationRuleId; empty without the rule.
output diagnosticsRuleId string = diagnosticSettingsSendRule ? diagnosticsSendRule.id : ''
