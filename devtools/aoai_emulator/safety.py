"""Content-filter verdicts and the shapes Azure reports them in."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from devtools.aoai_emulator.errors import ApiError

CATEGORIES = ("hate", "self_harm", "sexual", "violence")
PROMPT_REJECTED = (
    "Your request was rejected as a result of our safety system. Your prompt may contain text that is "
    "not allowed by our safety system."
)
LEGACY_FAILED = "Your task failed as a result of our safety system."
LEGACY_IMAGE_FILTERED = "The generated image was filtered as a result of our safety system."


def prompt_is_filtered(prompt: str, words: Iterable[str]) -> bool:
    lowered = prompt.lower()
    return any(word.lower() in lowered for word in words)


def category_results(filtered_category: str | None) -> dict[str, Any]:
    """`content_filter_results`: every category safe, except the filtered one (high severity)."""
    return {
        name: {"filtered": True, "severity": "high"}
        if name == filtered_category
        else {"filtered": False, "severity": "safe"}
        for name in CATEGORIES
    }


def prompt_filter_results() -> dict[str, Any]:
    """`prompt_filter_results` of a prompt that passed."""
    results = category_results(None)
    results["jailbreak"] = {"filtered": False, "detected": False}
    results["profanity"] = {"filtered": False, "detected": False}
    return results


def prompt_rejected(category: str) -> ApiError:
    """The sync dialects' 400 for a prompt the safety system refuses."""
    return ApiError(
        400,
        "content_policy_violation",
        PROMPT_REJECTED,
        param="prompt",
        type="invalid_request_error",
        inner_error={
            "code": "ResponsibleAIPolicyViolation",
            "content_filter_results": category_results(category),
        },
    )
