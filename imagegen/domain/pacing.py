"""Pacing arithmetic: when each backend may take the next request, and who goes next.

Pure functions over one small document (`PoolState`) that every instance shares through the
storage account (imagegen.core.pacer reads and writes it with ETags). Times are epoch seconds.

- Azure enforces a deployment's requests-per-minute over short windows (10 s, RPM/6 requests per
  window), not per minute. A backend here takes at most `capacity` requests in any sliding window
  of `window` seconds (a little longer than Azure's, against clock skew and network jitter): the
  window rule holds whatever order and lateness jobs arrive in, so the rate is kept even when the
  waiting list below is only approximately followed.
- The waiting list orders jobs: waiting callers (an open HTTP request) first, then jobs that lost a
  slot (a 429, a late message), then queued jobs, first come first served. A job's estimated start
  is its place in the list played out over every backend's windows; a job may start when its
  estimate is within `hold` seconds, otherwise it waits in the queue until its estimate.
- A 429 cools a backend down for its retry-after; a second one within a minute also lowers its rate
  (someone else spends the same quota), which recovers slowly. 5xx, connection errors and timeouts
  back off, and after a few in a row open the backend's circuit; when it half-opens one probe may
  go, and a failed probe keeps it out for twice as long.
- Nothing is ever locked: an instance that dies holds nothing; its entries expire.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from imagegen.domain.backends import Backend

AZURE_WINDOW_SECONDS = 10.0  # Azure evaluates RPM over 1 or 10 second windows
WINDOW_MARGIN = 1.05  # our windows are 5 % longer than Azure's
WINDOW_SLACK_SECONDS = 0.5  # and half a second more: a first request's TLS handshake and token
LATE_SECONDS = 2.0  # a job whose estimate passed longer ago than this has lost its turn
STALE_SECONDS = 60.0  # a waiting entry whose job has not come this long after its estimate is dropped
MIN_RATE_FACTOR = 0.25
RATE_CUT = 0.75  # a repeated 429 keeps this share of the rate
REPEATED_THROTTLE_SECONDS = 60.0
RATE_RECOVERY_PER_MINUTE = 0.1  # share of the full rate won back per minute without a 429
FAILURES_TO_OPEN = 3
OPEN_SECONDS = 30.0
MAX_OPEN_SECONDS = 600.0
FAILURE_BACKOFF_SECONDS = (0.5, 1.0, 2.0)
DEFAULT_RETRY_AFTER_SECONDS = 10.0
MAX_RETRY_AFTER_SECONDS = 300.0
PREFERENCE_SECONDS = 3.0  # a less preferred backend is used when the preferred ones are further off


class Lane(IntEnum):
    """Who goes first: a smaller lane, then the earlier arrival."""

    WAITING = 0  # a caller holds an HTTP request open for it
    RETRY = 1  # it had a slot and lost it (429, failover, late)
    QUEUED = 2  # respond-async and queue-submitted jobs


@dataclass
class BackendPacing:
    starts: list[float] = field(default_factory=list)  # requests sent within the last window
    cool_until: float = 0.0
    factor: float = 1.0  # share of the full rate, lowered by repeated 429s
    last_throttle: float | None = None
    throttles: int = 0
    failures: int = 0  # in a row
    open_until: float = 0.0  # circuit: 0 closed; else open until then, half-open after
    open_seconds: float = 0.0
    probe_until: float = 0.0  # a half-open probe is out until then

    def to_json(self) -> dict[str, Any]:
        return {
            "starts": [round(t, 3) for t in self.starts],
            "cool_until": self.cool_until,
            "factor": round(self.factor, 4),
            "last_throttle": self.last_throttle,
            "throttles": self.throttles,
            "failures": self.failures,
            "open_until": self.open_until,
            "open_seconds": self.open_seconds,
            "probe_until": self.probe_until,
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> BackendPacing:
        last = document.get("last_throttle")
        return cls(
            starts=[float(t) for t in document.get("starts", [])],
            cool_until=float(document.get("cool_until", 0.0)),
            factor=min(1.0, max(MIN_RATE_FACTOR, float(document.get("factor", 1.0)))),
            last_throttle=float(last) if last is not None else None,
            throttles=int(document.get("throttles", 0)),
            failures=int(document.get("failures", 0)),
            open_until=float(document.get("open_until", 0.0)),
            open_seconds=float(document.get("open_seconds", 0.0)),
            probe_until=float(document.get("probe_until", 0.0)),
        )


@dataclass
class WaitingEntry:
    job: str
    lane: Lane
    since: float
    eta: float

    def key(self) -> tuple[int, float]:
        return (int(self.lane), self.since)


@dataclass
class PoolState:
    backends: dict[str, BackendPacing] = field(default_factory=dict)
    waiting: list[WaitingEntry] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "backends": {name: state.to_json() for name, state in self.backends.items()},
            "waiting": [[e.job, int(e.lane), round(e.since, 3), round(e.eta, 3)] for e in self.waiting],
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> PoolState:
        """A stored state; one that does not read (written by something else) starts afresh."""
        try:
            return cls(
                backends={
                    str(name): BackendPacing.from_json(state)
                    for name, state in dict(document.get("backends", {})).items()
                },
                waiting=[
                    WaitingEntry(str(job), Lane(int(lane)), float(since), float(eta))
                    for job, lane, since, eta in document.get("waiting", [])
                ],
            )
        except (TypeError, ValueError, AttributeError, OverflowError):
            return cls()


@dataclass(frozen=True)
class Slot:
    """Send the job to `backend` at `at` (within the hold from now)."""

    backend: str
    at: float


@dataclass(frozen=True)
class Queued:
    """Not yet: the job waits in the queue until about `at`; `position` 1 is next."""

    at: float
    position: int


@dataclass(frozen=True)
class NoSlot:
    """The job cannot start before its deadline; it ends as upstream_throttled."""

    earliest: float


Plan = Slot | Queued | NoSlot


def _fits(starts: list[float], start: float, capacity: int, window: float) -> float:
    """The first moment from `start` at which one more request keeps every window of `window`
    seconds within `capacity` requests, given the earlier `starts` (sorted)."""
    if len(starts) < capacity:
        return start
    return max(start, starts[-capacity] + window)


def window_of(backend: Backend) -> tuple[int, float]:
    """(capacity, window seconds) at the full rate: RPM/6 requests per 10 s, at least one, and never
    more than the RPM over a minute (a 3 RPM deployment takes one request per 20 s)."""
    capacity = max(1, backend.rpm // 6)
    window = max(AZURE_WINDOW_SECONDS, 60.0 * capacity / max(backend.rpm, 1)) * WINDOW_MARGIN
    window += WINDOW_SLACK_SECONDS
    return capacity, window


class Planner:
    """The rules over a PoolState, for one configured pool. `pacing=False` spends no budget ahead
    (requests go at once; only cool-downs and circuits hold them back): the baseline to measure."""

    def __init__(self, backends: Sequence[Backend], *, pacing: bool = True) -> None:
        if not backends:
            raise ValueError("a pool needs at least one backend")
        self.backends = {backend.id: backend for backend in backends}
        self.pacing = pacing

    # --- one backend ---------------------------------------------------------------------------

    def _state(self, state: PoolState, backend_id: str) -> BackendPacing:
        return state.backends.setdefault(backend_id, BackendPacing())

    def rate_factor(self, pacing: BackendPacing, now: float) -> float:
        if pacing.last_throttle is None:
            return pacing.factor
        recovered = RATE_RECOVERY_PER_MINUTE * max(0.0, now - pacing.last_throttle) / 60.0
        return min(1.0, pacing.factor + recovered)

    def window(self, backend_id: str, pacing: BackendPacing, now: float) -> tuple[int, float]:
        capacity, window = window_of(self.backends[backend_id])
        return capacity, window / self.rate_factor(pacing, now)

    def available_from(self, pacing: BackendPacing, now: float) -> float:
        """When cool-downs and the circuit let a request go (not counting the window)."""
        start = max(now, pacing.cool_until)
        if pacing.open_until:
            if now < pacing.open_until:
                start = max(start, pacing.open_until)
            elif pacing.probe_until > now:  # half-open and its probe is out
                start = max(start, pacing.probe_until)
        return start

    def _earliest(self, backend_id: str, pacing: BackendPacing, starts: list[float], now: float) -> float:
        """The first moment a request fits `starts` (sorted) and the backend's availability."""
        start = self.available_from(pacing, now)
        if not self.pacing:
            return start
        capacity, window = self.window(backend_id, pacing, now)
        return _fits(starts, start, capacity, window)

    # --- the pool --------------------------------------------------------------------------------

    def prune(self, state: PoolState, now: float) -> None:
        for backend_id in list(state.backends):
            if backend_id not in self.backends:
                del state.backends[backend_id]
        for backend_id in self.backends:
            pacing = self._state(state, backend_id)
            _, window = self.window(backend_id, pacing, now)
            pacing.starts = sorted(t for t in pacing.starts if t > now - window)
        state.waiting = [e for e in state.waiting if e.eta > now - STALE_SECONDS]
        state.waiting.sort(key=WaitingEntry.key)

    def _play_out(self, state: PoolState, count: int, now: float) -> list[tuple[float, str]]:
        """The next `count` starts across the pool, earliest first (ties: the preferred backend)."""
        lanes = []
        for backend_id in self.backends:
            pacing = self._state(state, backend_id)
            capacity, window = self.window(backend_id, pacing, now)
            if not self.pacing:
                capacity, window = 1, 0.0
            lanes.append(
                (backend_id, list(pacing.starts), self.available_from(pacing, now), capacity, window)
            )
        planned: list[tuple[float, str]] = []
        for _ in range(count):
            at, _priority, index = min(
                (_fits(starts, start, capacity, window), self.backends[b].priority, i)
                for i, (b, starts, start, capacity, window) in enumerate(lanes)
            )
            lanes[index][1].append(at)
            planned.append((at, lanes[index][0]))
        return planned

    def _choose(self, state: PoolState, now: float, hold: float) -> Slot:
        """The slot to take now: the preferred backend among those free within a few seconds, else
        the earliest anywhere."""
        options = [
            (self._earliest(b, self._state(state, b), self._state(state, b).starts, now), b)
            for b in self.backends
        ]
        within = now + min(hold, PREFERENCE_SECONDS)
        soon = [(self.backends[b].priority, at, b) for at, b in options if at <= within]
        if soon:
            _, at, backend_id = min(soon)
        else:
            at, backend_id = min(options, key=lambda o: (o[0], self.backends[o[1]].priority))
        return Slot(backend_id, at)

    def enqueue(self, state: PoolState, job_id: str, lane: Lane, now: float) -> Queued:
        """Put a job in line (once) and estimate its start."""
        self.prune(state, now)
        entry = self._entry(state, job_id, lane, now)
        index = state.waiting.index(entry)
        at = self._play_out(state, index + 1, now)[-1][0]
        entry.eta = at
        return Queued(at, index + 1)

    def claim(
        self, state: PoolState, job_id: str, lane: Lane, now: float, *, hold: float, deadline: float
    ) -> Plan:
        """A slot for the job if its turn comes within `hold` seconds; else its place in line."""
        self.prune(state, now)
        entry = self._entry(state, job_id, lane, now)
        if entry.eta < now - LATE_SECONDS and entry.lane > Lane.RETRY:
            entry.lane = Lane.RETRY  # its message came late: it goes before those who came after it
            state.waiting.sort(key=WaitingEntry.key)
        index = state.waiting.index(entry)
        at = self._play_out(state, index + 1, now)[-1][0]
        if at > deadline:
            state.waiting.remove(entry)
            return NoSlot(at)
        if at > now + hold:
            entry.eta = at
            return Queued(at, index + 1)
        slot = self._choose(state, now, hold)
        state.waiting.remove(entry)
        pacing = self._state(state, slot.backend)
        pacing.starts = sorted([*pacing.starts, slot.at])
        if pacing.open_until and now >= pacing.open_until:
            pacing.probe_until = slot.at + OPEN_SECONDS  # the half-open probe; others wait for it
        return slot

    def release(self, state: PoolState, job_id: str) -> None:
        state.waiting = [e for e in state.waiting if e.job != job_id]

    def _entry(self, state: PoolState, job_id: str, lane: Lane, now: float) -> WaitingEntry:
        for entry in state.waiting:
            if entry.job == job_id:
                if lane < entry.lane:
                    entry.lane = lane
                    state.waiting.sort(key=WaitingEntry.key)
                return entry
        entry = WaitingEntry(job_id, lane, now, now)
        state.waiting.append(entry)
        state.waiting.sort(key=WaitingEntry.key)
        return entry

    # --- what the backends answered ---------------------------------------------------------------

    def throttled(self, state: PoolState, backend_id: str, retry_after: float | None, now: float) -> None:
        """A 429: cool the backend down; a repeated one also lowers its rate."""
        if backend_id not in self.backends:
            return
        pacing = self._state(state, backend_id)
        wait = retry_after if retry_after is not None and math.isfinite(retry_after) else None
        if wait is not None:
            wait = min(wait, MAX_RETRY_AFTER_SECONDS)  # a hostile or broken answer cools no longer
        pacing.cool_until = max(pacing.cool_until, now + (wait or DEFAULT_RETRY_AFTER_SECONDS))
        factor = self.rate_factor(pacing, now)
        repeated = pacing.last_throttle is not None and now - pacing.last_throttle < REPEATED_THROTTLE_SECONDS
        pacing.factor = max(MIN_RATE_FACTOR, factor * RATE_CUT) if repeated else factor
        pacing.last_throttle = now
        pacing.throttles += 1

    def failed(self, state: PoolState, backend_id: str, now: float) -> None:
        """A 5xx, a connection error or a timeout: back off; a few in a row open the circuit."""
        if backend_id not in self.backends:
            return
        pacing = self._state(state, backend_id)
        pacing.failures += 1
        if pacing.open_until and now >= pacing.open_until:  # the half-open probe failed: stay out
            pacing.open_seconds = min(MAX_OPEN_SECONDS, max(OPEN_SECONDS, pacing.open_seconds * 2))
            pacing.open_until = now + pacing.open_seconds
            pacing.probe_until = 0.0
        elif pacing.failures >= FAILURES_TO_OPEN:
            pacing.open_seconds = OPEN_SECONDS
            pacing.open_until = now + OPEN_SECONDS
        else:
            backoff = FAILURE_BACKOFF_SECONDS[min(pacing.failures, len(FAILURE_BACKOFF_SECONDS)) - 1]
            pacing.cool_until = max(pacing.cool_until, now + backoff)

    def succeeded(self, state: PoolState, backend_id: str) -> bool:
        """An answer: the circuit closes. True when that changed something worth writing."""
        pacing = state.backends.get(backend_id)
        if pacing is None or not (pacing.failures or pacing.open_until or pacing.probe_until):
            return False
        pacing.failures, pacing.open_until, pacing.open_seconds, pacing.probe_until = 0, 0.0, 0.0, 0.0
        return True

    # --- health ------------------------------------------------------------------------------------

    def describe(self, state: PoolState, now: float) -> list[dict[str, Any]]:
        self.prune(state, now)
        described = []
        for backend_id, backend in self.backends.items():
            pacing = self._state(state, backend_id)
            capacity, window = self.window(backend_id, pacing, now)
            if pacing.open_until and now < pacing.open_until:
                condition = "circuit-open"
            elif pacing.open_until:
                condition = "half-open"
            elif pacing.cool_until > now:
                condition = "cooling"
            else:
                condition = "ready"
            described.append(
                {
                    **backend.describe(),
                    "state": condition,
                    "budget": {
                        "capacity": capacity,
                        "window_seconds": round(window, 2),
                        "remaining": max(0, capacity - len(pacing.starts)) if self.pacing else None,
                        "rate_factor": round(self.rate_factor(pacing, now), 3),
                    },
                    "cooling_seconds": round(max(0.0, pacing.cool_until - now), 1),
                    "circuit_open_seconds": round(max(0.0, pacing.open_until - now), 1),
                    "throttles": pacing.throttles,
                    "failures_in_a_row": pacing.failures,
                }
            )
        return described
