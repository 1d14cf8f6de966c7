// azd entry point: one resource group holding a keyless image-generation API on Flex Consumption.
// Every component authenticates with one user-assigned managed identity; no key, connection string
// or secret value is ever read back (no listKeys) or output. See docs/deploy.md.
targetScope = 'subscription'

// ---------------------------------------------------------------- environment
@minLength(1)
@maxLength(64)
@description('azd environment name; seeds resource names and the azd-env-name tag.')
param environmentName string

@minLength(1)
@description('Region for every resource except Azure OpenAI (see openAiLocation). Must offer Flex Consumption.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Resource group name; empty for rg-{environmentName}.')
param resourceGroupName string = ''

@description('Object id of the deploying user (azd sets AZURE_PRINCIPAL_ID); gets the same data roles as the app so it can run locally against these resources. Empty to grant nothing.')
param principalId string = ''

@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
@description('Kind of principal principalId is (ServicePrincipal when azd runs in CI).')
param principalType string = 'User'

@description('Grant the deploying principal data-plane roles (storage, Application Insights, Azure OpenAI).')
param grantDeployerAccess bool = true

// ---------------------------------------------------------------- Azure OpenAI
@description('Region for a new Azure OpenAI account; empty for location. Image models are offered in few regions.')
param openAiLocation string = ''

@description('Use this existing Azure OpenAI account instead of creating one (its model deployment must exist).')
param openAiExistingAccountName string = ''

@description('Resource group of openAiExistingAccountName (same subscription); empty for the app resource group.')
param openAiExistingResourceGroupName string = ''

@description('Image model to deploy: gpt-image-2 (default), gpt-image-1.5 or gpt-image-1-mini (see docs/models.md).')
param openAiModelName string = 'gpt-image-2'

@description('Model version to deploy (gpt-image-2: 2026-04-21).')
param openAiModelVersion string = '2026-04-21'

@description('Deployment name; empty for the model name. With an existing account: its existing deployment.')
param openAiDeploymentName string = ''

@description('Deployment SKU (GlobalStandard, Standard, ...), depending on what the model offers in the region.')
param openAiDeploymentSkuName string = 'GlobalStandard'

@minValue(1)
@description('Deployment capacity in the SKU\'s units; bounded by the subscription\'s quota for the model.')
param openAiDeploymentCapacity int = 1

// The app paces every deployment to openAiRequestsPerMinute (AZURE_OPENAI_BACKENDS' rpm): it should be
// what the quota page shows for a deployment of openAiDeploymentCapacity units of the model, in each
// region of the pool (one unit of gpt-image-2 at Global Standard, first quota tier: 6 RPM;
// gpt-image-1.5: 9; gpt-image-1-mini: 12; FLUX: 6; docs/models.md). Lower is safe, only slower;
// higher brings back the 429s that pacing avoids (each one cools that deployment down).
@minValue(1)
@maxValue(100000)
@description('Requests per minute of each model deployment (primary and every openAiBackendLocations one), the rate the app paces each to (rpm in AZURE_OPENAI_BACKENDS). Default: gpt-image-2\'s documented quota of one Global Standard unit.')
param openAiRequestsPerMinute int = 6

@maxLength(19)
@description('More regions for the pool of image backends, beyond the primary (openAiLocation): one more account + the same model deployment (name, version, SKU, capacity) in each, with the same roles (the app takes at most 20 backends). Each region once, e.g. ["swedencentral", "polandcentral"]; empty: the primary deployment alone.')
param openAiBackendLocations array = []

@minValue(5)
@maxValue(518400)
@description('How long a job may wait for a free slot on the pool before it fails upstream_throttled, in seconds (JOB_DEADLINE_SECONDS; at most 6 days).')
param jobDeadlineSeconds int = 3600

@allowed([
  ''
  'v1'
  'deployments'
])
@description('Upstream dialect the app speaks (AZURE_OPENAI_API_STYLE); empty for the one Microsoft documents for the model (v1 for gpt-image models, deployments for FLUX).')
param openAiApiStyle string = ''

