#!/bin/sh
# azd preprovision hook: when webhooks are on (WEBHOOKS_ENABLED is not "false") and the azd
# environment has no WEBHOOK_SECRET yet, store a new Standard Webhooks secret (whsec_ + base64 of 32
# random bytes) with `azd env set`. An existing value is never replaced; to rotate it, run
# `azd env set WEBHOOK_SECRET whsec_...` and `azd provision`. The value is never printed.
set -eu

enabled=$(printf '%s' "${WEBHOOKS_ENABLED:-true}" | tr '[:upper:]' '[:lower:]')
if [ "$enabled" = "false" ]; then
  exit 0
fi
if [ -n "${WEBHOOK_SECRET:-}" ]; then
  exit 0
fi
if ! command -v openssl >/dev/null 2>&1; then
  echo "preprovision: openssl not found; set a secret yourself: azd env set WEBHOOK_SECRET whsec_<base64>" >&2
  exit 1
fi
secret="whsec_$(openssl rand -base64 32 | tr -d '\n')"
azd env set WEBHOOK_SECRET "$secret"
echo "preprovision: stored a new WEBHOOK_SECRET in the azd environment (azd env get-value WEBHOOK_SECRET)"
