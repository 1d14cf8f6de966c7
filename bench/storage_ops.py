"""Issue 5: storage operations per image, on the inline path and on the queued path.

ImageService runs in this process against the stack's real Azurite (identity mode) and emulator, so
every Blob and Queue call it makes is counted (BlobStore.operations + QueueStore.operations). A
warm-up job first creates the containers and queues and fetches the user-delegation key, which is
then amortised. The queued path adds the two calls the Functions host makes for the message
(receive, delete), reported separately. Target ≤ 5 per image on the inline path.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from typing import Any

import aiohttp

from bench.common import progress, running_stack
from devtools.stack import LocalStack
from imagegen.blob_store import BlobStore
from imagegen.models import ImageRequest, rules_for_model
from imagegen.openai_images import AzureOpenAIImages
from imagegen.queues import QueueStore
from imagegen.service import ImageService, Submission
from imagegen.settings import Settings

TARGET_PER_IMAGE = 5.0
HOST_CALLS_PER_MESSAGE = 2  # the Functions host receives, then deletes, the job's message
IMAGES_PER_JOB = (1, 4)


def _service(stack: LocalStack) -> ImageService:
    from azure.identity.aio import ManagedIdentityCredential

    os.environ["IDENTITY_ENDPOINT"] = stack.msi.identity_endpoint
    os.environ["IDENTITY_HEADER"] = stack.msi.identity_header
    settings = Settings.from_env(stack.settings)
    credential = ManagedIdentityCredential()
    ca = str(stack.tls.ca_cert)
    context = ssl.create_default_context(cafile=ca)

    async def token() -> str:
        access: str = (await credential.get_token(settings.openai_scope)).token
        return access

    generator = AzureOpenAIImages(
        settings,
        rules_for_model(settings.model),
        token_provider=token,
        session_factory=lambda: aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)),
    )
    store = BlobStore(settings.storage, credential=credential, connection_verify=ca)
    queues = QueueStore(settings.storage, credential=credential, connection_verify=ca)
    return ImageService(settings, generator, store, queues, credential=credential)


def _submission(prompt: str, n: int) -> Submission:
    request = ImageRequest(prompt=prompt, n=n)
    return Submission(request=request, body_hash=Submission.hash_body(request.to_record()))


async def _inline(service: ImageService, n: int) -> int:
    before = service.storage_operations
    job = await service.submit_and_wait(_submission(f"inline {n}", n), wait_seconds=30)
    await service.drain()
    if job.status.value != "succeeded":
        raise RuntimeError(f"the inline job did not succeed: {job.error}")
    return service.storage_operations - before


async def _queued(service: ImageService, n: int) -> int:
    before = service.storage_operations
    job = await service.submit_async(_submission(f"queued {n}", n))
    done = await service.handle_job_message(job.id)
    if done is None or done.status.value != "succeeded":
        raise RuntimeError("the queued job did not succeed")
    return service.storage_operations - before


async def _measure(stack: LocalStack) -> dict[str, Any]:
    service = _service(stack)
    try:
        progress("storage_ops: warm-up (containers, queues, delegation key)")
        await _inline(service, 1)
        await _queued(service, 1)
        paths: dict[str, Any] = {}
        for n in IMAGES_PER_JOB:
            inline = await _inline(service, n)
            queued = await _queued(service, n)
            paths[f"n={n}"] = {
                "inline_ops": inline,
                "inline_per_image": round(inline / n, 2),
                "queued_ops": queued,
                "queued_ops_with_host": queued + HOST_CALLS_PER_MESSAGE,
                "queued_per_image_with_host": round((queued + HOST_CALLS_PER_MESSAGE) / n, 2),
            }
        worst = max(entry["inline_per_image"] for entry in paths.values())
        return {
            "setup": {"storage_mode": "identity", "counted": "every Blob and Queue call the app makes"},
            "paths": paths,
            "delegation_key_fetches": service.delegation_key_fetches,
            "target": {
                "inline_per_image_at_most": TARGET_PER_IMAGE,
                "worst": worst,
                "met": worst <= TARGET_PER_IMAGE,
            },
        }
    finally:
        await service.close()


def run_storage_ops() -> dict[str, Any]:
    with running_stack("storage_ops") as stack:
        return asyncio.run(_measure(stack))
