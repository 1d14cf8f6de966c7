"""The job JSON, shared by HTTP answers, result messages and webhooks."""

from __future__ import annotations

from typing import Any

from imagegen.domain.jobs import JobStatus, JobView
from imagegen.domain.logtext import ELLIPSIS
from imagegen.domain.messages import fitting_message


def job_url(api_base: str, job_id: str) -> str:
    return f"{api_base}/images/{job_id}"


def render_job(view: JobView, api_base: str) -> dict[str, Any]:
    """No internal fields (lease, hashes, callback) and no secrets."""
    job = view.job
    record = job.to_record()
    body: dict[str, Any] = {
        "id": job.id,
        "status": job.status.value,
        "created_at": record["created_at"],
        "updated_at": record["updated_at"],
        "request": record["request"],
        "images": [
            {
                "url": link.url,
                "expires_at": link.expires_at.isoformat().replace("+00:00", "Z"),
                "content_type": image.content_type,
                "width": image.width,
                "height": image.height,
                "bytes": image.bytes,
                "blob": image.blob,
                **({"revised_prompt": image.revised_prompt} if image.revised_prompt else {}),
            }
            for image, link in zip(job.images, view.links, strict=True)
        ],
    }
    if "completed_at" in record:
        body["completed_at"] = record["completed_at"]
    # What drew it, Azure's token counts and the cost: absent when unknown (FLUX counts no tokens).
    body.update({name: record[name] for name in ("model", "usage", "cost") if name in record})
    if job.status is JobStatus.QUEUED:  # waiting for a backend's budget: when, and how many go first
        body.update({name: record[name] for name in ("estimated_start", "queue_position") if name in record})
    if job.error is not None:
        body["error"] = {k: v for k, v in job.error.items() if k in ("code", "message", "details")}
    body["urls"] = {"get": job_url(api_base, job.id), "cancel": job_url(api_base, job.id)}
    return body


def _cut(text: str, keep: int | None) -> str:
    return text if keep is None or len(text) <= keep else text[:keep] + ELLIPSIS


def result_message(body: dict[str, Any]) -> dict[str, Any]:
    """The job JSON as an `image-results` message. A long prompt (up to 32,000 characters, three
    bytes each in many scripts) can make it larger than a queue message may be: then the prompt and
    revised prompts are cut (ending in "…") to fit and `"truncated": true` says so; GET has them whole."""
    revised = [image.get("revised_prompt") or "" for image in body["images"]]
    longest = max([len(body["request"]["prompt"]), *map(len, revised)])

    def build(keep: int | None) -> dict[str, Any]:
        if keep is None:
            return body
        request = {**body["request"], "prompt": _cut(body["request"]["prompt"], keep)}
        images = [
            {**image, "revised_prompt": _cut(image["revised_prompt"], keep)}
            if "revised_prompt" in image
            else image
            for image in body["images"]
        ]
        return {**body, "request": request, "images": images, "truncated": True}

    return dict(fitting_message(build, longest))


def poison_note(text: str, error: dict[str, Any]) -> dict[str, Any]:
    """What goes to `image-requests-poison`: the reason and the message as received (cut to fit,
    with `"message_truncated": true`, when it is too long to travel whole)."""

    def build(keep: int | None) -> dict[str, Any]:
        note: dict[str, Any] = {"error": error, "message": _cut(text, keep)}
        if keep is not None:
            note["message_truncated"] = True
        return note

    return dict(fitting_message(build, len(text)))
