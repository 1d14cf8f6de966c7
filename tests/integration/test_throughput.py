"""Throughput under quota, end to end: bursts beyond a deployment's quota, a pool of two regions,
two dev hosts sharing one budget, a backend answering 500s, and the deadline.

The Azure OpenAI emulator enforces quota as Azure does (requests per 10-second window, RPM/6); the
app's pool (AZURE_OPENAI_BACKENDS, written by the stack) carries the same RPM per backend.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import pytest
import requests

from devtools.stack import LocalStack
from tests.integration.conftest import StackFactory
from tests.integration.test_function_app import Api, _api
from tests.integration.waiting import wait_until

RPM = 30  # 5 requests per 10-second window per deployment
WINDOW_CAPACITY = RPM // 6
FAST_DEVHOST = {"DEVHOST_QUEUE_LEASE_SECONDS": "3"}
SETTINGS = {"MAX_WAIT_SECONDS": "30"}
REGIONS = ("swedencentral", "eastus2")


def quota_stack(stacks: StackFactory, *, regions: tuple[str, ...] = (), **settings: str) -> LocalStack:
    return stacks(
        regions=regions,
        backend_rpm=RPM,
        aoai_args=("--requests-per-minute", str(RPM)),
        setting_overrides={**SETTINGS, **settings},
        devhost_env=FAST_DEVHOST,
    )


def emulator(stack: LocalStack, index: int, method: str, path: str, body: Any = None) -> Any:
    response = requests.request(
        method,
        f"{stack.regions[index].admin_url}/{path}",
        json=body,
        timeout=10,
        verify=str(stack.tls.ca_cert),
    )
    response.raise_for_status()
    return response.json()


def reset(stack: LocalStack) -> Api:
    api = _api(stack)
    for index in range(1, len(stack.regions)):
        emulator(stack, index, "POST", "reset", {"config": True})
    return api


def burst(api: Api, count: int, *, base: str | None = None) -> list[str]:
    target = base or api.base
    ids = []
    for index in range(count):
        response = requests.post(
            f"{target}/images",
            json={"prompt": f"burst {index}"},
            headers={**api.key_headers, "Prefer": "respond-async"},
            timeout=30,
        )
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    return ids


def finished(api: Api, ids: Iterable[str], timeout: float) -> dict[str, dict[str, Any]]:
    def bodies() -> dict[str, dict[str, Any]] | None:
        found = {job_id: api.get(job_id).json() for job_id in ids}
        done = all(body["status"] in ("succeeded", "failed", "canceled") for body in found.values())
        return found if done else None

    result: dict[str, dict[str, Any]] = wait_until(bodies, timeout=timeout, interval=0.5)
    return result


def generation_times(stack: LocalStack, index: int) -> list[float]:
    entries = emulator(stack, index, "GET", "requests")["requests"]
    return sorted(
        datetime.fromisoformat(entry["time"]).timestamp()
        for entry in entries
        if entry["kind"] == "generate" and entry["status"] == 200
    )


def most_in_any_window(times: list[float], seconds: float = 10.0) -> int:
    return max((sum(1 for t in times if start <= t < start + seconds) for start in times), default=0)


def test_a_burst_beyond_one_backends_quota_all_succeeds_without_429s(stacks: StackFactory) -> None:
    stack = quota_stack(stacks)
    api = reset(stack)
    started = time.monotonic()
    ids = burst(api, 12)

    # While they wait, the job JSON says where each stands.
    last = api.get(ids[-1]).json()
    assert last["status"] == "queued" and last["queue_position"] >= 2 and "estimated_start" in last
    # A waiting POST that cannot start within its wait is answered at once, with when to come back.
    asked = time.monotonic()
    waiting = api.post({"prompt": "in a hurry"}, headers={"Prefer": "wait=2"})
    assert time.monotonic() - asked < 2.5
    assert waiting.status_code == 202 and int(waiting.headers["Retry-After"]) > 2
    ids.append(waiting.json()["id"])

    outcomes = finished(api, ids, timeout=90)
    elapsed = time.monotonic() - started
    assert {body["status"] for body in outcomes.values()} == {"succeeded"}
    stats = api.emulator("GET", "stats")
    assert stats["paid_generations"] == len(ids) and stats["throttled"] == 0
    assert most_in_any_window(generation_times(stack, 0)) <= WINDOW_CAPACITY
    assert elapsed >= 2 * 10  # 13 jobs at 5 per window: paced, not all at once


def test_two_backends_share_a_burst(stacks: StackFactory) -> None:
    stack = quota_stack(stacks, regions=REGIONS)
    api = reset(stack)
    ids = burst(api, 10)
    outcomes = finished(api, ids, timeout=60)
    assert {body["status"] for body in outcomes.values()} == {"succeeded"}
    per_region = [emulator(stack, index, "GET", "stats") for index in range(2)]
    assert [stats["throttled"] for stats in per_region] == [0, 0]
    assert sum(stats["paid_generations"] for stats in per_region) == 10
    assert all(stats["paid_generations"] >= 3 for stats in per_region)  # both regions took work

    health = requests.get(f"{api.base}/health", timeout=10).json()
    assert [backend["label"] for backend in health["backends"]] == list(REGIONS)
    assert {backend["state"] for backend in health["backends"]} == {"ready"}
    assert all("key" not in name for backend in health["backends"] for name in backend)


def test_two_dev_hosts_share_one_budget(stacks: StackFactory) -> None:
    stack = quota_stack(stacks)
    api = reset(stack)
    other = stack.start_devhost("devhost-2")  # a second instance of the app on the same storage
    ids = burst(api, 6) + burst(api, 6, base=f"{other}/api")
    outcomes = finished(api, ids, timeout=90)
    assert {body["status"] for body in outcomes.values()} == {"succeeded"}
    stats = api.emulator("GET", "stats")
    assert stats["paid_generations"] == 12
    assert stats["throttled"] <= 1  # clocks and networks jitter; the budget is one
    assert most_in_any_window(generation_times(stack, 0)) <= WINDOW_CAPACITY


def test_a_backend_answering_500s_is_routed_around(stacks: StackFactory) -> None:
    stack = quota_stack(stacks, regions=REGIONS)
    api = reset(stack)
    emulator(stack, 0, "POST", "faults", {"kind": "500", "count": 50, "scope": "generate"})
    ids = burst(api, 6)
    outcomes = finished(api, ids, timeout=60)
    assert {body["status"] for body in outcomes.values()} == {"succeeded"}
    assert emulator(stack, 1, "GET", "stats")["paid_generations"] == 6
    assert emulator(stack, 0, "GET", "stats")["paid_generations"] == 0
    health = {b["label"]: b for b in requests.get(f"{api.base}/health", timeout=10).json()["backends"]}
    assert health[REGIONS[0]]["state"] in ("circuit-open", "cooling")
    emulator(stack, 0, "DELETE", "faults")


@pytest.fixture
def deadline_stack(stacks: StackFactory) -> LocalStack:
    return quota_stack(stacks, JOB_DEADLINE_SECONDS="8")


def test_the_deadline_ends_a_job_that_can_never_get_a_slot(deadline_stack: LocalStack) -> None:
    api = reset(deadline_stack)
    api.emulator("POST", "config", {"requests_per_minute": 0})  # every request answered 429
    [job_id] = burst(api, 1)
    body = finished(api, [job_id], timeout=40)[job_id]
    assert body["status"] == "failed" and body["error"]["code"] == "upstream_throttled"
    assert "deadline" in body["error"]["message"]
    assert api.emulator("GET", "stats")["paid_generations"] == 0
    api.emulator("POST", "reset", {"config": True})
