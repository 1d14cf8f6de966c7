"""Queue messages as the app writes them: their size on the wire, and the `image-jobs` message.

One definition of the job message, written by the core and read by the queue trigger.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from imagegen.domain.jsontext import NotJson, parse_json

# Azure Queue Storage takes messages of up to 64 KiB, counted on what is sent: our base64 text.
MAX_MESSAGE_BYTES = 64 * 1024


def message_text(payload: Mapping[str, Any]) -> str:
    """A message's JSON: compact, UTF-8 rather than \\u escapes (a CJK character is 3 bytes, not 6)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def message_size(payload: Mapping[str, Any]) -> int:
    """The bytes the queue receives for `payload`: its UTF-8 JSON, base64-encoded."""
    return wire_size(message_text(payload))


def wire_size(text: str) -> int:
    return 4 * -(-len(text.encode()) // 3)


def fitting_message(build: Callable[[int | None], Mapping[str, Any]], longest: int) -> Mapping[str, Any]:
    """`build(None)` when it fits in a queue message; otherwise `build(keep)` with the largest `keep`
    (0..longest: how many characters of the long texts to keep) that fits."""
    whole = build(None)
    if message_size(whole) <= MAX_MESSAGE_BYTES:
        return whole
    low, high = 0, longest
    while low < high:
        middle = (low + high + 1) // 2
        if message_size(build(middle)) <= MAX_MESSAGE_BYTES:
            low = middle
        else:
            high = middle - 1
    return build(low)


@dataclass(frozen=True)
class JobMessage:
    """An `image-jobs` message: the job id, nothing else. A worker always reads the stored record
    and leases it If-Match with the ETag it read, so a message can never change a record (anything
    else a message carries, a record included, is ignored)."""

    job_id: str

    def to_json(self) -> dict[str, Any]:
        return {"job_id": self.job_id}

    @classmethod
    def parse(cls, body: bytes | str) -> JobMessage | None:
        """The message, or None when it is not a job message."""
        try:
            document = parse_json(body)
        except NotJson:
            return None
        if not isinstance(document, dict) or not isinstance(document.get("job_id"), str):
            return None
        return cls(str(document["job_id"]))
