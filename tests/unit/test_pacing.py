"""Pacing arithmetic (imagegen.domain.pacing): windows, the waiting list, cool-down, circuit, deadline.

Pure functions over a PoolState at explicit times: every rule is checked without any clock.
"""

from __future__ import annotations

import random

import pytest

from imagegen.domain.backends import Backend
from imagegen.domain.catalog import ApiStyle
from imagegen.domain.pacing import (
    LATE_SECONDS,
    MIN_RATE_FACTOR,
    OPEN_SECONDS,
    STALE_SECONDS,
    Lane,
    NoSlot,
    Plan,
    Planner,
    PoolState,
    Queued,
    Slot,
    window_of,
)

T0 = 1_800_000_000.0
FAR = T0 + 10_000.0


def backend(label: str, rpm: int = 12, priority: int = 1) -> Backend:
    return Backend(
        endpoint=f"https://{label}.openai.azure.com",
        deployment="gpt-image-2",
        model="gpt-image-2",
        api_style=ApiStyle.V1,
        api_version="preview",
        scope="https://ai.azure.com/.default",
        rpm=rpm,
        priority=priority,
        label=label,
    )


EAST, WEST = backend("east"), backend("west")


def claim(
    planner: Planner,
    state: PoolState,
    job: str,
    now: float,
    *,
    hold: float = 3.0,
    lane: Lane = Lane.QUEUED,
    deadline: float = FAR,
) -> Plan:
    return planner.claim(state, job, lane, now, hold=hold, deadline=deadline)


@pytest.mark.parametrize(
    ("rpm", "capacity", "window"),
    [(12, 2, 11.0), (6, 1, 11.0), (9, 1, 11.0), (3, 1, 21.5), (600, 100, 11.0), (1, 1, 63.5)],
)
def test_a_window_is_rpm_over_six_per_ten_seconds_and_never_more_than_the_rpm(
    rpm: int, capacity: int, window: float
) -> None:
    got_capacity, got_window = window_of(backend("east", rpm))
    assert got_capacity == capacity and got_window == pytest.approx(window)


def test_a_burst_on_one_backend_gets_its_window_capacity_then_waits_for_the_window() -> None:
    planner, state = Planner([EAST]), PoolState()
    first, second, third = (claim(planner, state, f"job-{i}", T0) for i in range(3))
    assert first == Slot(EAST.id, T0) and second == Slot(EAST.id, T0)
    assert isinstance(third, Queued) and third.at == pytest.approx(T0 + 11.0) and third.position == 1


def test_an_n4_request_is_one_request() -> None:
    """The budget counts requests: the planner never looks at how many images a job asks for."""
    planner, state = Planner([backend("east", rpm=6)]), PoolState()
    assert isinstance(claim(planner, state, "n4", T0), Slot)
    assert isinstance(claim(planner, state, "next", T0), Queued)


def test_no_sliding_window_ever_holds_more_than_the_capacity_whatever_the_arrivals() -> None:
    """Jobs arrive at random, come back at (or late after) their estimate, and claim: the starts
    sent to each backend never exceed its capacity in any window, and every job starts."""
    rng = random.Random(7)
    planner, state = Planner([EAST, WEST]), PoolState()
    arrivals = sorted((T0 + rng.uniform(0, 60), f"job-{i}") for i in range(60))
    pending = list(arrivals)
    starts: dict[str, list[float]] = {EAST.id: [], WEST.id: []}
    for _ in range(2000):
        if not pending:
            break
        pending.sort()
        now, job = pending.pop(0)
        plan = claim(planner, state, job, now, hold=0.0)
        if isinstance(plan, Slot):
            starts[plan.backend].append(plan.at)
        else:
            assert isinstance(plan, Queued)
            pending.append((plan.at + rng.uniform(0, 3), job))  # its message shows, a little late
    assert not pending
    assert sum(map(len, starts.values())) == 60
    capacity, window = window_of(EAST)
    for times in starts.values():
        times.sort()
        for index in range(len(times) - capacity):
            assert times[index + capacity] - times[index] >= window - 1e-9


def test_queued_jobs_go_first_come_first_served_and_a_waiting_caller_goes_before_them() -> None:
    planner, state = Planner([backend("east", rpm=6)]), PoolState()
    assert isinstance(claim(planner, state, "running", T0), Slot)
    early = planner.enqueue(state, "early", Lane.QUEUED, T0 + 1)
    late = planner.enqueue(state, "late", Lane.QUEUED, T0 + 2)
    assert (early.position, late.position) == (1, 2) and early.at < late.at

    caller = claim(planner, state, "caller", T0 + 3, hold=5.0, lane=Lane.WAITING)
    assert isinstance(caller, Queued) and caller.position == 1  # ahead of both, even so not soon
    assert planner.enqueue(state, "early", Lane.QUEUED, T0 + 3).position == 2
    assert planner.enqueue(state, "late", Lane.QUEUED, T0 + 3).position == 3


