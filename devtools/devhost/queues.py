"""Queue triggers driven like the Functions host's queue listener (Azure Storage Queues extension).

Per trigger: receive up to `batchSize` messages under a lease (visibility timeout, renewed at half
its length while the function runs), run them concurrently, fetch the next batch when in-flight work
drops to `newBatchThreshold`; re-poll at once after a non-empty receive, back off exponentially
(100 ms doubling, with jitter) to `maxPollingInterval` while empty. Success deletes the message;
failure releases it with `visibilityTimeout`, or moves it to `<queue>-poison` once it has been
dequeued `maxDequeueCount` times. A message received with a dequeue count already above the limit
(its last try died with its host) goes to poison without running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.functions.meta import Datum
from azure.storage.queue import QueueMessage as StorageQueueMessage
from azure.storage.queue.aio import QueueClient

from devtools.devhost.bindings import (
    ReceivedMessage,
    body_properties_named_like_metadata,
    queue_trigger_datum,
    queue_trigger_metadata,
)
from devtools.devhost.config import MIN_POLLING_INTERVAL, QueueOptions
from devtools.devhost.connections import QueueServices
from devtools.devhost.functions import InvocationResult, QueueFunction, QueueOutputBinding
from devtools.devhost.messages import decode_body, encode_body, queue_message_bodies
from devtools.devhost.tracecontext import invocation_trace_context

log = logging.getLogger("devhost.queue")

DEFAULT_MESSAGE_LEASE_SECONDS = 600  # the host receives with a 10-minute lease and renews it at half


def poison_queue_name(queue_name: str) -> str:
    return f"{queue_name}-poison"


def next_polling_delay(current: float, maximum: float) -> float:
    """The next empty-queue wait: double (with ±10% jitter) up to `maximum`."""
    return min(maximum, current * 2 * random.uniform(0.9, 1.1))


def _describe(error: BaseException) -> str:
    """A short, secret-free description of a storage error for the log (first line only)."""
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first_line[:200]}"


@dataclass
class _Lease:
    """A received message's current pop receipt (every visibility update replaces it)."""

    message_id: str
    pop_receipt: str


class QueueOutputs:
    """Writes `queue` output bindings and wakes the dev host's own listeners on those queues."""

    def __init__(self, services: QueueServices, encoding: str) -> None:
        self._services = services
        self._encoding = encoding
        self._wake_callbacks: dict[tuple[str, str], list[Callable[[], None]]] = {}
        self._created: set[tuple[str, str]] = set()

    def on_message_added(self, connection: str, queue_name: str, callback: Callable[[], None]) -> None:
        self._wake_callbacks.setdefault((connection, queue_name.lower()), []).append(callback)

    async def send(self, connection: str, queue_name: str, body_text: str) -> None:
        queue = self._services.service(connection).get_queue_client(queue_name)
        key = (connection, queue_name.lower())
        if key not in self._created:
            with contextlib.suppress(ResourceExistsError):
                await queue.create_queue()
            self._created.add(key)
        try:
            await queue.send_message(body_text)
        except ResourceNotFoundError:  # deleted since: create it again, like the host
            with contextlib.suppress(ResourceExistsError):
                await queue.create_queue()
            await queue.send_message(body_text)
        for wake in self._wake_callbacks.get(key, []):
            wake()

    async def write(self, outputs: list[tuple[QueueOutputBinding, Datum]]) -> None:
        """Send each encoded output value as the message(s) the host writes for it."""
        for binding, value in outputs:
            for body in queue_message_bodies(value):
                await self.send(binding.connection, binding.queue_name, encode_body(body, self._encoding))


