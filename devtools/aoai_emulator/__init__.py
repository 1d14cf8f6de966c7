"""Local stand-in for the Azure OpenAI image endpoints (deployments, v1 and legacy dialects).

Run with `python -m devtools.aoai_emulator --host H --port P [--api-key K] [--tls-cert C --tls-key K]`;
docs/emulators.md describes the flags and the `/_emulator/` admin API.
"""
