"""A local stand-in for the Azure Functions host: serves a v2-model app's HTTP routes and drives its
queue triggers on Azurite, following the host's contract (see docs/devhost.md).

Run it with `python -m devtools.devhost --port 7071`.
"""
