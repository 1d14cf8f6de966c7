"""image-jobs and image-jobs-poison messages that are not job messages are dropped, never raised:
a raising trigger would be retried and poisoned by the host for a message no retry can fix."""

from __future__ import annotations

import logging

import azure.functions as func
import pytest

from imagegen.core.service import ImageService
from imagegen.domain.settings import Settings
from imagegen.edges.context import HandlerContext
from imagegen.edges.queue_triggers import fail_poisoned_image_job, run_image_job

NOT_JOB_MESSAGES = [
    b"{not json",
    b"[" * 5000 + b"]" * 5000,
    b'{"job_id": ' + b"1" * 5000 + b"}",
    b'{"job_id": 7}',
    b'["job_id"]',
    b"\xff\xfe",
]


def _no_service() -> ImageService:
    raise AssertionError("a message that is not a job message must not reach the service")


def _no_settings() -> Settings:
    raise AssertionError("not needed")


NO_SERVICE = HandlerContext(settings=_no_settings, service=_no_service)


@pytest.mark.parametrize("body", NOT_JOB_MESSAGES)
async def test_a_message_that_is_not_a_job_message_is_dropped(
    body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="imagegen.edges.queue_triggers")
    message = func.QueueMessage(id="m-1", body=body)
    await run_image_job(message, NO_SERVICE)
    await fail_poisoned_image_job(message, NO_SERVICE)
    assert [record.getMessage() for record in caplog.records] == [
        "image-jobs message m-1 is not a job message; dropped",
        "image-jobs-poison message m-1 is not a job message; dropped",
    ]