@description('api-version the app sends (AZURE_OPENAI_API_VERSION); empty for the model\'s default on its dialect.')
param openAiApiVersion string = ''

@description('Entra ID scope for the model\'s tokens (AZURE_OPENAI_SCOPE); empty for the one its docs use (https://ai.azure.com/.default for gpt-image models, https://cognitiveservices.azure.com/.default for FLUX).')
param openAiScope string = ''

// ---------------------------------------------------------------- function app
@allowed([
  512
  2048
  4096
])
@description('Flex Consumption instance memory (MB); billing is memory x execution time.')
param instanceMemoryMB int = 2048

@minValue(1)
@maxValue(1000)
@description('Upper bound on instances; caps cost and the load put on the model\'s quota.')
param maximumInstanceCount int = 40

@minValue(1)
@maxValue(1000)
@description('Concurrent HTTP requests per instance. The handlers are async and mostly wait on Azure OpenAI, so one instance serves many.')
param httpPerInstanceConcurrency int = 16

@minValue(1)
@maxValue(10080)
@description('Lifetime of the SAS links in minutes (SAS_TTL_MINUTES, at most 7 days).')
param sasTtlMinutes int = 60

@minValue(0)
@maxValue(200)
@description('How long POST /api/images waits for the image before answering 202 (MAX_WAIT_SECONDS, under the 230 s front-end limit).')
param maxWaitSeconds int = 120

@minValue(1)
@description('Total time Azure OpenAI gets for one job, retries included, in seconds (UPSTREAM_TIMEOUT_SECONDS).')
param upstreamTimeoutSeconds int = 180

@minValue(5)
@maxValue(600)
@description('How long a worker holds a job before another instance may resume it (JOB_LEASE_SECONDS); renewed while it works.')
param jobLeaseSeconds int = 30

@minValue(1)
@description('Days after which generated images and job records are deleted by the storage lifecycle rule.')
param retentionDays int = 7

@description('Prices that replace the shipped table per model (IMAGE_PRICES, JSON: {"gpt-image-2": {"text_input_per_million": 5, "image_input_per_million": 8, "output_per_million": 30, "currency": "USD", "as_of": "2026-12-01"}}); empty for the shipped list prices.')
param imagePrices string = ''

@description('Object ids of queue producers: Storage Queue Data Message Sender on image-requests only.')
param pipelineProducerPrincipalIds array = []

@description('Object ids of result consumers: Storage Queue Data Message Processor on image-results only.')
param pipelineConsumerPrincipalIds array = []

@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param pipelinePrincipalType string = 'ServicePrincipal'

@description('App Service Authentication with Microsoft Entra ID: keyless callers (web apps, Logic Apps with a managed identity, Power Automate OAuth), each with their own jobs. Off: function keys.')
param easyAuthEnabled bool = false

@description('With Easy Auth: images one caller may ask for per UTC day (CALLER_DAILY_IMAGES); empty for no limit.')
param callerDailyImages string = ''

@description('Client id of the Entra app registration that represents the API (required with easyAuthEnabled).')
param easyAuthClientId string = ''

@description('Audiences a caller token may carry; empty for api://<easyAuthClientId> and the client id.')
param easyAuthAllowedAudiences array = []

@description('Client ids allowed to call (apps, managed identities); empty for any in the tenant.')
param easyAuthAllowedClientApplications array = []

@secure()
@description('IDEMPOTENCY_SECRET: the HMAC key that maps Idempotency-Keys to jobs, kept in Key Vault (the preprovision hook generates one). Empty: the app keeps a random key in its jobs container.')
param idempotencySecret string = ''

// ---------------------------------------------------------------- webhooks
@description('Sign callback_url webhooks; creates a Key Vault holding WEBHOOK_SECRET. False: no Key Vault, no WEBHOOK_SECRET.')
param webhooksEnabled bool = true

