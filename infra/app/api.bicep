// The function app on Flex Consumption, and its app settings. The settings here are exactly the
// names imagegen's Settings reads in Azure (DEPLOYED_SETTING_NAMES) plus the platform settings for
// Application Insights and the Functions host's request body limit; tests/unit/test_infra.py keeps
// the two lists equal.
param name string
param location string = resourceGroup().location
param tags object = {}

@description('azd service name (azure.yaml) that this app hosts.')
param serviceName string = 'api'

param planId string

@description('Resource id of the user-assigned identity used for everything.')
param identityId string
param identityClientId string

param storageBlobEndpoint string
param storageQueueEndpoint string
param deploymentContainerName string
param applicationInsightsName string

@allowed([
  '3.10'
  '3.11'
  '3.12'
])
param pythonVersion string = '3.11'

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int = 16

param openAiEndpoint string
param openAiApiStyle string
param openAiDeploymentName string
param openAiModelName string
param openAiApiVersion string
param openAiScope string
@minValue(1)
@maxValue(100000)
@description('Requests per minute of the primary deployment (its rpm in AZURE_OPENAI_BACKENDS).')
param openAiRequestsPerMinute int = 6
@description('The primary backend\'s label in AZURE_OPENAI_BACKENDS: its region (letters, digits, -, _ or .).')
param openAiLabel string
@description('The pool\'s other backends, after the primary: objects with the keys of AZURE_OPENAI_BACKENDS (endpoint, deployment, model, api_style, api_version, rpm, priority, label).')
param openAiPoolBackends array = []
@minValue(5)
@maxValue(518400)
@description('JOB_DEADLINE_SECONDS: how long a job may wait for a slot on the pool before it fails.')
param jobDeadlineSeconds int = 3600

param imagesContainerName string
param jobsContainerName string
param sasTtlMinutes int
param maxWaitSeconds int
param upstreamTimeoutSeconds int
param jobLeaseSeconds int
@description('IMAGE_PRICES: per-model prices that replace the shipped table; empty for the shipped ones.')
param imagePrices string = ''
@description('CALLER_DAILY_IMAGES: with Easy Auth, images one caller may ask for per UTC day; empty for no limit.')
param callerDailyImages string = ''
@description('EASY_AUTH: App Service Authentication with Microsoft Entra ID in front of the API (authsettingsV2).')
param easyAuthEnabled bool = false
@description('Client id of the Entra app registration callers get tokens for (required with easyAuthEnabled).')
param easyAuthClientId string = ''
@description('Audiences a token may carry; empty for api://<easyAuthClientId> and the client id itself.')
param easyAuthAllowedAudiences array = []
@description('Client ids (apps, managed identities) allowed to call; empty for any in the tenant.')
param easyAuthAllowedClientApplications array = []

param webhooksEnabled bool
@description('Versionless Key Vault URI of the webhook signing secret (ignored when webhooks are off).')
param webhookSecretReferenceUri string = ''
@description('Versionless Key Vault URI of the idempotency key; empty when infra keeps none (the app then keeps its own).')
param idempotencySecretReferenceUri string = ''

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// Host storage: identity-based AzureWebJobsStorage (no connection string, no account key).
var hostStorageSettings = [
  {
    name: 'AzureWebJobsStorage__blobServiceUri'
    value: storageBlobEndpoint
  }
  {
    name: 'AzureWebJobsStorage__queueServiceUri'
    value: storageQueueEndpoint
  }
  {
    name: 'AzureWebJobsStorage__credential'
    value: 'managedidentity'
  }
  {
    name: 'AzureWebJobsStorage__clientId'
    value: identityClientId
  }
]

// Platform: the Functions host refuses a request body over this many bytes before the worker reads
// it (FUNCTIONS_REQUEST_BODY_SIZE_LIMIT, default 104857600; learn.microsoft.com
// azure-functions/functions-app-settings). A little above the app's own 256 KiB
// (imagegen.domain.requests.MAX_BODY_BYTES): a body just over that still gets the app's 400 naming
// the field, and nothing much larger is buffered. The dev host applies the same setting.
var hostHttpSettings = [
  {
    name: 'FUNCTIONS_REQUEST_BODY_SIZE_LIMIT'
    value: '327680'
  }
]

// Platform: telemetry accepted only with an Entra token for the identity.
var monitoringSettings = [
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: applicationInsights.properties.ConnectionString
  }
  {
    name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
    value: 'ClientId=${identityClientId};Authorization=AAD'
  }
]

// The pool of image backends, the primary first: the same deployment the single-deployment settings
// above describe (AZURE_OPENAI_ENDPOINT, ...), so the two can never disagree. The app reads the keys
// of imagegen.domain.settings.BACKEND_KEYS; an empty api_style or api_version is the model's default.
var openAiPrimaryBackend = {
  endpoint: openAiEndpoint
  deployment: openAiDeploymentName
  model: openAiModelName
  api_style: openAiApiStyle
  api_version: openAiApiVersion
  rpm: openAiRequestsPerMinute
  priority: 1
  label: openAiLabel
}
var openAiBackends = concat([
  openAiPrimaryBackend
], openAiPoolBackends)

