"""In-memory ports with the real semantics, a fake clock, and a stand-in for the Functions host.

- `InMemoryBlobs` (BlobPort): JSON records with ETags (create If-None-Match: *, replace If-Match with
  the ETag read, never a wildcard, a fresh ETag per write), documents stored as JSON text (no aliasing
  in or out) with every version kept for assertions (`versions`), image blobs, links.
- `InMemoryQueue` (MessageQueue): messages visible after their delay on the fake clock; `receive`,
  `complete` and `abandon` let a test play the Functions host (`deliver_next` does it in one call).
- `RecordingNotifier` (Notifier) and `ScriptedGenerator` (ImageGenerator, real PNG bytes).
- `FakeClock`: wall clock and monotonic clock in one, moved only by `advance`; `virtual_sleep`
  makes the service's `asyncio.sleep` (the lease renewer, the duplicate-request poll) wait on it.

Every fake yields to the event loop once per call, as a network round trip would, so concurrent
callers interleave; every method counts its calls (`calls`); `fail_next` makes the next matching
calls raise; `hold` parks the next matching call until the test releases it.
"""

from __future__ import annotations

import asyncio
import heapq
import io
import itertools
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from PIL import Image

import imagegen.core.service as service_module
from imagegen.core.service import ImageService
from imagegen.domain.errors import ImageGenError
from imagegen.domain.images import inspect_image
from imagegen.domain.jobs import Job
from imagegen.domain.messages import JobMessage, message_text
from imagegen.domain.ports import (
    BlobAlreadyExists,
    BlobChanged,
    BlobNotFound,
    GeneratedImage,
    Generation,
    JsonBlob,
    SentMessage,
    SignedLink,
    StoredBlob,
)
from imagegen.domain.pricing import Usage
from imagegen.domain.requests import ImageRequest
from imagegen.domain.settings import QUEUE_IMAGE_JOBS, Settings

START = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
FAKE_ACCOUNT_URL = "https://fakeaccount.blob.core.windows.net"
MAX_DEQUEUE_COUNT = 5  # host.json's default maxDequeueCount

_real_sleep = asyncio.sleep  # captured before any test swaps the service's asyncio.sleep


# --- time ----------------------------------------------------------------------------------------


class FakeClock:
    """`now()` (the service's `clock=`) and `monotonic()` (its `monotonic=`), moved only by `advance`.

    `sleep(delay)` waits until the clock has been advanced past `delay`: installed by `virtual_sleep`,
    it lets a test make the lease renewer tick without any real time passing."""

    def __init__(self, start: datetime = START) -> None:
        self._now = start
        self._elapsed = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return 1000.0 + self._elapsed

    def advance(self, seconds: float) -> None:
        """Move both clocks; wake the virtual sleepers whose time has come."""
        assert seconds >= 0
        self._now += timedelta(seconds=seconds)
        self._elapsed += seconds
        while self._sleepers and self._sleepers[0][0] <= self._elapsed:
            _, _, waiter = heapq.heappop(self._sleepers)
            if not waiter.done():
                waiter.set_result(None)

    @property
    def sleepers(self) -> int:
        """How many virtual sleeps are waiting (canceled ones excluded)."""
        return sum(1 for _, _, waiter in self._sleepers if not waiter.done())

    async def sleep(self, delay: float) -> None:
        if delay <= 0:
            await _real_sleep(0)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._elapsed + delay, next(self._order), waiter))
        await waiter


class _AsyncioOnFakeTime:
    """The asyncio module as imagegen.core.service sees it, but with `sleep` on the fake clock."""

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def sleep(self, delay: float) -> None:
        await self._clock.sleep(delay)


