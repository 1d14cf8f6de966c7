// Storage for the Functions host (AzureWebJobsStorage), the app's images and job records, the
// queues, and the Flex Consumption deployment package. Keyless: shared-key access is off, so every
// caller (host, app, deployment) authenticates with Entra ID.
param name string
param location string = resourceGroup().location
param tags object = {}

@description('Blob containers to create (all private).')
param containers array = []

@description('Queues to create.')
param queues array = []

@description('Blob name prefixes ("container/" or "container/path") deleted by the lifecycle rule.')
param expiringPrefixes array = []

@minValue(1)
@description('Days after the last modification when blobs under expiringPrefixes are deleted.')
param retentionDays int = 7

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  //checkov:skip=CKV_AZURE_206: generated images and job records expire after retentionDays and can be regenerated; geo-replication would double the cost for data that is not meant to last
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    //checkov:skip=CKV_AZURE_59: Flex Consumption without VNet integration reaches storage over its public endpoint; access is Entra-only (shared keys and anonymous access are off) over TLS 1.2+
    publicNetworkAccess: 'Enabled'
    dnsEndpointType: 'Standard'
    //checkov:skip=CKV_AZURE_35: same reason as CKV_AZURE_59 (no VNet, so the default network rule must allow)
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
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource blobContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for containerName in containers: {
  parent: blobService
  name: containerName
  properties: {
    publicAccess: 'None'
  }
}]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource storageQueues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for queueName in queues: {
  parent: queueService
  name: queueName
}]

// Generated images and job records are temporary by design: the SAS links are short-lived and a
// job can be regenerated, so the account deletes them after retentionDays.
resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = if (!empty(expiringPrefixes)) {
  parent: account
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'delete-generated-content'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: expiringPrefixes
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: retentionDays
                }
              }
            }
          }
        }
      ]
    }
  }
}

output id string = account.id
output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output queueEndpoint string = account.properties.primaryEndpoints.queue
