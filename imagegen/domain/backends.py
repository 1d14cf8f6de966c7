"""The pool of image backends: every Azure deployment the app may send a job to.

One setting, AZURE_OPENAI_BACKENDS (a JSON array), or, when it is absent, one backend made of the
single-deployment settings (AZURE_OPENAI_ENDPOINT, AZURE_OPENAI_DEPLOYMENT, ...). Every backend of
a pool serves the same model: a job records its model and never silently changes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from imagegen.domain.catalog import ApiStyle


@dataclass(frozen=True)
class Backend:
    """One deployment: where it is, what it serves, its quota and its place in the pool."""

    endpoint: str  # https://<account>.openai.azure.com (no trailing slash)
    deployment: str
    model: str
    api_style: ApiStyle
    api_version: str
    scope: str  # the Entra scope of its tokens
    rpm: int  # requests per minute of the deployment's quota
    priority: int = 1  # 1 is preferred; a higher number takes work only when the lower ones cannot
    label: str | None = None  # e.g. the region

    @property
    def id(self) -> str:
        """A stable name for the pacing state and health: `<label or host>/<deployment>`."""
        return f"{self.label or urlsplit(self.endpoint).hostname}/{self.deployment}"

    def describe(self) -> dict[str, object]:
        """What health shows: no secret (the app never holds a key for a backend in Azure)."""
        return {
            "id": self.id,
            "label": self.label,
            "host": urlsplit(self.endpoint).hostname,
            "deployment": self.deployment,
            "model": self.model,
            "api_style": self.api_style.value,
            "rpm": self.rpm,
            "priority": self.priority,
        }
