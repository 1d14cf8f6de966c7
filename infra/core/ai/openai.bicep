// An Azure OpenAI account reachable only with Entra ID (disableLocalAuth) through its custom
// subdomain, and one image-model deployment.
param name string
param location string = resourceGroup().location
param tags object = {}

@description('Custom subdomain: {customSubDomainName}.openai.azure.com; Entra ID tokens need it.')
param customSubDomainName string = name

param deploymentName string
param modelName string
param modelVersion string
param deploymentSkuName string
param deploymentCapacity int

@description('OpenAI for Azure OpenAI models; Black Forest Labs for FLUX.')
param modelFormat string = 'OpenAI'

@description('OpenAI, or AIServices (a Foundry resource) for models not sold as Azure OpenAI, such as FLUX.')
@allowed([
  'OpenAI'
  'AIServices'
])
param kind string = 'OpenAI'

resource account 'Microsoft.CognitiveServices/accounts@2024-10-01' = {
  name: name
  location: location
  tags: tags
  kind: kind
  sku: {
    name: 'S0'
  }
  //checkov:skip=CKV_AZURE_134: Flex Consumption without VNet integration calls Azure OpenAI over its public endpoint; local keys are disabled, so every call needs an Entra token with the OpenAI User role
  //checkov:skip=CKV_AZURE_238: the account makes no outbound calls of its own (no data sources, no customer-managed keys), so it needs no managed identity
  properties: {
    customSubDomainName: customSubDomainName
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
    }
  }
}

resource deployment 'Microsoft.CognitiveServices/accounts/deployments@2024-10-01' = {
  parent: account
  name: deploymentName
  sku: {
    name: deploymentSkuName
    capacity: deploymentCapacity
  }
  properties: {
    model: {
      format: modelFormat
      name: modelName
      version: modelVersion
    }
  }
}

output name string = account.name
output endpoint string = account.properties.endpoint
output location string = account.location
output deploymentName string = deployment.name
