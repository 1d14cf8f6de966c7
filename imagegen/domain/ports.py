"""The ports: what the core needs from the outside world, as Protocols.

Adapters (imagegen.adapters) implement them on Azure's SDKs; the unit tests implement them in
memory with the same ETag semantics. The vocabulary they share (links, stored JSON with its ETag,
sent messages, the outcomes of a conditional write, a generation) lives here, so the core never
imports an adapter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from imagegen.domain.images import ImageInfo
from imagegen.domain.pricing import Usage
from imagegen.domain.requests import ImageRequest


class BlobNotFound(Exception):
    pass


class BlobAlreadyExists(Exception):
    pass


class BlobChanged(Exception):
    """An ETag-conditional write lost a race: someone else changed the blob first."""


@dataclass(frozen=True)
class SignedLink:
    url: str
    expires_at: datetime


@dataclass(frozen=True)
class JsonBlob:
    document: dict[str, Any]
    etag: str


@dataclass(frozen=True)
class SentMessage:
    queue: str
    id: str
    pop_receipt: str


@dataclass(frozen=True)
class StoredBlob:
    """What Blob Storage says of a stored image: its type, size and the metadata written with it."""

    content_type: str
    size: int
    metadata: Mapping[str, str]


@dataclass(frozen=True)
class GeneratedImage:
    data: bytes
    info: ImageInfo
    revised_prompt: str | None = None


@dataclass(frozen=True)
class Generation:
    """What one call drew: the images, and the tokens Azure counted for it (None when it counts none)."""

    images: tuple[GeneratedImage, ...]
    usage: Usage | None = None


class JobRecordStore(Protocol):
    """JSON documents with ETags: create only if absent, replace only if unchanged."""

    async def create_json(self, container: str, name: str, document: Mapping[str, Any]) -> str:
        """Write a new document; BlobAlreadyExists if one is there. Returns its ETag."""
        ...

    async def read_json(self, container: str, name: str) -> JsonBlob:
        """The document and its ETag; BlobNotFound if absent."""
        ...

    async def replace_json(self, container: str, name: str, document: Mapping[str, Any], *, etag: str) -> str:
        """Overwrite if the ETag still matches (BlobChanged otherwise); returns the new ETag."""
        ...


class ImageStore(Protocol):
    """Image blobs and read-only links to them."""

    async def upload(
        self, container: str, name: str, data: bytes, *, content_type: str, metadata: Mapping[str, str]
    ) -> None: ...

    async def stored(self, container: str, name: str) -> StoredBlob | None:
        """The blob's properties, or None when there is none."""
        ...

    async def read_link(self, container: str, name: str, *, ttl: timedelta) -> SignedLink: ...

    async def check_reachable(self, container: str) -> None: ...

    async def close(self) -> None: ...


class BlobPort(JobRecordStore, ImageStore, Protocol):
    """Both, as one storage account serves them."""


class MessageQueue(Protocol):
    async def send(self, queue: str, payload: Mapping[str, Any], *, delay_seconds: float = 0) -> SentMessage:
        """Send; the message becomes visible after `delay_seconds`."""
        ...

    async def delete(self, message: SentMessage) -> None: ...

    async def check_reachable(self, queue: str) -> None: ...

    async def close(self) -> None: ...


class Notifier(Protocol):
    """Delivers a job's terminal state to its callback URL (signed, retried); True once accepted."""

    async def deliver(self, url: str, message_id: str, body: bytes) -> bool: ...

    async def close(self) -> None: ...


class ImageGenerator(Protocol):
    async def generate(self, request: ImageRequest, *, deadline: float) -> Generation:
        """Draw `request.n` images before `deadline` (a time.monotonic() value)."""
        ...

    async def close(self) -> None: ...