@secure()
@description('Standard Webhooks signing secret (whsec_...). The preprovision hook generates one when it is not set.')
param webhookSecret string = ''

// ---------------------------------------------------------------- names
var abbrs = loadJsonContent('abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var rgName = !empty(resourceGroupName) ? resourceGroupName : '${abbrs.resourcesResourceGroups}${environmentName}'
var functionAppName = '${abbrs.webSitesFunctions}api-${resourceToken}'
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}-${take(toLower(uniqueString(functionAppName, resourceToken)), 7)}'

// Names the code agrees on (imagegen/domain/settings.py); tests/unit/test_infra.py checks them.
var imagesContainerName = 'images'
var jobsContainerName = 'jobs'
var workQueues = [
  'image-jobs'
  'image-requests'
  'image-results'
]
// The Functions host moves a message here after maxDequeueCount failed tries.
var poisonQueues = [
  'image-jobs-poison'
  'image-requests-poison'
  'image-results-poison'
]

// FLUX models are Foundry models (format Black Forest Labs): a Foundry (AIServices) account, and the
// Cognitive Services User role for inference (the app's catalog names them FLUX-…, FLUX.1-…).
var openAiModelIsFlux = startsWith(toLower(openAiModelName), 'flux')
var useExistingOpenAi = !empty(openAiExistingAccountName)
var openAiResourceGroupName = useExistingOpenAi && !empty(openAiExistingResourceGroupName) ? openAiExistingResourceGroupName : rgName
var openAiDeployment = !empty(openAiDeploymentName) ? openAiDeploymentName : openAiModelName
// The pool's other regions, as ARM names them ("Sweden Central" -> swedencentral): account names,
// module names and the backends' labels.
var openAiBackendRegions = [for region in openAiBackendLocations: toLower(replace(region, ' ', ''))]
var webhooksOn = webhooksEnabled && !empty(webhookSecret)
// The vault holds the app's secrets: the webhook secret (with webhooks) and the idempotency key.
var vaultOn = webhooksOn || !empty(idempotencySecret)
var deployerPrincipalId = grantDeployerAccess ? principalId : ''

// ---------------------------------------------------------------- resources
resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: rgName
  location: location
  tags: tags
}

module identity 'core/identity/user-assigned-identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: '${abbrs.managedIdentityUserAssignedIdentities}api-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'core/storage/storage-account.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: '${abbrs.storageStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    containers: [
      imagesContainerName
      jobsContainerName
      deploymentContainerName
    ]
    queues: concat(workQueues, poisonQueues)
    expiringPrefixes: [
      '${imagesContainerName}/'
      '${jobsContainerName}/'
    ]
    retentionDays: retentionDays
  }
}

module monitoring 'core/monitor/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    applicationInsightsName: '${abbrs.insightsComponents}${resourceToken}'
    location: location
    tags: tags
  }
}

module openAi 'core/ai/openai.bicep' = if (!useExistingOpenAi) {
  name: 'openai'
  scope: rg
  params: {
    name: '${abbrs.cognitiveServicesOpenAI}${resourceToken}'
    location: !empty(openAiLocation) ? openAiLocation : location
    tags: tags
    deploymentName: openAiDeployment
    modelName: openAiModelName
    modelVersion: openAiModelVersion
    deploymentSkuName: openAiDeploymentSkuName
    deploymentCapacity: openAiDeploymentCapacity
    modelFormat: openAiModelIsFlux ? 'Black Forest Labs' : 'OpenAI'
    kind: openAiModelIsFlux ? 'AIServices' : 'OpenAI'
  }
}

module openAiExisting 'core/ai/openai-existing.bicep' = if (useExistingOpenAi) {
  name: 'openai-existing'
  scope: resourceGroup(openAiResourceGroupName)
  params: {
    name: openAiExistingAccountName
  }
}

