"""Queue-trigger handlers: `image-jobs` (run or resume), its poison queue, and `image-requests`.

A handler that returns lets the host delete the message; one that raises (storage trouble) has the
host retry it, and after maxDequeueCount tries move it to `<queue>-poison`.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import azure.functions as func

from imagegen.core.intake import build_submission, check_idempotency_key
from imagegen.domain.errors import IdempotencyKeyReused, InvalidRequest
from imagegen.domain.jsontext import NotJson, parse_json
from imagegen.domain.logtext import escaped
from imagegen.domain.messages import JobMessage
from imagegen.edges.context import HandlerContext

log = logging.getLogger(__name__)


async def run_image_job(msg: func.QueueMessage, context: HandlerContext) -> None:
    message = JobMessage.parse(msg.get_body())
    if message is None:
        log.warning("image-jobs message %s is not a job message; dropped", escaped(msg.id))
        return
    await context.service().handle_job_message(message.job_id)


async def fail_poisoned_image_job(msg: func.QueueMessage, context: HandlerContext) -> None:
    message = JobMessage.parse(msg.get_body())
    if message is None:
        log.warning("image-jobs-poison message %s is not a job message; dropped", escaped(msg.id))
        return
    await context.service().handle_poisoned_job_message(message.job_id, msg.dequeue_count)


async def accept_image_request(msg: func.QueueMessage, context: HandlerContext) -> None:
    """`image-requests`: the POST body as a message (+ idempotency_key, callback_url) becomes a job.

    Without an idempotency_key the message id is the key, so a redelivered message is the same job.
    A malformed message goes to `image-requests-poison` at once, wrapped with the reason.
    """
    service = context.service()
    body = msg.get_body()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = body.decode("utf-8", errors="replace")  # what the poison note shows
        utf8 = False
    else:
        utf8 = True
    try:
        if not utf8:
            raise InvalidRequest("the message is not valid UTF-8 (HTTP refuses the same bytes)", field="body")
        document: Any = parse_json(text)
        if not isinstance(document, dict):
            raise InvalidRequest("the message must be a JSON object", field="body")
        fields = dict(document)
        key = (
            check_idempotency_key(fields.pop("idempotency_key", None), field="idempotency_key")
            or f"queue:{msg.id}"
        )
        submission = replace(
            await build_submission(
                fields, rules=service.rules, settings=service.settings, idempotency_key=key
            ),
            idempotency_scope="queue",
        )
    except NotJson as error:
        await service.reject_request_message(
            text, InvalidRequest(f"the message is not valid JSON ({error.reason})", field="body")
        )
        log.warning("image-requests message %s is not JSON: moved to poison", escaped(msg.id))
        return
    except InvalidRequest as error:
        await service.reject_request_message(text, error)
        log.warning(
            "image-requests message %s is invalid (%s): moved to poison",
            escaped(msg.id),
            escaped(error.field),
        )
        return
    try:
        job = await service.submit_async(submission)
    except IdempotencyKeyReused as error:  # no retry can fix it: poison at once, with the reason
        await service.reject_request_message(text, error)
        log.warning("image-requests message %s reuses an idempotency key: moved to poison", escaped(msg.id))
        return
    log.info("image-requests message %s became job %s", escaped(msg.id), job.id)