def test_a_waiting_caller_whose_turn_comes_within_its_wait_gets_the_slot() -> None:
    planner, state = Planner([backend("east", rpm=6)]), PoolState()
    assert isinstance(claim(planner, state, "running", T0), Slot)
    planner.enqueue(state, "queued", Lane.QUEUED, T0)
    plan = claim(planner, state, "caller", T0 + 1, hold=60.0, lane=Lane.WAITING)
    assert isinstance(plan, Slot) and plan.backend == EAST.id and plan.at == pytest.approx(T0 + 11.0)


def test_a_job_that_came_late_for_its_turn_goes_before_those_queued_after_it() -> None:
    planner, state = Planner([backend("east", rpm=6)]), PoolState()
    claim(planner, state, "running", T0)
    first = planner.enqueue(state, "first", Lane.QUEUED, T0)
    planner.enqueue(state, "second", Lane.QUEUED, T0 + 1)
    planner.enqueue(state, "third", Lane.QUEUED, T0 + 2)
    second = claim(planner, state, "second", first.at)
    assert isinstance(second, Queued) and second.position == 2
    assert second.at == pytest.approx(first.at + 11.0)
    # "first" comes late (its message was slow): it is still before "third".
    came = claim(planner, state, "first", first.at + LATE_SECONDS + 20, hold=0.0)
    assert isinstance(came, Slot)
    assert planner.enqueue(state, "third", Lane.QUEUED, first.at + LATE_SECONDS + 20).position == 2


def test_an_entry_whose_job_never_came_blocks_nobody_for_long() -> None:
    planner, state = Planner([backend("east", rpm=6)]), PoolState()
    ghost = planner.enqueue(state, "ghost", Lane.QUEUED, T0)  # its instance died with it
    assert ghost.position == 1
    later = ghost.at + STALE_SECONDS + 1
    assert isinstance(claim(planner, state, "alive", later, hold=0.0), Slot)
    assert [entry.job for entry in state.waiting] == []


def test_a_job_whose_turn_is_past_its_deadline_gets_no_slot_and_leaves_the_line() -> None:
    planner, state = Planner([backend("east", rpm=6)]), PoolState()
    claim(planner, state, "running", T0)
    plan = claim(planner, state, "doomed", T0, deadline=T0 + 5)
    assert isinstance(plan, NoSlot) and plan.earliest == pytest.approx(T0 + 11.0)
    assert state.waiting == []


def test_a_429_cools_the_backend_down_and_the_next_job_goes_elsewhere() -> None:
    planner, state = Planner([EAST, WEST]), PoolState()
    first = claim(planner, state, "a", T0)
    assert isinstance(first, Slot)
    planner.throttled(state, first.backend, 7.5, T0 + 0.1)
    other = WEST.id if first.backend == EAST.id else EAST.id
    assert claim(planner, state, "b", T0 + 0.2) == Slot(other, T0 + 0.2)
    assert claim(planner, state, "c", T0 + 0.3) == Slot(other, T0 + 0.3)
    cooled = claim(planner, state, "d", T0 + 0.4)
    assert isinstance(cooled, Queued) and cooled.position == 1 and cooled.at == pytest.approx(T0 + 7.6)


def test_a_429_without_retry_after_still_cools_down() -> None:
    planner, state = Planner([EAST]), PoolState()
    planner.throttled(state, EAST.id, None, T0)
    plan = claim(planner, state, "a", T0)
    assert isinstance(plan, Queued) and plan.at > T0 + 3


def test_repeated_429s_lower_the_rate_which_recovers_slowly() -> None:
    planner, state = Planner([EAST]), PoolState()
    planner.throttled(state, EAST.id, 1.0, T0)
    assert state.backends[EAST.id].factor == 1.0  # once is a cool-down only
    planner.throttled(state, EAST.id, 1.0, T0 + 5)
    pacing = state.backends[EAST.id]
    assert pacing.factor == pytest.approx(0.75 * (1.0))
    assert planner.window(EAST.id, pacing, T0 + 5)[1] == pytest.approx(11.0 / 0.75, rel=0.01)
    for step in range(20):
        planner.throttled(state, EAST.id, 1.0, T0 + 6 + step)
    assert state.backends[EAST.id].factor == pytest.approx(MIN_RATE_FACTOR, abs=0.01)
    last = T0 + 25
    assert planner.rate_factor(pacing, last + 60) == pytest.approx(MIN_RATE_FACTOR + 0.1, abs=0.01)
    assert planner.rate_factor(pacing, last + 15 * 60) == 1.0


