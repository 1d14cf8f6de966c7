"""Queue Storage: job messages (`image-jobs`), results (`image-results`) and poison notes.

Messages are base64 text, like the Functions host's default `messageEncoding`, so the host's queue
triggers read what we send. Every failure leaves as imagegen.domain.errors.StorageError.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import TextBase64DecodePolicy, TextBase64EncodePolicy
from azure.storage.queue._shared.policies_async import ExponentialRetry  # not re-exported by .aio
from azure.storage.queue.aio import QueueClient

from imagegen.adapters.transport import (
    PROBE_CALL_OPTIONS,
    STORAGE_RETRY,
    CallCounter,
    connection_options,
    counted_retry,
)
from imagegen.domain.errors import StorageError
from imagegen.domain.messages import MAX_MESSAGE_BYTES, message_text, wire_size
from imagegen.domain.ports import SentMessage
from imagegen.domain.settings import StorageSettings

log = logging.getLogger(__name__)
MAX_VISIBILITY_SECONDS = 7 * 24 * 3600


class QueueStore:
    def __init__(
        self,
        storage: StorageSettings,
        *,
        credential: AsyncTokenCredential | None,
        connection_verify: str | None = None,
        call_counter: CallCounter | None = None,
    ) -> None:
        if storage.uses_identity and credential is None:
            raise ValueError("identity-based storage needs a credential")
        self._storage = storage
        self._credential = credential
        self._connection_verify = connection_verify
        self._queues: dict[str, QueueClient] = {}
        self._ready: set[str] = set()
        self._call_counter = call_counter

    def _queue(self, name: str) -> QueueClient:
        """A client per queue, built with our options (get_queue_client would drop the encoding)."""
        if name not in self._queues:
            options: dict[str, Any] = {
                "message_encode_policy": TextBase64EncodePolicy(),
                "message_decode_policy": TextBase64DecodePolicy(),
                "retry_policy": counted_retry(ExponentialRetry, self._call_counter, STORAGE_RETRY),
                **connection_options(self._connection_verify, read_timeout=30),
            }
            if self._storage.connection_string is not None:
                client = QueueClient.from_connection_string(self._storage.connection_string, name, **options)
            else:
                client = QueueClient(
                    self._storage.queue_service_uri, name, credential=self._credential, **options
                )
            self._queues[name] = client
        return self._queues[name]

    async def close(self) -> None:
        for client in self._queues.values():
            await client.close()
        self._queues.clear()

    async def _ensure(self, name: str) -> None:
        if name in self._ready:
            return
        try:
            await self._queue(name).create_queue()
        except ResourceExistsError:
            pass
        except AzureError as error:
            raise _queue_error("create a queue", error) from None
        self._ready.add(name)

    async def send(self, queue: str, payload: Mapping[str, Any], *, delay_seconds: float = 0) -> SentMessage:
        """Send JSON, visible after `delay_seconds` (the grace period of a job in progress)."""
        text = message_text(payload)
        if wire_size(text) > MAX_MESSAGE_BYTES:
            raise ValueError(f"a message for {queue} is larger than a queue message may be")
        await self._ensure(queue)
        visibility = min(MAX_VISIBILITY_SECONDS, max(0, round(delay_seconds)))
        try:
            sent = await self._queue(queue).send_message(text, visibility_timeout=visibility or None)
        except AzureError as error:
            raise _queue_error("send a queue message", error) from None
        return SentMessage(queue, str(sent.id), str(sent.pop_receipt))

    async def delete(self, message: SentMessage) -> None:
        """Delete a message we sent (a job finished in time: nobody needs to resume it)."""
        try:
            await self._queue(message.queue).delete_message(message.id, message.pop_receipt)
        except ResourceNotFoundError:
            pass  # already gone (received by a worker, or expired)
        except AzureError as error:
            raise _queue_error("delete a queue message", error) from None

    async def check_reachable(self, queue: str) -> None:
        """For health checks (one quick attempt): the queue exists and can be read with our credential."""
        try:
            await self._queue(queue).get_queue_properties(**PROBE_CALL_OPTIONS)
        except ResourceNotFoundError:
            await self._ensure(queue)
        except AzureError as error:
            raise _queue_error("reach Queue Storage", error) from None


def _queue_error(action: str, error: AzureError) -> StorageError:
    log.warning("Queue Storage: could not %s (%s)", action, error.__class__.__name__)
    return StorageError(f"Queue Storage is unavailable: could not {action}")
