"""The one model catalog: every image model this app knows, as data, with the page each fact comes from.

For each model: its family, the dialects and api-versions it is served on (the first is the one
Microsoft documents for it, and the default), the Entra scope its docs use, its lifecycle (stage,
version, retirement date, replacement), its request rules (imagegen.domain.requests), whether it takes
edits and streams, how it answers (base64 or a URL to download), and its documented default quota.
Settings, validation, the upstream request, the OpenAPI document and connector, the playground and
health all read it.

Sources (MicrosoftDocs/azure-ai-docs, read 2026-12-02; docs/models.md gives each page's date and
says which page disagrees with which):
- the image how-to (articles/foundry/openai/how-to/dall-e.md) and the preview inference reference,
- the FLUX article (articles/foundry/foundry-models/includes/use-foundry-models-flux.md),
- the Foundry model retirement schedule (articles/foundry/openai/includes/
  concepts-model-retirement-schedule-content.md, and the schedule as published on 2026-12-02),
- the DALL-E retirement notice and the retired-models table,
- the quotas page (articles/foundry/openai/quotas-limits.md) and the quota tier includes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Literal

from imagegen.domain.requests import (
    FLUX_1_1_PRO,
    FLUX_1_KONTEXT_PRO,
    GPT_IMAGE_1_5,
    GPT_IMAGE_1_MINI,
    GPT_IMAGE_2,
    ModelRules,
)

# Within this many days of its retirement a model still starts, with a warning and a note in /api/health.
RETIREMENT_WARNING_DAYS = 60

# The image how-to's scope for gpt-image models; the FLUX article's scope.
AI_AZURE_SCOPE = "https://ai.azure.com/.default"
COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"


class ApiStyle(StrEnum):
    """How the app calls a deployment: `v1` (/openai/v1/images/…, the deployment as `model`) or
    `deployments` (/openai/deployments/{deployment}/images/…)."""

    V1 = "v1"
    DEPLOYMENTS = "deployments"


class Family(StrEnum):
    GPT_IMAGE = "gpt-image"
    FLUX = "flux"
    DALL_E = "dall-e"


class Stage(StrEnum):
    GA = "ga"
    PREVIEW = "preview"
    RETIRED = "retired"


@dataclass(frozen=True)
class Dialect:
    style: ApiStyle
    api_version: str


@dataclass(frozen=True)
class Lifecycle:
    model: str
    version: str
    stage: Stage
    retires: date | None  # "no earlier than"; None when Azure lists no date
    replacement: str | None
    default_rpm: int | None  # documented default quota, requests per minute (Global Standard, tier 1)

    def is_retired(self, today: date) -> bool:
        return self.stage is Stage.RETIRED or (self.retires is not None and today >= self.retires)

    def days_left(self, today: date) -> int | None:
        return None if self.retires is None else (self.retires - today).days

    def retires_soon(self, today: date) -> bool:
        left = self.days_left(today)
        return left is not None and 0 < left <= RETIREMENT_WARNING_DAYS

    def to_json(self) -> dict[str, object]:
        return {
            "model": self.model,
            "version": self.version,
            "stage": self.stage.value,
            "retires": self.retires.isoformat() if self.retires else None,
            "replacement": self.replacement,
        }


@dataclass(frozen=True)
class CatalogModel:
    """One model: what Azure calls it, how it is served, what it takes, how long it lives."""

    name: str  # as Azure spells the model (`FLUX.1-Kontext-pro`); lookups ignore case
    family: Family
    lifecycle: Lifecycle
    rules: ModelRules | None = None  # None: retired, nothing to validate against
    dialects: tuple[Dialect, ...] = ()  # the first is Microsoft's documented one, the default
    scope: str = AI_AZURE_SCOPE
    answers: Literal["b64_json", "url"] = "b64_json"
    supports_edits: bool = False
    supports_streaming: bool = False

    @property
    def key(self) -> str:
        return self.name.lower()

    @property
    def default_dialect(self) -> Dialect:
        return self.dialects[0]

    def dialect(self, style: ApiStyle) -> Dialect | None:
        return next((d for d in self.dialects if d.style is style), None)


_GPT_IMAGE_DIALECTS = (
    Dialect(ApiStyle.V1, "preview"),  # the how-to's path
    Dialect(ApiStyle.DEPLOYMENTS, "2025-04-01-preview"),
)
_FLUX_DIALECTS = (Dialect(ApiStyle.DEPLOYMENTS, "preview"),)  # the FLUX article's Image API path


def _gpt_image(
    rules: ModelRules, version: str, retires: date, replacement: str | None, rpm: int
) -> CatalogModel:
    """A gpt-image model Azure serves: v1 by default, edits and streaming, base64 answers."""
    lifecycle = Lifecycle(rules.name, version, Stage.GA, retires, replacement, rpm)
    return CatalogModel(
        rules.name,
        Family.GPT_IMAGE,
        lifecycle,
        rules,
        _GPT_IMAGE_DIALECTS,
        supports_edits=True,
        supports_streaming=True,
    )


def _flux(rules: ModelRules, *, rpm: int, supports_edits: bool) -> CatalogModel:
    """A FLUX model through the Image API: the deployments path, the FLUX article's scope, URL answers."""
    lifecycle = Lifecycle(rules.name, "1", Stage.GA, None, None, rpm)
    return CatalogModel(
        rules.name,
        Family.FLUX,
        lifecycle,
        rules,
        _FLUX_DIALECTS,
        scope=COGNITIVE_SERVICES_SCOPE,
        answers="url",
        supports_edits=supports_edits,
    )


def _retired(name: str, family: Family, version: str, retired: date) -> CatalogModel:
    """Retired: deployments answer errors (410) and cannot be created; gpt-image-2 replaces them."""
    return CatalogModel(name, family, Lifecycle(name, version, Stage.RETIRED, retired, "gpt-image-2", None))


CATALOG: dict[str, CatalogModel] = {
    entry.key: entry
    for entry in (
        _gpt_image(GPT_IMAGE_2, "2026-04-21", date(2027, 10, 21), None, 6),
        _gpt_image(GPT_IMAGE_1_5, "2025-12-16", date(2027, 6, 16), "gpt-image-2", 9),
        _gpt_image(GPT_IMAGE_1_MINI, "2025-10-06", date(2027, 4, 7), "gpt-image-2", 12),
        _flux(FLUX_1_1_PRO, rpm=6, supports_edits=False),
        _flux(FLUX_1_KONTEXT_PRO, rpm=6, supports_edits=True),
        _retired("gpt-image-1", Family.GPT_IMAGE, "2025-04-15", date(2026, 10, 23)),
        _retired("dall-e-3", Family.DALL_E, "3.0", date(2026, 3, 4)),
        _retired("dall-e-2", Family.DALL_E, "2.0", date(2025, 1, 27)),
    )
}


def model_entry(model: str) -> CatalogModel | None:
    return CATALOG.get(model.lower())


def rules_for_model(model: str) -> ModelRules:
    """The rules of a model Azure serves (by its model name, as deployed, any case)."""
    entry = model_entry(model)
    if entry is None or entry.rules is None:
        raise ValueError(f"unknown image model {model!r}")
    return entry.rules


def retirement_message(lifecycle: Lifecycle) -> str:
    when = lifecycle.retires.isoformat() if lifecycle.retires else "an earlier date"
    instead = f"; deploy {lifecycle.replacement} instead" if lifecycle.replacement else ""
    return f"names {lifecycle.model}, which Azure retired on {when}{instead}"
