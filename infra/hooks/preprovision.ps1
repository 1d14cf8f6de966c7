# azd preprovision hook (Windows): same behaviour as preprovision.sh. IDEMPOTENCY_SECRET always (when
# missing); when webhooks are on and the
# azd environment has no WEBHOOK_SECRET, store whsec_ + base64 of 32 random bytes; never replace an
# existing value and never print it.
$ErrorActionPreference = 'Stop'

if ([string]::IsNullOrEmpty($env:IDEMPOTENCY_SECRET)) {
  $key = [byte[]]::new(32)
  [System.Security.Cryptography.RandomNumberGenerator]::Fill($key)
  azd env set IDEMPOTENCY_SECRET ([Convert]::ToBase64String($key))
  if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
  Write-Host 'preprovision: stored a new IDEMPOTENCY_SECRET in the azd environment'
}

$enabled = if ($env:WEBHOOKS_ENABLED) { $env:WEBHOOKS_ENABLED.ToLowerInvariant() } else { 'true' }
if ($enabled -eq 'false') { exit 0 }
if (-not [string]::IsNullOrEmpty($env:WEBHOOK_SECRET)) { exit 0 }

$bytes = [byte[]]::new(32)
[System.Security.Cryptography.RandomNumberGenerator]::Fill($bytes)
$secret = 'whsec_' + [Convert]::ToBase64String($bytes)
azd env set WEBHOOK_SECRET $secret
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
Write-Host 'preprovision: stored a new WEBHOOK_SECRET in the azd environment (azd env get-value WEBHOOK_SECRET)'
