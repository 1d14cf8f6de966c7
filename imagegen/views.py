"""The job JSON of DESIGN.md, shared by HTTP answers, result messages and webhooks."""

from __future__ import annotations

from typing import Any

from imagegen.jobs import JobView


def job_url(api_base: str, job_id: str) -> str:
    return f"{api_base}/images/{job_id}"


def render_job(view: JobView, api_base: str | None) -> dict[str, Any]:
    """No internal fields (operation URL, lease, hashes, callback) and no secrets."""
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
    if job.error is not None:
        body["error"] = {k: v for k, v in job.error.items() if k in ("code", "message", "details")}
    base = api_base or job.api_base
    if base:
        body["urls"] = {"get": job_url(base, job.id), "cancel": job_url(base, job.id)}
    return body
