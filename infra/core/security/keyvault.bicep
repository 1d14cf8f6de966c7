// Key Vault (RBAC authorization, no access policies) holding the app's secrets: the webhook signing
// secret and the idempotency HMAC key, each when given. The app reads them through Key Vault
// references resolved by the platform with the user-assigned identity.
param name string
param location string = resourceGroup().location
param tags object = {}

param secretName string = 'webhook-secret'

@secure()
@description('The webhook signing secret; empty for none. Never output, never logged.')
param secretValue string = ''

@secure()
@description('The idempotency HMAC key (IDEMPOTENCY_SECRET); empty for none. Never output, never logged.')
param idempotencySecretValue string = ''

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    // enablePurgeProtection is left unset on purpose (it can never be turned off again):
    //checkov:skip=CKV_AZURE_110: purge protection would block `azd down --purge` and reusing the environment name for the retention period; the only secret is a rotatable webhook signing key
    //checkov:skip=CKV_AZURE_42: soft delete is on; "recoverable" also demands purge protection, see CKV_AZURE_110
    //checkov:skip=CKV_AZURE_189: Flex Consumption without VNet integration resolves Key Vault references over the public endpoint; data-plane access needs an Entra token and an RBAC role
    publicNetworkAccess: 'Enabled'
    //checkov:skip=CKV_AZURE_109: same reason as CKV_AZURE_189 (no VNet, so the firewall must allow)
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(secretValue)) {
  parent: vault
  name: secretName
  //checkov:skip=CKV_AZURE_114: contentType is set (text/plain) below; checkov does not read the properties of a conditional resource
  //checkov:skip=CKV_AZURE_41: an expiry date does not stop the platform from resolving the reference and would only add a silent cliff; the secret is rotated by redeploying with a new value
  properties: {
    value: secretValue
    contentType: 'text/plain'
  }
}

output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri
resource idempotencySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(idempotencySecretValue)) {
  parent: vault
  name: 'idempotency-secret'
  //checkov:skip=CKV_AZURE_114: contentType is set (text/plain) below; checkov does not read the properties of a conditional resource
  //checkov:skip=CKV_AZURE_41: an expiry date does not stop the platform from resolving the reference and would only add a silent cliff; the key is rotated by redeploying with a new value
  properties: {
    value: idempotencySecretValue
    contentType: 'text/plain'
  }
}

@description('Versionless URI of the webhook secret, for a Key Vault reference (the app follows rotations).')
output referenceUri string = !empty(secretValue) ? secret.properties.secretUri : ''
@description('Versionless URI of the idempotency key, for a Key Vault reference.')
output idempotencyReferenceUri string = !empty(idempotencySecretValue) ? idempotencySecret.properties.secretUri : ''
