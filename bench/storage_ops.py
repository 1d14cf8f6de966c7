"""Storage operations per image, on the inline path and on the queued path.

ImageService runs in this process against the stack's real Azurite (identity mode) and emulator, so
every Blob and Queue call it makes is counted (CallCounter, an azure-core policy in the retry policy's place: once per call). A
warm-up job first creates the containers and queues and fetches the user-delegation key, which is
then amortised. The queued path adds the two calls the Functions host makes for the message
(receive, delete), reported separately. Target ≤ 5 per image on the inline path.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import aiohttp
from azure.storage.queue import TextBase64DecodePolicy
from azure.storage.queue.aio import QueueClient

from bench.common import progress, running_stack, stack_identity
from devtools.stack import LocalStack
from imagegen.adapters.azure_openai import AzureOpenAIImages
from imagegen.adapters.blob_store import BlobStore
from imagegen.adapters.queue_store import QueueStore
from imagegen.adapters.transport import CallCounter, aiohttp_transport
from imagegen.core.service import ImageService, Submission
from imagegen.domain.catalog import rules_for_model
from imagegen.domain.messages import JobMessage
from imagegen.domain.requests import ImageRequest
from imagegen.domain.settings import Settings

TARGET_PER_IMAGE = 5.0
# Every Blob and Queue call the service makes, counted once per call by an azure-core policy (CallCounter).
COUNTER = CallCounter()
HOST_CALLS_PER_MESSAGE = 2  # the Functions host receives, then deletes, the job's message
IMAGES_PER_JOB = (1, 4)


def _service(stack: LocalStack) -> ImageService:
    settings = Settings.from_env(stack.settings)
    credential = stack_identity(stack)
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
    store = BlobStore(settings.storage, credential=credential, connection_verify=ca, call_counter=COUNTER)
    queues = QueueStore(settings.storage, credential=credential, connection_verify=ca, call_counter=COUNTER)
    return ImageService(settings, generator, store, queues, credential=credential)


def _submission(prompt: str, n: int) -> Submission:
    request = ImageRequest(prompt=prompt, n=n)
    return Submission(request=request, body_hash=Submission.hash_body(request.to_record()))


async def _inline(service: ImageService, n: int) -> int:
    before = COUNTER.calls
    job = await service.submit_and_wait(_submission(f"inline {n}", n), wait_seconds=30)
    await service.drain()
    if job.status.value != "succeeded":
        raise RuntimeError(f"the inline job did not succeed: {job.error}")
    return COUNTER.calls - before


async def _queued(service: ImageService, jobs_queue: QueueClient, n: int) -> int:
    """submit_async, then what the host does: receive the message (not counted: the host's), run
    the trigger with it, delete it (the host's)."""
    before = COUNTER.calls
    job = await service.submit_async(_submission(f"queued {n}", n))
    [message] = [m async for m in jobs_queue.receive_messages(max_messages=1, visibility_timeout=60)]
    parsed = JobMessage.parse(message.content)
    assert parsed is not None
    done = await service.handle_job_message(parsed.job_id)
    await jobs_queue.delete_message(message)
    if done is None or done.status.value != "succeeded" or done.id != job.id:
        raise RuntimeError("the queued job did not succeed")
    return COUNTER.calls - before


async def _drain(jobs_queue: QueueClient) -> None:
    async for message in jobs_queue.receive_messages(max_messages=32, visibility_timeout=60):
        await jobs_queue.delete_message(message)


async def _measure(stack: LocalStack) -> dict[str, Any]:
    service = _service(stack)
    jobs_queue = QueueClient(
        stack.azurite.queue_url,
        "image-jobs",
        credential=stack_identity(stack),
        message_decode_policy=TextBase64DecodePolicy(),
        transport=aiohttp_transport(str(stack.tls.ca_cert), connection_timeout=10, read_timeout=30),
    )
    try:
        progress("storage_ops: warm-up (containers, queues, delegation key)")
        await _drain(jobs_queue)
        await _inline(service, 1)
        await _drain(jobs_queue)
        await _queued(service, jobs_queue, 1)
        paths: dict[str, Any] = {}
        for n in IMAGES_PER_JOB:
            inline = await _inline(service, n)
            await _drain(jobs_queue)  # the inline job's backing message, deleted already or not yet visible
            queued = await _queued(service, jobs_queue, n)
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
            "delegation_key_fetches": COUNTER.by_kind["userdelegationkey"],
            "calls_by_kind": dict(COUNTER.by_kind),
            "target": {
                "inline_per_image_at_most": TARGET_PER_IMAGE,
                "worst": worst,
                "met": worst <= TARGET_PER_IMAGE,
            },
        }
    finally:
        await jobs_queue.close()
        await service.close()


def run_storage_ops() -> dict[str, Any]:
    with running_stack("storage_ops") as stack:
        return asyncio.run(_measure(stack))
