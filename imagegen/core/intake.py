"""Turning what a caller sent (HTTP body and headers, or a queue message) into a Submission."""

from __future__ import annotations

from typing import Any

from imagegen.core.service import Submission
from imagegen.domain.callbacks import check_callback_url
from imagegen.domain.errors import InvalidRequest
from imagegen.domain.requests import ModelRules, validate_image_request
from imagegen.domain.settings import Settings

MAX_IDEMPOTENCY_KEY_CHARS = 255


def check_idempotency_key(key: object, field: str = "Idempotency-Key") -> str | None:
    if key is None:
        return None
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_CHARS or not key.isprintable():
        raise InvalidRequest(
            f"'{field}' must be 1-{MAX_IDEMPOTENCY_KEY_CHARS} printable characters", field=field
        )
    return key


async def build_submission(
    document: dict[str, Any],
    *,
    rules: ModelRules,
    settings: Settings,
    idempotency_key: str | None,
) -> Submission:
    """Validate the body (and its callback_url against the SSRF guard) for the configured model."""
    fields = dict(document)
    callback_url = fields.pop("callback_url", None)
    request = validate_image_request(fields, rules)
    if callback_url is not None:
        if not settings.webhook_secret:
            raise InvalidRequest(
                "'callback_url' needs webhooks to be configured (WEBHOOK_SECRET)", field="callback_url"
            )
        callback_url = await check_callback_url(callback_url, allow_local=settings.allow_local_webhooks)
    return Submission(
        request=request,
        body_hash=Submission.hash_body(document),
        idempotency_key=idempotency_key,
        callback_url=callback_url,
    )
