// Cognitive Services OpenAI User on the account, for the app's identity and optionally for the
// deploying user (to run the app locally against the same account); with a FLUX model also
// Cognitive Services User, which Foundry models (not sold as Azure OpenAI) need for inference.
// Deployed to the account's resource group, which is not ours when an existing account is used.
param openAiAccountName string
param identityPrincipalId string

@description('Also grant Cognitive Services User (FLUX and other Foundry models).')
param grantFoundryModelUser bool = false

@description('Object id of the deploying user or principal; empty to grant nothing.')
param userPrincipalId string = ''

@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param userPrincipalType string = 'User'

var roles = loadJsonContent('roles.json')

resource account 'Microsoft.CognitiveServices/accounts@2024-10-01' existing = {
  name: openAiAccountName
}

resource identityOpenAiUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, identityPrincipalId, roles.cognitiveServicesOpenAIUser)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.cognitiveServicesOpenAIUser)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource userOpenAiUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(userPrincipalId)) {
  name: guid(account.id, userPrincipalId, roles.cognitiveServicesOpenAIUser)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.cognitiveServicesOpenAIUser)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

resource identityFoundryUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantFoundryModelUser) {
  name: guid(account.id, identityPrincipalId, roles.cognitiveServicesUser)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.cognitiveServicesUser)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource userFoundryUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantFoundryModelUser && !empty(userPrincipalId)) {
  name: guid(account.id, userPrincipalId, roles.cognitiveServicesUser)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.cognitiveServicesUser)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}
