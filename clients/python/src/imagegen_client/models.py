"""A job and its images, as the API's job JSON describes them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "canceled"})
EXTENSIONS_BY_CONTENT_TYPE = {"image/png": "png", "image/jpeg": "jpeg", "image/webp": "webp"}


@dataclass(frozen=True)
class Image:
    """One generated image: a short-lived SAS link to it and what it is."""

    url: str
    expires_at: str
    content_type: str
    width: int
    height: int
    bytes: int
    blob: str
    revised_prompt: str | None = None

    @property
    def extension(self) -> str:
        """The file extension its content type calls for (png when unknown)."""
        return EXTENSIONS_BY_CONTENT_TYPE.get(self.content_type, "png")

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Image:
        """Read one entry of a job's `images`; raises KeyError/TypeError/ValueError when malformed."""
        revised_prompt = document.get("revised_prompt")
        return cls(
            url=str(document["url"]),
            expires_at=str(document["expires_at"]),
            content_type=str(document["content_type"]),
            width=int(document["width"]),
            height=int(document["height"]),
            bytes=int(document["bytes"]),
            blob=str(document["blob"]),
            revised_prompt=str(revised_prompt) if revised_prompt is not None else None,
        )


@dataclass(frozen=True)
class Job:
    """A generation job at the moment the API answered."""

    id: str
    status: str  # queued, running, succeeded, failed or canceled
    created_at: str
    updated_at: str
    request: dict[str, Any]
    images: tuple[Image, ...] = ()
    completed_at: str | None = None
    error: dict[str, Any] | None = None  # {code, message, details} when it failed or was canceled
    urls: dict[str, str] = field(default_factory=dict)  # {get, cancel}
    model: str | None = None  # the model that drew it
    usage: dict[str, Any] | None = None  # Azure's token counts (gpt-image models), in Azure's shape
    cost: dict[str, Any] | None = None  # {amount, currency, prices_as_of}

    @property
    def done(self) -> bool:
        """True once the job has ended (succeeded, failed or canceled)."""
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Job:
        """Read the job JSON; raises KeyError/TypeError/ValueError when it is not one."""
        return cls(
            id=str(document["id"]),
            status=str(document["status"]),
            created_at=str(document.get("created_at", "")),
            updated_at=str(document.get("updated_at", "")),
            request=dict(document.get("request") or {}),
            images=tuple(Image.from_json(item) for item in document.get("images") or ()),
            completed_at=_optional_text(document.get("completed_at")),
            error=_optional_object(document.get("error")),
            urls={
                str(name): str(url) for name, url in (_optional_object(document.get("urls")) or {}).items()
            },
            model=_optional_text(document.get("model")),
            usage=_optional_object(document.get("usage")),
            cost=_optional_object(document.get("cost")),
        )


def _optional_text(value: object) -> str | None:
    return None if value is None else str(value)


def _optional_object(value: object) -> dict[str, Any] | None:
    return dict(value) if isinstance(value, Mapping) else None