var openAiAccountName = useExistingOpenAi ? openAiExisting.outputs.name : openAi.outputs.name
var openAiEndpoint = useExistingOpenAi ? openAiExisting.outputs.endpoint : openAi.outputs.endpoint
var openAiAccountLocation = useExistingOpenAi ? openAiExisting.outputs.location : openAi.outputs.location
// The primary's label in AZURE_OPENAI_BACKENDS: its region as ARM names it.
var openAiPrimaryLabel = toLower(replace(openAiAccountLocation, ' ', ''))

// The rest of the pool: one account per extra region, always new and in the app's resource group
// (also next to an existing primary account), keyless like the primary and serving the same model
// under the same deployment name, so every job may go to any of them.
module openAiPool 'core/ai/openai.bicep' = [for region in openAiBackendRegions: {
  name: 'openai-${region}'
  scope: rg
  params: {
    name: '${abbrs.cognitiveServicesOpenAI}${resourceToken}-${region}'
    location: region
    tags: tags
    deploymentName: openAiDeployment
    modelName: openAiModelName
    modelVersion: openAiModelVersion
    deploymentSkuName: openAiDeploymentSkuName
    deploymentCapacity: openAiDeploymentCapacity
    modelFormat: openAiModelIsFlux ? 'Black Forest Labs' : 'OpenAI'
    kind: openAiModelIsFlux ? 'AIServices' : 'OpenAI'
  }
}]

module keyVault 'core/security/keyvault.bicep' = if (vaultOn) {
  name: 'keyvault'
  scope: rg
  params: {
    name: '${abbrs.keyVaultVaults}${resourceToken}'
    location: location
    tags: tags
    secretValue: webhooksOn ? webhookSecret : ''
    idempotencySecretValue: idempotencySecret
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    keyVaultName: vaultOn ? keyVault.outputs.name : ''
    identityPrincipalId: identity.outputs.principalId
    userPrincipalId: deployerPrincipalId
    userPrincipalType: principalType
  }
}

module pipelineRbac 'app/pipeline-rbac.bicep' = if (!empty(pipelineProducerPrincipalIds) || !empty(pipelineConsumerPrincipalIds)) {
  name: 'pipeline-rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    producerPrincipalIds: pipelineProducerPrincipalIds
    consumerPrincipalIds: pipelineConsumerPrincipalIds
    principalType: pipelinePrincipalType
    requestsQueueName: 'image-requests'
    resultsQueueName: 'image-results'
  }
}

module openAiRbac 'app/openai-rbac.bicep' = {
  name: 'openai-rbac'
  scope: resourceGroup(openAiResourceGroupName)
  params: {
    openAiAccountName: openAiAccountName
    identityPrincipalId: identity.outputs.principalId
    userPrincipalId: deployerPrincipalId
    userPrincipalType: principalType
    grantFoundryModelUser: openAiModelIsFlux
  }
}

// The same roles on every account of the pool: the identity's, and the deploying user's.
module openAiPoolRbac 'app/openai-rbac.bicep' = [for (region, i) in openAiBackendRegions: {
  name: 'openai-rbac-${region}'
  scope: rg
  params: {
    openAiAccountName: openAiPool[i].outputs.name
    identityPrincipalId: identity.outputs.principalId
    userPrincipalId: deployerPrincipalId
    userPrincipalType: principalType
    grantFoundryModelUser: openAiModelIsFlux
  }
}]

module plan 'core/host/flex-consumption-plan.bicep' = {
  name: 'plan'
  scope: rg
  params: {
    name: '${abbrs.webServerFarms}${resourceToken}'
    location: location
    tags: tags
  }
}

