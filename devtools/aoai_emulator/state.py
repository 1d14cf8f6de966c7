"""Mutable emulator state: configuration, legacy operations, downloadable results, quota, request log."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from devtools.aoai_emulator.faults import FaultQueue
from devtools.aoai_emulator.images import IMAGE_DETAILS, ImageDetail
from devtools.aoai_emulator.models import ImageRequest, rules_for_model
from devtools.aoai_emulator.safety import CATEGORIES

DEFAULT_DEPLOYMENTS: dict[str, str] = {
    "gpt-image-2": "gpt-image-2",
    "gpt-image-1.5": "gpt-image-1.5",
    "gpt-image-1-mini": "gpt-image-1-mini",
    "FLUX-1.1-pro": "FLUX-1.1-pro",
    "FLUX.1-Kontext-pro": "FLUX.1-Kontext-pro",
    # Retired models: kept so that a client sees their 410 Gone (the legacy :submit API still works).
    "gpt-image-1": "gpt-image-1",
    "dall-e-3": "dall-e-3",
    "dall-e-2": "dall-e-2",
}
DEFAULT_FILTER_WORDS: tuple[str, ...] = ("forbidden",)
MAX_LOG_ENTRIES = 10_000
LEGACY_QUOTA_KEY = "legacy"  # the quota key every legacy `:submit` shares
QUOTA_WINDOW_SECONDS = 10.0  # RPM is enforced over sliding 10-second spans, as Azure evaluates it
NO_BUDGET_RETRY_SECONDS = 60.0  # retry-after when requests_per_minute is 0 (the window never opens)


class ConfigError(ValueError):
    """A configuration change the emulator refuses (the admin API answers 400)."""


@dataclass
class Config:
    latency_seconds: float = 0.5  # sync generation time per request
    legacy_queue_seconds: float = 0.5  # legacy: time an operation stays notRunning
    legacy_latency_seconds: float = 2.0  # legacy: time it then stays running
    retry_after_seconds: float = 1.0  # legacy: retry-after on submit and non-terminal polls
    result_ttl_seconds: float = 86_400.0  # result URLs (and legacy `expires`)
    hang_seconds: float = 600.0  # default sleep of a "hang" fault
    content_filter_words: list[str] = field(default_factory=lambda: list(DEFAULT_FILTER_WORDS))
    content_filter_category: str = "violence"  # hate | self_harm | sexual | violence
    filter_output_index: int | None = None  # this output index is filtered in every generation
    requests_per_minute: int | None = None  # every deployment's RPM quota (legacy: key "legacy"); None: none
    deployment_requests_per_minute: dict[str, int] = field(default_factory=dict)  # per-deployment RPM
    denied_object_ids: list[str] = field(default_factory=list)  # token oids answered PermissionDenied
    region: str = "swedencentral"  # x-ms-region header
    image_detail: ImageDetail = "smooth"  # "noise": incompressible images of realistic size (benchmarks)
    deployments: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_DEPLOYMENTS))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def rpm_for(self, key: str) -> int | None:
        """The RPM quota of a deployment (or the legacy key): its override, else `requests_per_minute`."""
        return self.deployment_requests_per_minute.get(key, self.requests_per_minute)

    def update(self, patch: object) -> None:
        """Apply a partial update, all or nothing."""
        if not isinstance(patch, dict):
            raise ConfigError("config must be a JSON object")
        names = {f.name for f in fields(self)}
        unknown = set(patch) - names
        if unknown:
            raise ConfigError(f"unknown config fields: {sorted(unknown)}")
        checked = {name: _check(name, value) for name, value in patch.items()}
        for name, value in checked.items():
            setattr(self, name, value)


_SECONDS = {
    "latency_seconds",
    "legacy_queue_seconds",
    "legacy_latency_seconds",
    "retry_after_seconds",
    "result_ttl_seconds",
    "hang_seconds",
}


def _check(name: str, value: object) -> object:
    if name in _SECONDS:
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"{name} must be a number >= 0")
        return float(value)
    if name in ("filter_output_index", "requests_per_minute"):
        if value is None:
            return None
        if not _is_count(value):
            raise ConfigError(f"{name} must be an integer >= 0 or null")
        return value
    if name == "deployment_requests_per_minute":
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and k and _is_count(v) for k, v in value.items()
        ):
            raise ConfigError(
                "deployment_requests_per_minute must be an object of deployment name -> integer >= 0"
            )
        return dict(value)
    if name in ("content_filter_words", "denied_object_ids"):
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{name} must be a list of non-empty strings")
        return list(value)
    if name == "content_filter_category":
        if value not in CATEGORIES:
            raise ConfigError(f"content_filter_category must be one of {list(CATEGORIES)}")
        return value
    if name == "image_detail":
        if value not in IMAGE_DETAILS:
            raise ConfigError(f"image_detail must be one of {list(IMAGE_DETAILS)}")
        return value
    if name == "region":
        if not isinstance(value, str):
            raise ConfigError("region must be a string")
        return value
    # deployments
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ConfigError("deployments must be an object of deployment name -> model name")
    for deployment, model in value.items():
        if rules_for_model(model) is None:
            raise ConfigError(f"deployment {deployment!r}: {model!r} is not an image model")
    return dict(value)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclass
class StoredResult:
    """Images behind result URLs; a None entry was filtered and has no URL."""

    images: list[bytes | None]
    content_type: str
    extension: str
    expires_at: float


@dataclass
class Operation:
    """A legacy `:submit` operation; its status follows from the clock (no background tasks)."""

    id: str
    created: int
    request: ImageRequest
    api_version: str
    running_at: float
    done_at: float
    prompt_filtered: bool
    filter_index: int | None
    canceled: bool = False
    result_id: str | None = None
    rendering: asyncio.Future[list[bytes | None]] | None = None

    def status(self, now: float) -> str:
        if self.canceled:
            return "canceled"
        if now < self.running_at:
            return "notRunning"
        if now < self.done_at:
            return "running"
        return "failed" if self.prompt_filtered else "succeeded"


def window_capacity(requests_per_minute: int) -> int:
    """Requests a deployment may send in any 10-second span: RPM / 6, at least 1 (0 RPM: none)."""
    return 0 if requests_per_minute == 0 else max(1, requests_per_minute // 6)


@dataclass(frozen=True)
class QuotaDecision:
    """The outcome of one request against a deployment's window (what the rate-limit headers show)."""

    limit: int  # the window's capacity (x-ratelimit-limit-requests)
    remaining: int  # requests still allowed in the window after this one (x-ratelimit-remaining-requests)
    retry_after: float | None  # None: admitted; else seconds until the oldest request leaves the window

    def headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit-requests": str(self.limit),
            "x-ratelimit-remaining-requests": str(self.remaining),
        }


