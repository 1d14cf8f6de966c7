// A Flex Consumption (FC1) plan: Linux, scale to zero, billed per instance memory x execution time.
param name string
param location string = resourceGroup().location
param tags object = {}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: name
  location: location
  tags: tags
  kind: 'functionapp'
  //checkov:skip=CKV_AZURE_225: zone redundancy for Flex Consumption exists only in some regions and would make the template fail elsewhere; the API is stateless and its state lives in storage
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

output id string = plan.id
output name string = plan.name
