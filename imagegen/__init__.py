"""Prompt -> Azure OpenAI image -> private Blob Storage -> short-lived read-only SAS link."""
