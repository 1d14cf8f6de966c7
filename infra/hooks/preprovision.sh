#!/bin/sh
# azd preprovision hook: stores the app's generated secrets in the azd environment, never replacing
# one that is there and never printing it. IDEMPOTENCY_SECRET (base64 of 32 random bytes, the HMAC
# key of idempotency records) always; WEBHOOK_SECRET when webhooks are on:
# when webhooks are on (WEBHOOKS_ENABLED is not "false") and the azd
# environment has no WEBHOOK_SECRET yet, store a new Standard Webhooks secret (whsec_ + base64 of 32
# random bytes) with `azd env set`. An existing value is never replaced; to rotate it, run
# `azd env set WEBHOOK_SECRET whsec_...` and `azd provision`. The value is never printed.
set -eu

if ! command -v openssl >/dev/null 2>&1; then
  echo "preprovision: openssl not found; set the secrets yourself: azd env set IDEMPOTENCY_SECRET <base64>, azd env set WEBHOOK_SECRET whsec_<base64>" >&2
  exit 1
fi
if [ -z "${IDEMPOTENCY_SECRET:-}" ]; then
  azd env set IDEMPOTENCY_SECRET "$(openssl rand -base64 32 | tr -d '\n')"
  echo "preprovision: stored a new IDEMPOTENCY_SECRET in the azd environment"
fi

enabled=$(printf '%s' "${WEBHOOKS_ENABLED:-true}" | tr '[:upper:]' '[:lower:]')
if [ "$enabled" = "false" ]; then
  exit 0
fi
if [ -n "${WEBHOOK_SECRET:-}" ]; then
  exit 0
fi
secret="whsec_$(openssl rand -base64 32 | tr -d '\n')"
azd env set WEBHOOK_SECRET "$secret"
echo "preprovision: stored a new WEBHOOK_SECRET in the azd environment (azd env get-value WEBHOOK_SECRET)"
