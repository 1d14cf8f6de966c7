"""Queue-trigger handlers: `image-jobs` (run or resume), its poison queue, and `image-requests`.

A handler that returns lets the host delete the message; one that raises (storage trouble) has the
host retry it, and after maxDequeueCount tries move it to `<queue>-poison`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import azure.functions as func

from imagegen.errors import InvalidRequest
from imagegen.intake import build_submission, check_idempotency_key
from imagegen.jobs import Job, VersionedJob
from imagegen.jsontext import NotJson, parse_json
from imagegen.service import ImageService

log = logging.getLogger(__name__)

ServiceFactory = Callable[[], ImageService]


def _job_message(msg: func.QueueMessage) -> dict[str, Any] | None:
    try:
        document = parse_json(msg.get_body())
    except NotJson:
        return None
    if not isinstance(document, dict) or not isinstance(document.get("job_id"), str):
        return None
    return document


def _job_id(msg: func.QueueMessage) -> str | None:
    document = _job_message(msg)
    return None if document is None else str(document["job_id"])


def _carried_record(document: dict[str, Any]) -> VersionedJob | None:
    """The record a respond-async message carries (see ImageService._job_message), if it reads."""
    record, etag = document.get("record"), document.get("etag")
    if not isinstance(record, dict) or not isinstance(etag, str):
        return None
    try:
        return VersionedJob(Job.from_record(record), etag)
    except (KeyError, TypeError, ValueError):
        return None  # not ours to trust: the stored record decides


async def run_image_job(msg: func.QueueMessage, service_factory: ServiceFactory) -> None:
    document = _job_message(msg)
    if document is None:
        log.warning("image-jobs message %s is not a job message; dropped", msg.id)
        return
    await service_factory().handle_job_message(str(document["job_id"]), _carried_record(document))


async def fail_poisoned_image_job(msg: func.QueueMessage, service_factory: ServiceFactory) -> None:
    job_id = _job_id(msg)
    if job_id is None:
        log.warning("image-jobs-poison message %s is not a job message; dropped", msg.id)
        return
    await service_factory().handle_poisoned_job_message(job_id, msg.dequeue_count)


async def accept_image_request(msg: func.QueueMessage, service_factory: ServiceFactory) -> None:
    """`image-requests`: the POST body as a message (+ idempotency_key, callback_url) becomes a job.

    Without an idempotency_key the message id is the key, so a redelivered message is the same job.
    A malformed message goes to `image-requests-poison` at once, wrapped with the reason.
    """
    service = service_factory()
    text = msg.get_body().decode("utf-8", errors="replace")
    try:
        document: Any = parse_json(text)
        if not isinstance(document, dict):
            raise InvalidRequest("the message must be a JSON object", field="body")
        fields = dict(document)
        key = (
            check_idempotency_key(fields.pop("idempotency_key", None), field="idempotency_key")
            or f"queue:{msg.id}"
        )
        submission = await build_submission(
            fields, rules=service.rules, settings=service.settings, idempotency_key=key, api_base=None
        )
    except NotJson as error:
        await service.reject_request_message(
            text, InvalidRequest(f"the message is not valid JSON ({error.reason})", field="body")
        )
        log.warning("image-requests message %s is not JSON: moved to poison", msg.id)
        return
    except InvalidRequest as error:
        await service.reject_request_message(text, error)
        log.warning("image-requests message %s is invalid (%s): moved to poison", msg.id, error.field)
        return
    job = await service.submit_async(submission)
    log.info("image-requests message %s became job %s", msg.id, job.id)
