// Reads an Azure OpenAI account that already exists (deployed to this module's resource group).
// Its model deployment must already exist too; nothing is changed on the account itself.
param name string

resource account 'Microsoft.CognitiveServices/accounts@2024-10-01' existing = {
  name: name
}

output name string = account.name
output endpoint string = account.properties.endpoint
output location string = account.location
