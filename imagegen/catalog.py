"""The lifecycle of every image model this app knows: data, with the page each fact comes from.

Sources (MicrosoftDocs/azure-ai-docs, read 2026-12-02; docs/models.md says which page disagrees):
- the Foundry model retirement schedule (articles/foundry/openai/includes/
  concepts-model-retirement-schedule-content.md, and the schedule as published on 2026-12-02),
- the DALL-E retirement notice (articles/foundry/openai/includes/dall-e-retirement.md, 03/18/2026),
- the retired-models table (articles/foundry/openai/includes/concepts-retired-models-content.md, 04/23/2026),
- the quotas page (articles/foundry/openai/quotas-limits.md, 02/17/2026) and the quota tier includes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

# Within this many days of its retirement a model still starts, with a warning and a note in /api/health.
RETIREMENT_WARNING_DAYS = 60


class Stage(StrEnum):
    GA = "ga"
    PREVIEW = "preview"
    RETIRED = "retired"


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


LIFECYCLES: dict[str, Lifecycle] = {
    item.model: item
    for item in (
        Lifecycle("gpt-image-2", "2026-04-21", Stage.GA, date(2027, 10, 21), None, 6),
        Lifecycle("gpt-image-1.5", "2025-12-16", Stage.GA, date(2027, 6, 16), "gpt-image-2", 9),
        Lifecycle("gpt-image-1-mini", "2025-10-06", Stage.GA, date(2027, 4, 7), "gpt-image-2", 12),
        Lifecycle("flux-1.1-pro", "1", Stage.GA, None, None, 6),
        Lifecycle("flux.1-kontext-pro", "1", Stage.GA, None, None, 6),
        # Retired: deployments answer errors and cannot be created.
        Lifecycle("gpt-image-1", "2025-04-15", Stage.RETIRED, date(2026, 10, 23), "gpt-image-2", None),
        Lifecycle("dall-e-3", "3.0", Stage.RETIRED, date(2026, 3, 4), "gpt-image-2", None),
        Lifecycle("dall-e-2", "2.0", Stage.RETIRED, date(2025, 1, 27), "gpt-image-2", None),
    )
}


def lifecycle_of(model: str) -> Lifecycle | None:
    return LIFECYCLES.get(model.lower())


def retirement_message(lifecycle: Lifecycle) -> str:
    when = lifecycle.retires.isoformat() if lifecycle.retires else "an earlier date"
    instead = f"; deploy {lifecycle.replacement} instead" if lifecycle.replacement else ""
    return f"names {lifecycle.model}, which Azure retired on {when}{instead}"
