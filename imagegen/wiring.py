"""The one place that builds things: settings from the environment, the adapters, the service,
and the context every handler receives (function_app.py passes it; nothing else reads os.environ).
"""

from __future__ import annotations

import logging
import os
from functools import cache

from azure.core.credentials_async import AsyncTokenCredential

from imagegen.adapters.azure_openai import AzureOpenAIImages, TokenProvider
from imagegen.adapters.blob_store import BlobStore
from imagegen.adapters.queue_store import QueueStore
from imagegen.adapters.webhooks import WebhookSender
from imagegen.core.service import ImageService
from imagegen.domain.catalog import rules_for_model
from imagegen.domain.settings import Settings
from imagegen.edges.context import HandlerContext


def configure_logging(settings: Settings) -> None:
    """AZURE_SDK_LOG_LEVEL (WARNING in Azure): the SDKs' per-request INFO lines are not built or
    shipped to Application Insights (docs/decisions.md, "Logging in production"). Unset: left alone."""
    if settings.sdk_log_level is not None:
        logging.getLogger("azure").setLevel(settings.sdk_log_level)


@cache
def get_settings() -> Settings:
    """Settings from the process environment, built once (the only read of os.environ)."""
    return Settings.from_env(os.environ)


def build_service(settings: Settings) -> ImageService:
    """Wire the real clients: one credential (managed identity in Azure) shared by every service."""
    credential: AsyncTokenCredential | None = None
    if settings.api_key is None or settings.storage.uses_identity:
        from azure.identity.aio import DefaultAzureCredential

        credential = DefaultAzureCredential(
            managed_identity_client_id=settings.storage.client_id or settings.client_id
        )
    generators = {
        backend.id: AzureOpenAIImages(
            settings,
            rules_for_model(backend.model),
            backend=backend,
            token_provider=_token_provider(credential, backend.scope) if settings.api_key is None else None,
            retries=False,  # the pool cools a backend down and sends the job elsewhere or back to the queue
        )
        for backend in settings.backends
    }
    store = BlobStore(settings.storage, credential=credential)
    queues = QueueStore(settings.storage, credential=credential)
    webhooks = (
        WebhookSender(settings.webhook_secret, allow_local=settings.allow_local_webhooks)
        if settings.webhook_secret
        else None
    )
    return ImageService(settings, generators, store, queues, webhooks=webhooks, credential=credential)


def _token_provider(credential: AsyncTokenCredential | None, scope: str) -> TokenProvider:
    assert credential is not None

    async def token() -> str:
        return (await credential.get_token(scope)).token

    return token


_service: ImageService | None = None


def get_service() -> ImageService:
    """The process-wide service, built on first use (settings are read then, not at import)."""
    global _service
    if _service is None:
        _service = build_service(get_settings())
    return _service


def handler_context() -> HandlerContext:
    """What function_app.py hands to every handler: settings and the service, both built lazily."""
    return HandlerContext(settings=get_settings, service=get_service)