class QuotaWindow:
    """Requests admitted per deployment over a sliding 10-second window (Azure's RPM enforcement).

    A request counts once whatever its `n`; a refused request (429) is not recorded. `clock` is the
    monotonic time source (tests replace it).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._admitted: dict[str, deque[float]] = {}

    def clear(self) -> None:
        self._admitted.clear()

    def admit(
        self, key: str, requests_per_minute: int | None, now: float | None = None
    ) -> QuotaDecision | None:
        """Record one request for `key`, or refuse it (nothing recorded). None: `key` has no quota."""
        if requests_per_minute is None:
            return None
        capacity = window_capacity(requests_per_minute)
        if capacity == 0:
            return QuotaDecision(limit=0, remaining=0, retry_after=NO_BUDGET_RETRY_SECONDS)
        now = self.clock() if now is None else now
        admitted = self._admitted.setdefault(key, deque())
        while admitted and admitted[0] <= now - QUOTA_WINDOW_SECONDS:
            admitted.popleft()
        if len(admitted) < capacity:
            admitted.append(now)
            return QuotaDecision(limit=capacity, remaining=capacity - len(admitted), retry_after=None)
        # Full: a slot opens when the oldest request leaves the window (after the quota was lowered, the
        # window may hold more than it now allows: then it opens when enough of them have left).
        frees_slot = admitted[len(admitted) - capacity]
        return QuotaDecision(limit=capacity, remaining=0, retry_after=frees_slot + QUOTA_WINDOW_SECONDS - now)


@dataclass
class EmulatorState:
    config: Config
    api_key: str | None
    faults: FaultQueue = field(default_factory=FaultQueue)
    operations: dict[str, Operation] = field(default_factory=dict)
    results: dict[str, StoredResult] = field(default_factory=dict)
    quota: QuotaWindow = field(default_factory=QuotaWindow)
    log: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_LOG_ENTRIES))
    counters: Counter[str] = field(default_factory=Counter)
    initial_config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.initial_config = self.config.to_json()

    def reset(self, *, config: bool) -> None:
        """Forget operations, results, quota, faults, the log and counters (and config if asked)."""
        self.faults.clear()
        self.operations.clear()
        self.results.clear()
        self.quota.clear()
        self.log.clear()
        self.counters.clear()
        if config:
            self.config = Config()
            self.config.update(self.initial_config)

    def purge_expired(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        for key in [k for k, r in self.results.items() if r.expires_at + 3600 < now]:
            del self.results[key]

    def stats(self) -> dict[str, Any]:
        by_kind: Counter[str] = Counter()
        by_status: Counter[str] = Counter()
        for entry in self.log:
            by_kind[entry["kind"]] += 1
            by_status[str(entry["status"])] += 1
        return {
            "requests": self.counters["requests"],
            "paid_generations": self.counters["paid_generations"],
            "images_generated": self.counters["images_generated"],
            "operations": len(self.operations),
            "faults_fired": self.counters["faults_fired"],
            "content_filtered": self.counters["content_filtered"],
            "throttled": self.counters["throttled"],
            "by_kind": dict(by_kind),
            "by_status": dict(by_status),
        }