// The app's own settings. AZURE_OPENAI_API_KEY is deliberately absent: Entra ID only.
var applicationSettings = [
  {
    name: 'AZURE_OPENAI_ENDPOINT'
    value: openAiEndpoint
  }
  {
    name: 'AZURE_OPENAI_API_STYLE'
    value: openAiApiStyle
  }
  {
    name: 'AZURE_OPENAI_DEPLOYMENT'
    value: openAiDeploymentName
  }
  {
    name: 'AZURE_OPENAI_MODEL'
    value: openAiModelName
  }
  {
    name: 'AZURE_OPENAI_API_VERSION'
    value: openAiApiVersion
  }
  {
    name: 'AZURE_OPENAI_SCOPE'
    value: openAiScope
  }
  {
    // A JSON array (ARM's string() of the objects above): every deployment jobs are paced across.
    name: 'AZURE_OPENAI_BACKENDS'
    value: string(openAiBackends)
  }
  {
    name: 'JOB_DEADLINE_SECONDS'
    value: string(jobDeadlineSeconds)
  }
  {
    name: 'AZURE_CLIENT_ID'
    value: identityClientId
  }
  {
    name: 'IMAGES_CONTAINER'
    value: imagesContainerName
  }
  {
    name: 'JOBS_CONTAINER'
    value: jobsContainerName
  }
  {
    name: 'SAS_TTL_MINUTES'
    value: string(sasTtlMinutes)
  }
  {
    name: 'MAX_WAIT_SECONDS'
    value: string(maxWaitSeconds)
  }
  {
    name: 'UPSTREAM_TIMEOUT_SECONDS'
    value: string(upstreamTimeoutSeconds)
  }
  {
    name: 'JOB_LEASE_SECONDS'
    value: string(jobLeaseSeconds)
  }
  {
    name: 'IMAGE_PRICES'
    value: imagePrices
  }
  {
    name: 'CALLER_DAILY_IMAGES'
    value: callerDailyImages
  }
  {
    // App Service Authentication in front: callers are Entra principals, each with their own jobs.
    name: 'EASY_AUTH'
    value: string(easyAuthEnabled)
  }
  {
    // The Python SDKs' per-request INFO lines would dominate Application Insights ingestion.
    name: 'AZURE_SDK_LOG_LEVEL'
    value: 'WARNING'
  }
  {
    // Where links in job JSON and Location point: the app's own host name, never a request's Host.
    name: 'PUBLIC_API_BASE'
    value: 'https://${name}.azurewebsites.net/api'
  }
]

// Resolved by the platform with keyVaultReferenceIdentity; the value never appears in the template.
var webhookSettings = webhooksEnabled ? [
  {
    name: 'WEBHOOK_SECRET'
    value: '@Microsoft.KeyVault(SecretUri=${webhookSecretReferenceUri})'
  }
] : []

var keepsIdempotencySecret = !empty(idempotencySecretReferenceUri)
var idempotencySettings = keepsIdempotencySecret ? [
  {
    name: 'IDEMPOTENCY_SECRET'
    value: '@Microsoft.KeyVault(SecretUri=${idempotencySecretReferenceUri})'
  }
] : []

// Name/value pairs in siteConfig: the whole list is known when the deployment starts except for
// values, which ARM resolves in place.
var allSettings = concat(hostStorageSettings, hostHttpSettings, monitoringSettings, applicationSettings, webhookSettings, idempotencySettings)

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': serviceName })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  //checkov:skip=CKV_AZURE_13: callers authenticate with function keys by default; App Service Authentication is a parameter (easyAuthEnabled, the authsettingsV2 resource below)
  //checkov:skip=CKV_AZURE_17: same callers, same reason: they send function keys, not client certificates
  //checkov:skip=CKV_AZURE_222: a public HTTP API by design; every route except the anonymous, secret-free /api/health needs a function key
  properties: {
    serverFarmId: planId
    httpsOnly: true
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      //checkov:skip=CKV_AZURE_213: App Service health check probes keep instances busy on a scale-to-zero plan; /api/health is there for external probes and monitors instead
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: allSettings
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        //checkov:skip=CKV_AZURE_212: Flex Consumption scales from zero on demand; always-ready instances would bill around the clock, and durability comes from the job record and queue, not from a warm instance
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
        triggers: {
          http: {
            perInstanceConcurrency: httpPerInstanceConcurrency
          }
        }
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
}

// azd deploys to Flex Consumption with an Entra token; basic (publishing-profile) auth stays off.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = functionApp.name
output uri string = 'https://${functionApp.properties.defaultHostName}'

// App Service Authentication: the platform validates every caller's Entra token, strips any
// X-MS-CLIENT-PRINCIPAL* header the client sent and sets them from the token (the app reads them
// only with EASY_AUTH). Health, the OpenAPI description and the playground page stay anonymous.
resource authSettings 'Microsoft.Web/sites/config@2024-04-01' = if (easyAuthEnabled) {
  //checkov:skip=CKV_AZURE_13: checkov takes this authsettingsV2 resource for the web config of the site, which is checked itself
  //checkov:skip=CKV_AZURE_63: checkov takes this authsettingsV2 resource for the web config of the site, which is checked itself
  //checkov:skip=CKV_AZURE_65: checkov takes this authsettingsV2 resource for the web config of the site, which is checked itself
  //checkov:skip=CKV_AZURE_66: checkov takes this authsettingsV2 resource for the web config of the site, which is checked itself
  //checkov:skip=CKV_AZURE_80: checkov takes this authsettingsV2 resource for the web config of the site, which is checked itself
  //checkov:skip=CKV_AZURE_88: checkov takes this authsettingsV2 resource for the web config of the site, which is checked itself
  //checkov:skip=CKV_AZURE_222: checkov takes this authsettingsV2 resource for the web config of the site, which is checked itself
  parent: functionApp
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
      excludedPaths: [
        '/api/health'
        '/api/openapi.json'
        '/api/playground'
      ]
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: easyAuthClientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
        }
        validation: {
          allowedAudiences: empty(easyAuthAllowedAudiences) ? [
            'api://${easyAuthClientId}'
            easyAuthClientId
          ] : easyAuthAllowedAudiences
          defaultAuthorizationPolicy: {
            allowedApplications: easyAuthAllowedClientApplications
          }
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
  }
}