def test_failures_back_off_then_open_the_circuit_and_a_failed_probe_keeps_it_out() -> None:
    planner, state = Planner([EAST, WEST]), PoolState()
    for at in (T0, T0 + 1):
        planner.failed(state, EAST.id, at)
        assert state.backends[EAST.id].open_until == 0.0 and state.backends[EAST.id].cool_until > at
    planner.failed(state, EAST.id, T0 + 2)
    pacing = state.backends[EAST.id]
    assert pacing.open_until == T0 + 2 + OPEN_SECONDS
    # While open, everything goes west.
    for index in range(2):
        assert claim(planner, state, f"w{index}", T0 + 3) == Slot(WEST.id, T0 + 3)
    # Half-open: one probe goes east; nobody else is sent there until it answers.
    reopened = pacing.open_until + 1
    probe = claim(planner, state, "probe", reopened)
    assert probe == Slot(EAST.id, reopened)
    assert claim(planner, state, "x", reopened) == Slot(WEST.id, reopened)
    assert claim(planner, state, "y", reopened) == Slot(WEST.id, reopened)
    assert isinstance(claim(planner, state, "z", reopened, hold=0.0), Queued)
    # The probe fails: out for twice as long.
    planner.failed(state, EAST.id, reopened + 1)
    assert state.backends[EAST.id].open_until == reopened + 1 + 2 * OPEN_SECONDS
    assert planner.describe(state, reopened + 2)[0]["state"] == "circuit-open"


def test_a_probe_that_succeeds_closes_the_circuit() -> None:
    planner, state = Planner([EAST]), PoolState()
    for at in (T0, T0 + 1, T0 + 2):
        planner.failed(state, EAST.id, at)
    reopened = T0 + 2 + OPEN_SECONDS
    assert isinstance(claim(planner, state, "probe", reopened), Slot)
    assert planner.succeeded(state, EAST.id) is True
    assert planner.describe(state, reopened)[0]["state"] == "ready"
    assert planner.succeeded(state, EAST.id) is False  # nothing to write the next time


def test_the_preferred_backend_takes_work_while_it_has_budget_then_the_next_one() -> None:
    primary, spare = backend("east", rpm=12, priority=1), backend("west", rpm=12, priority=2)
    planner, state = Planner([spare, primary]), PoolState()
    got = [claim(planner, state, f"job-{i}", T0) for i in range(4)]
    assert [plan.backend for plan in got if isinstance(plan, Slot)] == [
        primary.id,
        primary.id,
        spare.id,
        spare.id,
    ]


def test_with_pacing_off_requests_go_at_once_but_a_cool_down_still_holds() -> None:
    planner, state = Planner([backend("east", rpm=6)], pacing=False), PoolState()
    assert all(isinstance(claim(planner, state, f"job-{i}", T0), Slot) for i in range(10))
    planner.throttled(state, backend("east").id, 4.0, T0)
    assert claim(planner, state, "after", T0, hold=0.0) == Queued(T0 + 4.0, 1)


def test_the_state_survives_its_json_and_garbage_starts_afresh() -> None:
    planner, state = Planner([EAST, WEST]), PoolState()
    claim(planner, state, "a", T0)
    planner.enqueue(state, "b", Lane.QUEUED, T0)
    planner.throttled(state, WEST.id, 2.0, T0)
    again = PoolState.from_json(state.to_json())
    assert again.to_json() == state.to_json()
    assert (
        PoolState.from_json({"backends": {"x": {"starts": "nope"}}, "waiting": [[1]]}).to_json()
        == PoolState().to_json()
    )


def test_a_backend_removed_from_the_settings_leaves_the_state() -> None:
    state = PoolState()
    claim(Planner([EAST, WEST]), state, "a", T0)
    Planner([EAST]).prune(state, T0)
    assert set(state.backends) == {EAST.id}


def test_health_describes_budget_cooling_and_circuit_without_secrets() -> None:
    planner, state = Planner([EAST, WEST]), PoolState()
    claim(planner, state, "a", T0)
    planner.throttled(state, WEST.id, 5.0, T0)
    described = {entry["label"]: entry for entry in planner.describe(state, T0)}
    assert described["west"]["state"] == "cooling" and described["west"]["cooling_seconds"] == 5.0
    assert described["east"]["budget"]["capacity"] == 2
    assert sum(entry["budget"]["remaining"] for entry in described.values()) == 3
    assert all("key" not in name.lower() for entry in described.values() for name in entry)


def test_a_job_in_line_that_comes_back_in_an_earlier_lane_moves_up() -> None:
    """A queued job that lost its slot (a 429) is claimed again in the retry lane: it goes first."""
    planner, state = Planner([backend("east", rpm=6)]), PoolState()
    claim(planner, state, "running", T0)
    planner.enqueue(state, "first", Lane.QUEUED, T0)
    planner.enqueue(state, "second", Lane.QUEUED, T0 + 1)
    plan = claim(planner, state, "second", T0 + 2, lane=Lane.RETRY)
    assert isinstance(plan, Queued) and plan.position == 1
    assert planner.enqueue(state, "first", Lane.QUEUED, T0 + 2).position == 2
