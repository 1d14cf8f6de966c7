"""Queue messages stay within Azure Queue Storage's 64 KiB (counted on the base64 text we send):
a result or poison note that would not fit is shortened where the text is long, and says so."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from azure.storage.queue import TextBase64EncodePolicy

from imagegen.core.views import poison_note, render_job, result_message
from imagegen.domain.jobs import Job, JobStatus, JobView, StoredImage
from imagegen.domain.messages import MAX_MESSAGE_BYTES, fitting_message, message_size, message_text
from imagegen.domain.ports import SignedLink
from imagegen.domain.requests import ImageRequest

NOW = datetime(2026, 11, 28, tzinfo=UTC)


def _wire_bytes(payload: dict[str, Any]) -> int:
    return len(TextBase64EncodePolicy().encode(message_text(payload)))


def test_message_size_is_what_the_queue_receives() -> None:
    for payload in ({"a": 1}, {"prompt": "灯台" * 100}, {"p": "\U0001f600" * 33, "n": [1, 2]}):
        assert message_size(payload) == _wire_bytes(payload)
    assert json.loads(message_text({"prompt": "灯台"})) == {"prompt": "灯台"}
    assert "灯台" in message_text({"prompt": "灯台"})  # UTF-8, not \\u escapes: a third of the size


def test_fitting_message_keeps_the_most_text_that_fits() -> None:
    text = "x" * 100_000

    def build(keep: int | None) -> dict[str, Any]:
        return {"text": text if keep is None else text[:keep]}

    fitted = fitting_message(build, len(text))
    assert message_size(fitted) <= MAX_MESSAGE_BYTES
    assert message_size({"text": text[: len(fitted["text"]) + 1]}) > MAX_MESSAGE_BYTES
    small = {"text": "short"}
    assert fitting_message(lambda keep: small, 5) is small


def _view(prompt: str, revised: str | None = None, n: int = 1) -> JobView:
    job = Job.new(ImageRequest(prompt=prompt, n=n), now=NOW, status=JobStatus.RUNNING)
    images = tuple(
        StoredImage(
            index=i,
            blob=job.image_blob_name(i, "png"),
            content_type="image/png",
            width=1024,
            height=1024,
            bytes=1000,
            revised_prompt=revised,
        )
        for i in range(n)
    )
    done = job.succeeded(images, NOW)
    links = tuple(
        SignedLink(f"https://acct.blob.core.windows.net/images/{i}.png?sig=x", NOW) for i in range(n)
    )
    return JobView(done, links)


def test_a_result_that_fits_is_the_job_json_as_it_is() -> None:
    body = render_job(_view("a lighthouse at dawn"), None)
    assert result_message(body) == body


def test_a_long_non_ascii_prompt_is_shortened_to_fit_and_marked() -> None:
    prompt = "夜明けの灯台、水彩画。" * 3000  # 33,000 characters: ~99 KB of UTF-8, ~132 KB as base64
    body = render_job(_view(prompt[:32000], n=3), None)
    message = result_message(body)
    assert message_size(message) <= MAX_MESSAGE_BYTES
    assert message["truncated"] is True
    assert message["request"]["prompt"].endswith("…")
    assert prompt.startswith(message["request"]["prompt"][:-1])
    assert len(message["request"]["prompt"]) > 10_000  # as much as fits, not nothing
    assert [image["url"] for image in message["images"]] == [image["url"] for image in body["images"]]
    assert {k: v for k, v in message.items() if k not in ("request", "images", "truncated")} == {
        k: v for k, v in body.items() if k not in ("request", "images")
    }
    assert body["request"]["prompt"] == prompt[:32000]  # the job JSON itself is untouched


def test_a_poison_note_keeps_as_much_of_the_message_as_fits() -> None:
    error = {"code": "invalid_request", "message": "unknown field 'x'", "details": {"field": "x"}}
    assert poison_note("{not json", error) == {"error": error, "message": "{not json"}
    text = '{"prompt": "' + "灯" * 60_000 + '", "x": 1}'
    note = poison_note(text, error)
    assert message_size(note) <= MAX_MESSAGE_BYTES
    assert note["message_truncated"] is True and note["error"] == error
    assert text.startswith(note["message"][:-1])


def test_long_revised_prompts_are_cut_like_the_prompt() -> None:
    text = "夜明けの灯台、水彩画。" * 3000
    body = render_job(_view(text[:32000], revised=text[:20000], n=2), None)
    message = result_message(body)
    assert message_size(message) <= MAX_MESSAGE_BYTES
    kept = {len(message["request"]["prompt"])} | {len(image["revised_prompt"]) for image in message["images"]}
    assert len(kept) == 1  # one length for every long text
    assert all(image["revised_prompt"].endswith("…") for image in message["images"])
