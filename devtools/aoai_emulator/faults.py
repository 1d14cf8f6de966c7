"""Scripted faults for the next N matching calls (`POST /_emulator/faults`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, cast

FaultKind = Literal["429", "500", "503", "hang", "reset", "truncated"]
PathKind = Literal["generate", "submit", "poll", "cancel", "download"]
FAULT_KINDS: tuple[str, ...] = ("429", "500", "503", "hang", "reset", "truncated")
PATH_KINDS: tuple[str, ...] = ("generate", "submit", "poll", "cancel", "download")


class FaultSpecError(ValueError):
    """A fault description the admin API cannot use."""


@dataclass
class Fault:
    kind: FaultKind
    remaining: int
    scope: PathKind | None  # None: any API call (truncated defaults to "download")
    deployment: str | None  # only calls for this deployment (sync dialects), None: any
    retry_after: float  # 429 (and 503 when set): seconds for retry-after / retry-after-ms
    hang_seconds: float | None  # hang: sleep this long, then answer normally (None: config default)

    def matches(self, kind: PathKind, deployment: str | None) -> bool:
        if self.scope is not None and self.scope != kind:
            return False
        return self.deployment is None or self.deployment == deployment

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def parse_fault(spec: object) -> Fault:
    if not isinstance(spec, dict):
        raise FaultSpecError("each fault must be a JSON object")
    unknown = set(spec) - {"kind", "count", "scope", "deployment", "retry_after", "hang_seconds"}
    if unknown:
        raise FaultSpecError(f"unknown fault fields: {sorted(unknown)}")
    kind = str(spec.get("kind", ""))
    if kind not in FAULT_KINDS:
        raise FaultSpecError(f"kind must be one of {list(FAULT_KINDS)}")
    count = spec.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise FaultSpecError("count must be an integer >= 1")
    scope = spec.get("scope")
    if scope is None and kind == "truncated":
        scope = "download"
    if scope is not None and scope not in PATH_KINDS:
        raise FaultSpecError(f"scope must be one of {list(PATH_KINDS)} or null")
    deployment = spec.get("deployment")
    if deployment is not None and not isinstance(deployment, str):
        raise FaultSpecError("deployment must be a string or null")
    retry_after = spec.get("retry_after", 1)
    if isinstance(retry_after, bool) or not isinstance(retry_after, int | float) or retry_after < 0:
        raise FaultSpecError("retry_after must be a number of seconds >= 0")
    hang = spec.get("hang_seconds")
    if hang is not None and (isinstance(hang, bool) or not isinstance(hang, int | float) or hang < 0):
        raise FaultSpecError("hang_seconds must be a number >= 0 or null")
    return Fault(
        kind=cast(FaultKind, kind),
        remaining=count,
        scope=cast(PathKind | None, scope),
        deployment=deployment,
        retry_after=float(retry_after),
        hang_seconds=float(hang) if hang is not None else None,
    )


class FaultQueue:
    """Faults in the order they were scripted; the first matching one fires and counts down."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        self._faults.append(fault)

    def clear(self) -> None:
        self._faults.clear()

    def pending(self) -> list[dict[str, Any]]:
        return [fault.to_json() for fault in self._faults]

    def take(self, kind: PathKind, deployment: str | None) -> Fault | None:
        for fault in self._faults:
            if fault.matches(kind, deployment):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None
