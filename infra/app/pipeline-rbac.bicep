// Roles for the app's callers that use the queues: producers may only send to `image-requests`,
// consumers may only read and delete from `image-results`. Scoped to the one queue each, never the
// account, whose other queues (`image-jobs` and the poison queues) are the app's own.
param storageAccountName string

@description('Object ids of identities that send requests to image-requests (Storage Queue Data Message Sender on that queue).')
param producerPrincipalIds array = []

@description('Object ids of identities that read image-results (Storage Queue Data Message Processor on that queue).')
param consumerPrincipalIds array = []

@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param principalType string = 'ServicePrincipal'

param requestsQueueName string = 'image-requests'
param resultsQueueName string = 'image-results'

var roles = loadJsonContent('roles.json')

resource storageAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' existing = {
  parent: storageAccount
  name: 'default'
}

resource requestsQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = {
  parent: queueService
  name: requestsQueueName
}

resource resultsQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = {
  parent: queueService
  name: resultsQueueName
}

resource producers 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for principalId in producerPrincipalIds: {
  name: guid(requestsQueue.id, principalId, roles.storageQueueDataMessageSender)
  scope: requestsQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataMessageSender)
    principalId: principalId
    principalType: principalType
  }
}]

resource consumers 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for principalId in consumerPrincipalIds: {
  name: guid(resultsQueue.id, principalId, roles.storageQueueDataMessageProcessor)
  scope: resultsQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataMessageProcessor)
    principalId: principalId
    principalType: principalType
  }
}]