def virtual_sleep(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    """Make the service's `asyncio.sleep` wait for `clock.advance` (nothing else is changed)."""
    monkeypatch.setattr(service_module, "asyncio", _AsyncioOnFakeTime(clock))


async def settle(condition: Callable[[], bool], *, rounds: int = 500) -> None:
    """Run the event loop (no real time) until `condition()` holds; fail if it never does."""
    for _ in range(rounds):
        if condition():
            return
        await _real_sleep(0)
    raise AssertionError("the condition did not come true while the event loop ran")


# --- scripting calls: counts, failures, holds ----------------------------------------------------


T = TypeVar("T")


async def soon(awaitable: Awaitable[T], *, rounds: int = 1000) -> T:
    """The result of `awaitable`, which must come within `rounds` turns of the event loop and no real
    time: a regression that leaves it waiting (say, for the real 1.7 s renewer tick) fails the test
    at once instead of hanging it or being rescued by real time."""
    task = asyncio.ensure_future(awaitable)
    for _ in range(rounds):
        if task.done():
            return task.result()
        await _real_sleep(0)
    task.cancel()
    raise AssertionError(f"still waiting after {rounds} turns of the event loop")


class Hold:
    """Parks one call until `release()`; `reached` is set once the call is waiting."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self._released = asyncio.Event()

    def release(self) -> None:
        self._released.set()

    async def _wait(self) -> None:
        self.reached.set()
        await self._released.wait()


Where = Callable[[str], bool]


def _anywhere(_key: str) -> bool:
    return True


class _Scripted:
    """Counts calls per method; raises injected failures; parks calls on holds."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._failures: list[tuple[str, Where, Exception]] = []
        self._holds: list[tuple[str, Where, Hold]] = []

    def fail_next(self, method: str, error: Exception, *, times: int = 1, where: Where = _anywhere) -> None:
        """The next `times` calls of `method` (whose key `where` accepts) raise `error`."""
        self._failures.extend((method, where, error) for _ in range(times))

    def hold(self, method: str, *, where: Where = _anywhere) -> Hold:
        """The next call of `method` (whose key `where` accepts) waits until the hold is released."""
        held = Hold()
        self._holds.append((method, where, held))
        return held

    async def _call(self, method: str, key: str) -> None:
        self.calls[method] += 1
        await _real_sleep(0)  # a round trip: other callers run meanwhile
        for index, (name, where, error) in enumerate(self._failures):
            if name == method and where(key):
                del self._failures[index]
                raise error
        for index, (name, where, held) in enumerate(self._holds):
            if name == method and where(key):
                del self._holds[index]
                await held._wait()
                break


# --- Blob Storage --------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredFile:
    data: bytes
    content_type: str
    metadata: dict[str, str]


class InMemoryBlobs(_Scripted):
    """BlobPort: JSON records with ETags and image blobs, kept as Blob Storage would keep them."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self._clock = clock
        self._records: dict[tuple[str, str], tuple[str, str]] = {}  # (container, name) -> (JSON, ETag)
        self._history: dict[tuple[str, str], list[str]] = {}  # every JSON ever stored, oldest first
        self.files: dict[tuple[str, str], StoredFile] = {}
        self.uploads: Counter[str] = Counter()  # completed uploads per blob name
        self._etags = itertools.count(1)

    def _etag(self) -> str:
        return f'"0x{next(self._etags):X}"'

    # JobRecordStore

    async def create_json(self, container: str, name: str, document: Mapping[str, Any]) -> str:
        await self._call("create_json", name)
        if (container, name) in self._records:
            raise BlobAlreadyExists(name)
        etag = self._etag()
        self._store_json(container, name, document, etag)
        return etag

    async def read_json(self, container: str, name: str) -> JsonBlob:
        await self._call("read_json", name)
        if (container, name) not in self._records:
            raise BlobNotFound(name)
        text, etag = self._records[container, name]
        return JsonBlob(json.loads(text), etag)

    async def replace_json(self, container: str, name: str, document: Mapping[str, Any], *, etag: str) -> str:
        """If-Match `etag`; a wildcard (`*`, which would match any version) is refused as the Blob
        adapter refuses it, before any round trip."""
        if not etag or etag.strip() == "*":
            raise ValueError("replace_json needs the ETag that was read, not a wildcard")
        await self._call("replace_json", name)
        if (container, name) not in self._records:
            raise BlobNotFound(name)
        if self._records[container, name][1] != etag:
            raise BlobChanged(name)
        new_etag = self._etag()
        self._store_json(container, name, document, new_etag)
        return new_etag

    def _store_json(self, container: str, name: str, document: Mapping[str, Any], etag: str) -> None:
        text = json.dumps(dict(document))
        self._records[container, name] = (text, etag)
        self._history.setdefault((container, name), []).append(text)

    # ImageStore

    async def upload(
        self, container: str, name: str, data: bytes, *, content_type: str, metadata: Mapping[str, str]
    ) -> None:
        await self._call("upload", name)
        self.files[container, name] = StoredFile(bytes(data), content_type, dict(metadata))
        self.uploads[name] += 1

    async def stored(self, container: str, name: str) -> StoredBlob | None:
        await self._call("stored", name)
        found = self.files.get((container, name))
        if found is None:
            return None
        return StoredBlob(found.content_type, len(found.data), dict(found.metadata))

    async def read_link(self, container: str, name: str, *, ttl: timedelta) -> SignedLink:
        await self._call("read_link", name)
        expires_at = (self._clock.now() + ttl).replace(microsecond=0)
        expiry = expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        return SignedLink(f"{FAKE_ACCOUNT_URL}/{container}/{name}?sp=r&se={expiry}&sig=fake", expires_at)

    async def check_reachable(self, container: str) -> None:
        await self._call("check_reachable", container)

    async def close(self) -> None:
        self.calls["close"] += 1

    # for assertions and set-up

    def document(self, container: str, name: str) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self._records[container, name][0])
        return document

    def etag(self, container: str, name: str) -> str:
        return self._records[container, name][1]

    def versions(self, container: str, name: str) -> list[dict[str, Any]]:
        """Every document ever stored under `name` (created, then each replace), oldest first."""
        return [json.loads(text) for text in self._history.get((container, name), [])]

    def names(self, container: str) -> list[str]:
        return sorted(name for stored_in, name in (*self._records, *self.files) if stored_in == container)


# --- Queue Storage -------------------------------------------------------------------------------


@dataclass
class QueuedMessage:
    queue: str
    id: str
    pop_receipt: str
    text: str
    visible_at: datetime
    delay_seconds: float
    dequeue_count: int = 0

    @property
    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = json.loads(self.text)
        return payload


class InMemoryQueue(_Scripted):
    """MessageQueue: messages become visible `delay_seconds` after they are sent, on the fake clock."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self._clock = clock
        self._messages: list[QueuedMessage] = []
        self.sent: list[QueuedMessage] = []  # every message ever sent, as sent
        self._ids = itertools.count(1)

    async def send(self, queue: str, payload: Mapping[str, Any], *, delay_seconds: float = 0) -> SentMessage:
        await self._call("send", queue)
        number = next(self._ids)
        message = QueuedMessage(
            queue=queue,
            id=f"msg-{number}",
            pop_receipt=f"receipt-{number}-0",
            text=message_text(payload),
            visible_at=self._clock.now() + timedelta(seconds=max(0.0, delay_seconds)),
            delay_seconds=delay_seconds,
        )
        self._messages.append(message)
        self.sent.append(replace(message))
        return SentMessage(queue, message.id, message.pop_receipt)

    async def delete(self, message: SentMessage) -> None:
        """Delete by id and pop receipt; a message already gone (or received since) is left alone."""
        await self._call("delete", message.queue)
        self._remove(message.queue, message.id, message.pop_receipt)

    async def check_reachable(self, queue: str) -> None:
        await self._call("check_reachable", queue)

    async def close(self) -> None:
        self.calls["close"] += 1

    def _remove(self, queue: str, message_id: str, pop_receipt: str) -> None:
        self._messages = [
            m
            for m in self._messages
            if not (m.queue == queue and m.id == message_id and m.pop_receipt == pop_receipt)
        ]

    # the Functions host's side

    def receive(self, queue: str, *, visibility_seconds: float = 600.0) -> QueuedMessage | None:
        """The next visible message (hidden for `visibility_seconds`, dequeue count + 1), or None."""
        now = self._clock.now()
        visible = [m for m in self._messages if m.queue == queue and m.visible_at <= now]
        if not visible:
            return None
        message = min(visible, key=lambda m: m.visible_at)
        message.dequeue_count += 1
        message.pop_receipt = f"receipt-{message.id}-{message.dequeue_count}"
        message.visible_at = now + timedelta(seconds=visibility_seconds)
        return replace(message)

    def complete(self, message: QueuedMessage) -> None:
        """The handler returned: the host deletes the message."""
        self._remove(message.queue, message.id, message.pop_receipt)

    def abandon(self, message: QueuedMessage) -> None:
        """The handler raised: the message is visible again now (or poisoned after MAX_DEQUEUE_COUNT)."""
        for stored in self._messages:
            if stored.queue == message.queue and stored.id == message.id:
                if stored.dequeue_count >= MAX_DEQUEUE_COUNT:
                    self._messages.remove(stored)
                    poisoned = replace(stored)
                    poisoned.queue = f"{stored.queue}-poison"
                    poisoned.visible_at = self._clock.now()
                    poisoned.dequeue_count = 0  # a new message in the poison queue
                    self._messages.append(poisoned)
                else:
                    stored.visible_at = self._clock.now()
                return

    def messages(self, queue: str) -> list[QueuedMessage]:
        """Every message in `queue`, visible or not, oldest first."""
        return [replace(m) for m in self._messages if m.queue == queue]

    def payloads(self, queue: str) -> list[dict[str, Any]]:
        return [m.payload for m in self.messages(queue)]

    def visible(self, queue: str) -> list[QueuedMessage]:
        """The messages of `queue` that `receive` could hand out now, oldest first."""
        now = self._clock.now()
        return [m for m in self.messages(queue) if m.visible_at <= now]


async def deliver_next(
    service: ImageService, queue: InMemoryQueue, name: str = QUEUE_IMAGE_JOBS
) -> Job | None:
    """Play the Functions host once for `image-jobs` (or its poison queue): receive the next visible
    message, run its trigger as imagegen.edges.queue_triggers does (with the job id only: whatever
    else a message carries is dropped by JobMessage.parse), delete the message when the
    handler returns, make it visible again (or poison it) when it raises, and re-raise."""
    received = queue.receive(name)
    if received is None:
        raise LookupError(f"no visible message in {name}")
    message = JobMessage.parse(received.text)
    assert message is not None, received.text
    try:
        if name.endswith("-poison"):
            result = await service.handle_poisoned_job_message(message.job_id, received.dequeue_count)
        else:
            result = await service.handle_job_message(message.job_id)
    except Exception:
        queue.abandon(received)
        raise
    queue.complete(received)
    return result


# --- callbacks -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    url: str
    message_id: str
    body: dict[str, Any]


class RecordingNotifier:
    """Notifier: records each delivery; `fail_next` makes the next one raise, `accept=False` refuse."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.accept = True
        self.calls: Counter[str] = Counter()
        self._failures: list[Exception] = []

    def fail_next(self, error: Exception) -> None:
        self._failures.append(error)

    async def deliver(self, url: str, message_id: str, body: bytes) -> bool:
        self.calls["deliver"] += 1
        await _real_sleep(0)
        if self._failures:
            raise self._failures.pop(0)
        self.deliveries.append(Delivery(url, message_id, json.loads(body)))
        return self.accept

    async def close(self) -> None:
        self.calls["close"] += 1


# --- the image model -----------------------------------------------------------------------------


def png_bytes(width: int = 8, height: int = 8, color: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


DEFAULT_USAGE = Usage(text_tokens=12, image_tokens=0, output_tokens=4160)


class ScriptedGenerator:
    """ImageGenerator: `request.n` small real PNGs per call (different each call) and a Usage.

    `hold()` makes calls wait until `release()` (a job stays running); `fail_with(error)` makes the
    next call raise; `started` is set when a call begins; `requests` lists what was asked."""

    def __init__(self, usage: Usage | None = DEFAULT_USAGE) -> None:
        self.usage = usage
        self.calls = 0
        self.requests: list[ImageRequest] = []
        self.started = asyncio.Event()
        self.canceled = 0  # calls stopped (the work was canceled) while generating
        self._gate: asyncio.Event | None = None
        self._failures: list[ImageGenError] = []
        self.closed = 0

    def hold(self) -> None:
        self._gate = asyncio.Event()

    def release(self) -> None:
        if self._gate is not None:
            self._gate.set()
        self._gate = None

    def fail_with(self, error: ImageGenError) -> None:
        self._failures.append(error)

    async def generate(self, request: ImageRequest, *, deadline: float) -> Generation:
        self.calls += 1
        call = self.calls
        self.requests.append(request)
        self.started.set()
        gate = self._gate
        try:
            if gate is not None:
                await gate.wait()
            else:
                await _real_sleep(0)
        except asyncio.CancelledError:
            self.canceled += 1
            raise
        if self._failures:
            raise self._failures.pop(0)
        images = []
        for index in range(request.n):
            data = png_bytes(8 + index, 8, (call * 40 % 256, index * 60 % 256, 90))
            images.append(
                GeneratedImage(data, inspect_image(data), revised_prompt=f"{request.prompt} #{index}")
            )
        return Generation(tuple(images), self.usage)

    async def close(self) -> None:
        self.closed += 1


# --- a world of fakes and the services on it -----------------------------------------------------

LEASE_SECONDS = 5.0  # the smallest JOB_LEASE_SECONDS allowed; the clock is advanced, never waited on


def fake_settings(**extra: str) -> Settings:
    env = {
        "AZURE_OPENAI_ENDPOINT": "https://fake-aoai.openai.azure.com",
        "AZURE_OPENAI_DEPLOYMENT": "gpt-image-2",
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "JOB_LEASE_SECONDS": str(LEASE_SECONDS),
        # A quota the tests never reach unless they set their own pool (test_pacing does).
        "AZURE_OPENAI_BACKENDS": json.dumps(
            [{"endpoint": "https://fake-aoai.openai.azure.com", "deployment": "gpt-image-2", "rpm": 60000}]
        ),
        **extra,
    }
    return Settings.from_env(env)


@dataclass
class World:
    """Shared storage, queues, callbacks, model and clock: the services built on it are instances
    of one function app (`instance("a")`, `instance("b")`)."""

    settings: Settings = field(default_factory=fake_settings)
    clock: FakeClock = field(default_factory=FakeClock)
    generator: ScriptedGenerator = field(default_factory=ScriptedGenerator)
    notifier: RecordingNotifier = field(default_factory=RecordingNotifier)
    blobs: InMemoryBlobs = field(init=False)
    queue: InMemoryQueue = field(init=False)

    def __post_init__(self) -> None:
        self.blobs = InMemoryBlobs(self.clock)
        self.queue = InMemoryQueue(self.clock)

    def instance(self, instance_id: str) -> ImageService:
        return ImageService(
            self.settings,
            self.generator,
            self.blobs,
            self.queue,
            webhooks=self.notifier,
            clock=self.clock.now,
            monotonic=self.clock.monotonic,
            instance_id=instance_id,
        )

    def record(self, job_id: str) -> dict[str, Any]:
        """The stored job record, as JSON."""
        return self.blobs.document(self.settings.jobs_container, f"{job_id}.json")

    def etag(self, job_id: str) -> str:
        return self.blobs.etag(self.settings.jobs_container, f"{job_id}.json")

    def versions(self, job_id: str) -> list[dict[str, Any]]:
        """Every version of the job record ever written, oldest first."""
        return self.blobs.versions(self.settings.jobs_container, f"{job_id}.json")

    def job_ids(self) -> list[str]:
        """Job records only (idempotency records and the app's key live under their own prefixes)."""
        names = self.blobs.names(self.settings.jobs_container)
        return [name.removesuffix(".json") for name in names if "/" not in name]
