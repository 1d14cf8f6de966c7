"""The queue listener's decisions (delete / release / poison / renew) against an in-memory queue."""

from __future__ import annotations

import asyncio
import base64
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueMessage

from devtools.devhost.config import QueueOptions
from devtools.devhost.functions import index_functions
from devtools.devhost.queues import QueueListener, QueueOutputs

_receipts = itertools.count()


@dataclass
class FakeQueue:
    name: str
    messages: list[QueueMessage] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    visibility_updates: list[tuple[str, int]] = field(default_factory=list)
    exists: bool = True
    held: dict[str, QueueMessage] = field(default_factory=dict)

    async def create_queue(self) -> None:
        self.exists = True

    async def receive_messages(self, **kwargs: Any) -> AsyncIterator[QueueMessage]:
        pending, self.messages = self.messages, []
        for message in pending:
            message.dequeue_count = (message.dequeue_count or 0) + 1
            message.pop_receipt = f"r{next(_receipts)}"
            self.held[message.id] = message
            yield message

    async def update_message(
        self, message_id: str, pop_receipt: str, *, visibility_timeout: int
    ) -> QueueMessage:
        self.visibility_updates.append((message_id, visibility_timeout))
        if visibility_timeout == OPTIONS.visibility_timeout:  # a release, not a renewal: back at once
            self.messages.append(self.held.pop(message_id))
        updated = QueueMessage(content=None)
        updated.pop_receipt = f"r{next(_receipts)}"
        return updated

    async def delete_message(self, message_id: str, pop_receipt: str) -> None:
        self.deleted.append(message_id)

    async def send_message(self, content: str) -> None:
        if not self.exists:
            raise ResourceNotFoundError("queue not found")
        self.sent.append(content)


class FakeServices:
    def __init__(self) -> None:
        self.queues: dict[str, FakeQueue] = {}

    def service(self, connection_name: str) -> FakeServices:
        return self

    def get_queue_client(self, name: str) -> FakeQueue:
        return self.queues.setdefault(name, FakeQueue(name, exists=not name.endswith("-poison")))


def incoming(message_id: str, text: str, dequeue_count: int = 0) -> QueueMessage:
    message = QueueMessage(content=base64.b64encode(text.encode()).decode())
    message.id = message_id
    message.dequeue_count = dequeue_count
    message.inserted_on = datetime.now(UTC)
    return message


def make_listener(
    behaviour: str, options: QueueOptions, lease: int = 600
) -> tuple[QueueListener, FakeServices, list[Any]]:
    app = func.FunctionApp()
    calls: list[Any] = []

    @app.queue_trigger(arg_name="msg", queue_name="work", connection="AzureWebJobsStorage")
    async def handler(msg: func.QueueMessage) -> Any:
        calls.append((msg.get_body(), msg.dequeue_count))
        if behaviour == "fail":
            raise RuntimeError("boom")
        if behaviour == "slow":
            await asyncio.sleep(1.2)
        if behaviour == "returns":
            return "a value, but there is no $return binding"
        return None

    [function] = index_functions(app, timeout=None, environ={}).queue
    services = FakeServices()
    outputs = QueueOutputs(services, "base64")  # type: ignore[arg-type]
    listener = QueueListener(function, services, outputs, options, message_lease_seconds=lease)  # type: ignore[arg-type]
    return listener, services, calls


OPTIONS = QueueOptions(
    max_polling_interval=0.1, visibility_timeout=3, batch_size=4, new_batch_threshold=2, max_dequeue_count=2
)


async def run_for(listener: QueueListener, seconds: float) -> None:
    task = asyncio.create_task(listener.run())
    await asyncio.sleep(seconds)
    listener.stop()
    await task
    await listener.drain(5)


async def test_success_deletes() -> None:
    listener, services, calls = make_listener("ok", OPTIONS)
    services.get_queue_client("work").messages.append(incoming("m1", "hello"))
    await run_for(listener, 0.3)
    assert calls == [(b"hello", 1)]
    assert services.queues["work"].deleted == ["m1"]


async def test_failure_releases_with_visibility_timeout_then_poisons_at_max() -> None:
    listener, services, calls = make_listener("fail", OPTIONS)
    work = services.get_queue_client("work")
    work.messages.append(incoming("m1", "x"))
    await run_for(listener, 0.6)
    assert work.visibility_updates == [("m1", 3)]  # released once with visibilityTimeout
    assert calls == [(b"x", 1), (b"x", 2)]  # the second failure (maxDequeueCount 2) poisons it
    poison = services.queues["work-poison"]
    assert poison.sent == [base64.b64encode(b"x").decode()]  # created on demand, same text
    assert work.deleted == ["m1"]


async def test_returning_a_value_without_a_return_binding_fails_like_an_exception() -> None:
    listener, services, calls = make_listener("returns", OPTIONS)
    work = services.get_queue_client("work")
    work.messages.append(incoming("m1", "x"))
    await run_for(listener, 0.6)
    assert calls == [(b"x", 1), (b"x", 2)]  # released once, then poisoned at maxDequeueCount 2
    assert services.queues["work-poison"].sent == [base64.b64encode(b"x").decode()]
    assert work.deleted == ["m1"]


async def test_message_already_past_max_goes_to_poison_without_running() -> None:
    listener, services, calls = make_listener("ok", OPTIONS)
    work = services.get_queue_client("work")
    work.messages.append(incoming("m1", "x", dequeue_count=2))  # received as the 3rd try
    await run_for(listener, 0.3)
    assert calls == []
    assert services.queues["work-poison"].sent == [base64.b64encode(b"x").decode()]
    assert work.deleted == ["m1"]


async def test_lease_is_renewed_while_the_function_runs() -> None:
    listener, services, _ = make_listener("slow", OPTIONS, lease=1)
    work = services.get_queue_client("work")
    work.messages.append(incoming("m1", "x"))
    await run_for(listener, 1.5)
    assert ("m1", 1) in work.visibility_updates  # renewed with the lease length at half of it
    assert work.deleted == ["m1"]


async def test_stop_abandons_what_is_still_running() -> None:
    listener, services, _ = make_listener("slow", OPTIONS)
    work = services.get_queue_client("work")
    work.messages.append(incoming("m1", "x"))
    task = asyncio.create_task(listener.run())
    await asyncio.sleep(0.2)
    listener.stop()
    await task
    assert await listener.drain(0.1) == 1
    assert work.deleted == []
    assert work.visibility_updates == []  # not released: it reappears when its lease ends


async def test_batches_respect_batch_size_and_threshold() -> None:
    listener, services, calls = make_listener("slow", OPTIONS)
    work = services.get_queue_client("work")
    # receive_messages hands out everything it has; the listener must only ask again once in-flight
    # work drops to the threshold. Feed 4, then 1 more; the 5th waits for the first batch.
    work.messages.extend(incoming(f"m{i}", "x") for i in range(4))
    task = asyncio.create_task(listener.run())
    await asyncio.sleep(0.2)
    work.messages.append(incoming("m4", "x"))
    await asyncio.sleep(0.3)
    assert listener.in_flight == 4
    await asyncio.sleep(1.2)
    assert len(calls) == 5
    listener.stop()
    await task
    await listener.drain(5)