class QueueListener:
    def __init__(
        self,
        function: QueueFunction,
        services: QueueServices,
        outputs: QueueOutputs,
        options: QueueOptions,
        *,
        message_lease_seconds: int = DEFAULT_MESSAGE_LEASE_SECONDS,
    ) -> None:
        self.function = function
        self._queue: QueueClient = services.service(function.connection).get_queue_client(function.queue_name)
        self._poison: QueueClient = services.service(function.connection).get_queue_client(
            poison_queue_name(function.queue_name)
        )
        self._outputs = outputs
        self._options = options
        self._lease_seconds = max(1, message_lease_seconds)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._poke = asyncio.Event()
        outputs.on_message_added(function.connection, function.queue_name, self._poke.set)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def stop(self) -> None:
        """Stop receiving; in-flight invocations continue until `drain`."""
        self._stopping.set()
        self._poke.set()

    async def _wait_for_poke(self, wait_seconds: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._poke.wait(), wait_seconds)
        self._poke.clear()

    async def run(self) -> None:
        """Poll until `stop()`."""
        options = self._options
        delay = MIN_POLLING_INTERVAL
        queue_ready = False
        while not self._stopping.is_set():
            if len(self._in_flight) > options.new_batch_threshold:
                await self._wait_for_poke(None)  # a finishing invocation pokes
                continue
            messages: list[StorageQueueMessage] = []
            try:
                if not queue_ready:
                    with contextlib.suppress(ResourceExistsError):
                        await self._queue.create_queue()
                    queue_ready = True
                async for message in self._queue.receive_messages(
                    max_messages=options.batch_size,
                    messages_per_page=options.batch_size,
                    visibility_timeout=self._lease_seconds,
                ):
                    messages.append(message)
            except ResourceNotFoundError:
                queue_ready = False
            except AzureError as error:
                log.warning("queue %s: receive failed (%s)", self.function.queue_name, _describe(error))
            if self._stopping.is_set():
                # Received while stopping: abandoned, visible again when their lease ends.
                break
            for message in messages:
                task = asyncio.create_task(self._process(message), name=f"queue:{message.id}")
                self._in_flight.add(task)
                task.add_done_callback(self._finished)
            if messages:
                delay = MIN_POLLING_INTERVAL
                continue
            await self._wait_for_poke(delay)
            delay = next_polling_delay(delay, options.max_polling_interval)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._poke.set()

    async def drain(self, grace_seconds: float) -> int:
        """Wait up to `grace_seconds` for in-flight invocations; abandon the rest (their messages stay
        invisible until their lease ends, as after a crash). Returns how many were abandoned."""
        pending = set(self._in_flight)
        if pending:
            _, pending = await asyncio.wait(pending, timeout=grace_seconds)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1)
        return len(pending)

    async def _renew_lease(self, lease: _Lease, finished: asyncio.Event) -> None:
        """Keep the message invisible while the function runs (update at half the lease)."""
        interval = self._lease_seconds / 2
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished.wait(), interval)
                return
            try:
                receipt = await self._queue.update_message(
                    lease.message_id, lease.pop_receipt, visibility_timeout=self._lease_seconds
                )
            except AzureError as error:
                log.warning("queue %s: lease renewal failed (%s)", self.function.queue_name, _describe(error))
                continue
            if receipt.pop_receipt:
                lease.pop_receipt = receipt.pop_receipt

    async def _process(self, message: StorageQueueMessage) -> None:
        options = self._options
        name = self.function.name
        dequeue_count = message.dequeue_count or 0
        lease = _Lease(message.id, message.pop_receipt or "")
        if dequeue_count > options.max_dequeue_count:
            log.warning(
                "function %s: message %s dequeued %d times (> maxDequeueCount %d) without finishing; "
                "moving it to %s",
                name, message.id, dequeue_count, options.max_dequeue_count,
                poison_queue_name(self.function.queue_name),
            )  # fmt: skip
            await self._move_to_poison(message, lease)
            return
        finished = asyncio.Event()
        renewal = asyncio.create_task(self._renew_lease(lease, finished))
        started = time.perf_counter()
        succeeded = False
        try:
            succeeded = await self._invoke(message, dequeue_count, self._outputs.write)
        finally:
            finished.set()
            await renewal
        elapsed_ms = (time.perf_counter() - started) * 1000
        log.info(
            "queue %s %s message=%s dequeue_count=%d %s %.1fms",
            self.function.queue_name, name, message.id, dequeue_count,
            "succeeded" if succeeded else "failed", elapsed_ms,
        )  # fmt: skip
        try:
            if succeeded:
                await self._queue.delete_message(lease.message_id, lease.pop_receipt)
            elif dequeue_count >= options.max_dequeue_count:
                log.warning(
                    "function %s: message %s has reached maxDequeueCount of %d; moving it to %s",
                    name, message.id, options.max_dequeue_count, poison_queue_name(self.function.queue_name),
                )  # fmt: skip
                await self._move_to_poison(message, lease)
            else:
                await self._queue.update_message(
                    lease.message_id, lease.pop_receipt, visibility_timeout=options.visibility_timeout_seconds
                )
        except AzureError as error:
            # The message reappears when its lease ends; the next try sees a higher dequeue count.
            log.warning(
                "queue %s: completing message failed (%s)", self.function.queue_name, _describe(error)
            )

    async def _invoke(
        self,
        message: StorageQueueMessage,
        dequeue_count: int,
        write_outputs: Callable[[list[tuple[QueueOutputBinding, Datum]]], Awaitable[None]],
    ) -> bool:
        invoker = self.function.invoker
        try:
            body = decode_body(message.content or "", self._options.message_encoding)
            received = ReceivedMessage(
                message_id=message.id,
                dequeue_count=dequeue_count,
                expires_on=message.expires_on,
                inserted_on=message.inserted_on,
                next_visible_on=message.next_visible_on,
                pop_receipt=message.pop_receipt,
            )
            body_properties = body_properties_named_like_metadata(body)
            if body_properties:
                log.warning(
                    "function %s: message %s is a JSON object with %s; like the host, these replace the "
                    "message's own metadata the function sees", self.function.name, message.id,
                    ", ".join(map(repr, sorted(body_properties))),
                )  # fmt: skip
            result: InvocationResult = await invoker.invoke(
                queue_trigger_datum(body, invoker.trigger_data_type),
                queue_trigger_metadata(received, body_properties),
                trace_context=invocation_trace_context(),
            )
            await write_outputs(result.queue_outputs)
        except Exception:
            # The host's boundary: a failing function (or its output bindings) fails this try only.
            log.exception("function %s failed on message %s", self.function.name, message.id)
            return False
        return True

    async def _move_to_poison(self, message: StorageQueueMessage, lease: _Lease) -> None:
        """Copy the message text as received (still encoded) to `<queue>-poison`, then delete it."""
        try:
            try:
                await self._poison.send_message(message.content)
            except ResourceNotFoundError:
                with contextlib.suppress(ResourceExistsError):
                    await self._poison.create_queue()
                await self._poison.send_message(message.content)
            await self._queue.delete_message(lease.message_id, lease.pop_receipt)
        except AzureError as error:
            log.warning("queue %s: moving to poison failed (%s)", self.function.queue_name, _describe(error))