module api 'app/api.bicep' = {
  name: 'api'
  scope: rg
  params: {
    name: functionAppName
    location: location
    tags: tags
    serviceName: 'api'
    planId: plan.outputs.id
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageBlobEndpoint: storage.outputs.blobEndpoint
    storageQueueEndpoint: storage.outputs.queueEndpoint
    deploymentContainerName: deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    pythonVersion: '3.11'
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    httpPerInstanceConcurrency: httpPerInstanceConcurrency
    openAiEndpoint: openAiEndpoint
    openAiApiStyle: openAiApiStyle
    openAiDeploymentName: openAiDeployment
    openAiModelName: openAiModelName
    openAiApiVersion: openAiApiVersion
    openAiScope: openAiScope
    openAiRequestsPerMinute: openAiRequestsPerMinute
    openAiLabel: openAiPrimaryLabel
    // AZURE_OPENAI_BACKENDS after the primary (which api.bicep builds from the settings above). The
    // for-expression stays the parameter's whole value: Bicep allows one that reads module outputs
    // there, not inside a function call or a variable. A region the primary is in gets a numbered
    // label, as the app refuses two backends with one label and deployment name.
    openAiPoolBackends: [for (region, i) in openAiBackendRegions: {
      endpoint: openAiPool[i].outputs.endpoint
      deployment: openAiPool[i].outputs.deploymentName
      model: openAiModelName
      api_style: openAiApiStyle
      api_version: openAiApiVersion
      rpm: openAiRequestsPerMinute
      priority: 1
      label: (region == openAiPrimaryLabel) ? '${region}-${i + 2}' : region
    }]
    jobDeadlineSeconds: jobDeadlineSeconds
    imagesContainerName: imagesContainerName
    jobsContainerName: jobsContainerName
    sasTtlMinutes: sasTtlMinutes
    maxWaitSeconds: maxWaitSeconds
    upstreamTimeoutSeconds: upstreamTimeoutSeconds
    jobLeaseSeconds: jobLeaseSeconds
    imagePrices: imagePrices
    easyAuthEnabled: easyAuthEnabled
    callerDailyImages: callerDailyImages
    easyAuthClientId: easyAuthClientId
    easyAuthAllowedAudiences: easyAuthAllowedAudiences
    easyAuthAllowedClientApplications: easyAuthAllowedClientApplications
    webhooksEnabled: webhooksOn
    webhookSecretReferenceUri: webhooksOn ? keyVault.outputs.referenceUri : ''
    idempotencySecretReferenceUri: !empty(idempotencySecret) ? keyVault.outputs.idempotencyReferenceUri : ''
  }
  // The identity's roles exist before the host starts, so its first storage, Key Vault reference
  // and Azure OpenAI calls succeed.
  dependsOn: [
    rbac
    openAiRbac
    openAiPoolRbac
  ]
}

// ---------------------------------------------------------------- outputs (azd writes them to .azure/<env>/.env)
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = api.outputs.name
output AZURE_FUNCTION_APP_URL string = api.outputs.uri
output SERVICE_API_NAME string = api.outputs.name
output SERVICE_API_URI string = api.outputs.uri
output AZURE_MANAGED_IDENTITY_NAME string = identity.outputs.name
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_STORAGE_BLOB_ENDPOINT string = storage.outputs.blobEndpoint
output AZURE_STORAGE_QUEUE_ENDPOINT string = storage.outputs.queueEndpoint
output AZURE_APPLICATION_INSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output AZURE_OPENAI_ACCOUNT_NAME string = openAiAccountName
output AZURE_OPENAI_RESOURCE_GROUP string = openAiResourceGroupName
output AZURE_OPENAI_ENDPOINT string = openAiEndpoint
output AZURE_OPENAI_DEPLOYMENT string = openAiDeployment
output AZURE_OPENAI_MODEL string = openAiModelName
output AZURE_OPENAI_API_STYLE string = openAiApiStyle
output AZURE_OPENAI_POOL_ACCOUNT_NAMES array = [for (region, i) in openAiBackendRegions: openAiPool[i].outputs.name]
output IMAGES_CONTAINER string = imagesContainerName
output JOBS_CONTAINER string = jobsContainerName
output AZURE_KEY_VAULT_NAME string = vaultOn ? keyVault.outputs.name : ''
output WEBHOOKS_ACTIVE bool = webhooksOn
