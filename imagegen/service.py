"""The product's main path: a validated request becomes a job, images in Blob Storage, and links.

Built lazily once per process (`get_service`), never at import: SDK clients and sessions are reused
by every invocation on the instance.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from azure.core.credentials_async import AsyncTokenCredential

from imagegen.blob_store import BlobChanged, BlobStore, SignedLink
from imagegen.errors import ImageGenError
from imagegen.jobs import Job, JobRepository, JobStatus, StoredImage
from imagegen.models import ImageRequest, ModelRules, rules_for_model
from imagegen.openai_images import AzureOpenAIImages, GeneratedImage, OperationCallback
from imagegen.settings import Settings, get_settings

log = logging.getLogger(__name__)


class ImageGenerator(Protocol):
    async def generate(
        self,
        request: ImageRequest,
        *,
        operation_id: str,
        deadline: float,
        operation_url: str | None = None,
        on_operation: OperationCallback | None = None,
    ) -> list[GeneratedImage]: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class JobView:
    """A job and a fresh read link per image (links are minted on every read, never stored)."""

    job: Job
    links: tuple[SignedLink, ...]


class ImageService:
    def __init__(
        self,
        settings: Settings,
        generator: ImageGenerator,
        store: BlobStore,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.rules: ModelRules = rules_for_model(settings.model)
        self._generator = generator
        self._store = store
        self._clock = clock
        self._monotonic = monotonic
        self.jobs = JobRepository(store, settings.jobs_container, clock=clock)

    async def close(self) -> None:
        await self._generator.close()
        await self._store.close()

    async def run_inline(self, request: ImageRequest) -> Job:
        """Create the job record, generate, store the images, and record the outcome."""
        job = Job.new(request, now=self._clock(), status=JobStatus.RUNNING)
        etag = await self.jobs.create(job)
        log.info("job %s created (n=%d, size=%s)", job.id, request.n, request.size)
        deadline = self._monotonic() + min(
            self.settings.upstream_timeout_seconds, self.settings.max_wait_seconds
        )

        async def remember_operation(operation_url: str) -> None:
            nonlocal job, etag
            job = replace(job, operation_url=operation_url)
            etag = await self.jobs.write_if_unchanged(job, etag=etag)

        try:
            generated = await self._generator.generate(
                request, operation_id=job.id, deadline=deadline, on_operation=remember_operation
            )
            stored = await self._store_images(job, generated)
            final = job.succeeded(stored, self._clock())
        except ImageGenError as error:
            log.info("job %s failed: %s", job.id, error.code)
            final = job.failed(error, self._clock())
        return await self._finish(final, etag)

    async def _store_images(self, job: Job, generated: list[GeneratedImage]) -> tuple[StoredImage, ...]:
        async def store_one(index: int, image: GeneratedImage) -> StoredImage:
            name = job.image_blob_name(index, image.info.extension)
            await self._store.upload(
                self.settings.images_container,
                name,
                image.data,
                content_type=image.info.content_type,
                metadata={"job_id": job.id, "index": str(index)},
            )
            return StoredImage(
                index=index,
                blob=name,
                content_type=image.info.content_type,
                width=image.info.width,
                height=image.info.height,
                bytes=len(image.data),
                revised_prompt=image.revised_prompt,
            )

        return tuple(await asyncio.gather(*(store_one(i, image) for i, image in enumerate(generated))))

    async def _finish(self, final: Job, etag: str) -> Job:
        try:
            await self.jobs.write_if_unchanged(final, etag=etag)
            return final
        except BlobChanged:
            # Someone else wrote the record (e.g. a cancel): never overwrite a terminal outcome.
            return await self.jobs.update(
                final.id, lambda current: None if current.status.terminal else final
            )

    async def view(self, job: Job) -> JobView:
        ttl = timedelta(minutes=self.settings.sas_ttl_minutes)
        links = await asyncio.gather(
            *(
                self._store.read_link(self.settings.images_container, image.blob, ttl=ttl)
                for image in job.images
            )
        )
        return JobView(job, tuple(links))

    async def check_storage(self) -> None:
        await self._store.check_reachable(self.settings.jobs_container)


def build_service(settings: Settings) -> ImageService:
    """Wire the real clients: one credential (managed identity in Azure) shared by both services."""
    credential: AsyncTokenCredential | None = None
    needs_credential = settings.api_key is None or settings.storage.uses_identity
    if needs_credential:
        from azure.identity.aio import DefaultAzureCredential

        credential = DefaultAzureCredential(
            managed_identity_client_id=settings.storage.client_id or settings.client_id
        )
    token_provider = None
    if settings.api_key is None:
        assert credential is not None
        entra = credential

        async def token_provider() -> str:
            return (await entra.get_token(settings.openai_scope)).token

    generator = AzureOpenAIImages(settings, rules_for_model(settings.model), token_provider=token_provider)
    store = BlobStore(settings.storage, credential=credential)
    return ImageService(settings, generator, store)


_service: ImageService | None = None


def get_service() -> ImageService:
    """The process-wide service, built on first use (settings are read then, not at import)."""
    global _service
    if _service is None:
        _service = build_service(get_settings())
    return _service
