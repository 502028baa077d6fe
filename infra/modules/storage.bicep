// graphlake storage (a module of infra/main.bicep): the storage account that holds the lake, the state, the Flex
// deployment package and the Functions host's own containers, its blob service (soft delete) and containers, and
// the lifecycle policy of the lake and the state.
//
// Parameters: main.bicep's, under the same names (it documents them and sets their limits), and the account's name,
// which main.bicep computes.

param location string
param tags object
param storageAccountName string
// main.bicep always passes storageSku. Its default here is main.bicep's for checkov, which does not follow what
// main.bicep passes: with it, checkov checks the replication the deployment gets by default (CKV_AZURE_206).
param storageSku string = 'Standard_GRS'
param lakeContainerName string
param stateContainerName string
param deploymentContainerName string
param blobSoftDeleteDays int
param claimCheckRetentionDays int
param quarantineRetentionDays int
param detectionStateRetentionDays int
param lakeCoolAfterDays int
param lakeDeleteAfterDays int
param logTablesDeleteAfterDays int

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

// Claim checks and quarantine expire; the lake, and the matched markers with it, are kept unless
// lakeDeleteAfterDays says otherwise. Shape of the rules as in Microsoft's sample "Configure a lifecycle management
// policy" (Bicep tab, https://learn.microsoft.com/azure/storage/blobs/lifecycle-management-policy-configure) and the
// type reference Microsoft.Storage/storageAccounts/managementPolicies. A prefixMatch starts with the container's name.
//
// A matched marker (detections/matched/) keeps a rule from alerting twice on one alert version, so it lives as long as
// the version can come back. While the lake keeps the version (for ever, unless lakeDeleteAfterDays says otherwise)
// the marker stays too: a backfill over any old day, from Graph or from files, lands nothing it has not seen. Past
// the lake's deletion, only graphlake's own storage can still bring a version back: a re-send (a lost watermark
// re-reads PULL_LOOKBACK_DAYS, 7 days; the reconciliation looks back a day) waits in the hub with its claim check
// (claimCheckRetentionDays, longer than the hub's retention), then in quarantine for `graphlake replay`
// (quarantineRetentionDays). A day more for the lifecycle policy's own daily run.
var resendDays = 8
var matchedStateRetentionDays = max(lakeDeleteAfterDays, claimCheckRetentionDays + quarantineRetentionDays + resendDays) + 1

// The tables normalize_logs lands Azure Monitor records in. Sign-ins are most of the lake's bytes (the README's cost
// table), so they may go sooner than the alerts; their quarantine and health records are under the state prefixes
// above, with the alerts'. A record deleted here cannot alert twice if it comes back: the matched markers follow
// lakeDeleteAfterDays, never sooner.
var logTables = [
  'entra_signin_logs'
  'entra_audit_logs'
  'entra_risk_events'
  'azure_activity_logs'
]
var logTableRules = [for table in logTables: {
  name: 'logs-delete-${replace(table, '_', '-')}'
  prefix: '${lakeContainerName}/${table}/'
  action: {
    delete: {
      daysAfterModificationGreaterThan: logTablesDeleteAfterDays
    }
  }
}]

// Their indicator indexes (shared/core/layout.py: _index/<table>/...) hold the same users' names and addresses: they
// go by the same age, or a shorter retention for the logs would leave their indicators behind.
var logTableIndexRules = [for table in logTables: {
  name: 'logs-delete-${replace(table, '_', '-')}-index'
  prefix: '${lakeContainerName}/_index/${table}/'
  action: {
    delete: {
      daysAfterModificationGreaterThan: logTablesDeleteAfterDays
    }
  }
}]

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
  // outbox (detections/outbox/) keeps undelivered alerts until a destination takes them, so it has no rule; the
  // matched markers (detections/matched/) go with the lake, below.
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
  {
    name: 'detection-matched-state'
    prefix: '${stateContainerName}/detections/matched/'
    action: {
      delete: {
        daysAfterModificationGreaterThan: matchedStateRetentionDays
      }
    }
  }
] : [], logTablesDeleteAfterDays > 0 ? concat(logTableRules, logTableIndexRules) : [])

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

output storageAccountName string = storage.name
output lakeUrl string = '${storage.properties.primaryEndpoints.blob}${lakeContainer.name}'
output lakeContainerId string = lakeContainer.id
output stateUrl string = '${storage.properties.primaryEndpoints.blob}${stateContainer.name}'
