"""Throughput under quota: a burst far beyond the deployments' quota, paced across a pool.

36 respond-async jobs, posted half to each of two dev hosts (one storage account, so one budget),
over two Azure OpenAI emulators as two regions at 12 requests per minute each (Azure's 10-second
windows: 2 requests per 10 s), 2 s generations. The ideal is N / ΣRPM minutes (90 s). Figures: wall
time from the first POST until every job ended, over the ideal (target ≤ 1.15); jobs failed
(target 0); share of upstream calls answered 429 (target ≤ 5 %); paid generations per job (1.0).

Baseline, in the same run: the same burst against one backend with pacing off (requests go at
once; only 429s and their cool-downs slow them), over its own ideal (N / its RPM).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from bench.common import IMAGE_BODY, progress, rounded, running_stack
from devtools.stack import LocalStack

JOBS = 36
RPM = 12
LATENCY_SECONDS = 2.0
REGIONS = ("swedencentral", "eastus2")
TARGETS = {
    "wall_over_ideal_at_most": 1.15,
    "failed_at_most": 0,
    "share_429_at_most": 0.05,
    "paid_per_job": 1.0,
}
TIMEOUT_SECONDS = 900.0


def _admin(stack: LocalStack, index: int, method: str, path: str, body: Any = None) -> Any:
    response = requests.request(
        method,
        f"{stack.regions[index].admin_url}/{path}",
        json=body,
        timeout=10,
        verify=str(stack.tls.ca_cert),
    )
    response.raise_for_status()
    return response.json()


def _post(stack: LocalStack, base: str, index: int) -> str:
    response = requests.post(
        f"{base}/api/images",
        headers={"x-functions-key": stack.function_key, "Prefer": "respond-async"},
        json={"prompt": f"burst {index}: a lantern on a quay", **IMAGE_BODY},
        timeout=30,
    )
    if response.status_code != 202:
        raise RuntimeError(f"respond-async POST answered {response.status_code}")
    return str(response.json()["id"])


def _statuses(stack: LocalStack, job_ids: list[str]) -> dict[str, str]:
    with requests.Session() as session:
        return {
            job_id: session.get(
                f"{stack.devhost_url}/api/images/{job_id}",
                headers={"x-functions-key": stack.function_key},
                timeout=30,
            ).json()["status"]
            for job_id in job_ids
        }


def _burst(stack: LocalStack, hosts: list[str], regions: int) -> dict[str, Any]:
    for index in range(regions):
        _admin(stack, index, "POST", "config", {"latency_seconds": LATENCY_SECONDS})
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        job_ids = list(pool.map(lambda i: _post(stack, hosts[i % len(hosts)], i), range(JOBS)))
    accepted = time.monotonic() - started
    deadline = started + TIMEOUT_SECONDS
    while True:
        statuses = _statuses(stack, job_ids)
        if all(status in ("succeeded", "failed", "canceled") for status in statuses.values()):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"jobs still waiting after {TIMEOUT_SECONDS:.0f} s")
        time.sleep(1.0)
    wall = time.monotonic() - started
    stats = [_admin(stack, index, "GET", "stats") for index in range(regions)]
    calls = sum(s["by_kind"].get("generate", 0) for s in stats)
    throttled = sum(s["throttled"] for s in stats)
    paid = sum(s["paid_generations"] for s in stats)
    ideal = JOBS / (RPM * regions) * 60.0
    return {
        "all_accepted_s": rounded(accepted, 2),
        "wall_s": rounded(wall, 1),
        "ideal_s": rounded(ideal, 1),
        "wall_over_ideal": round(wall / ideal, 3),
        "succeeded": sum(1 for s in statuses.values() if s == "succeeded"),
        "failed": sum(1 for s in statuses.values() if s != "succeeded"),
        "upstream_calls": calls,
        "answered_429": throttled,
        "share_429": round(throttled / calls, 3) if calls else None,
        "paid_per_job": round(paid / JOBS, 3),
        "per_region_paid": [s["paid_generations"] for s in stats],
    }


def _run(label: str, *, regions: tuple[str, ...], pacing: bool) -> dict[str, Any]:
    with running_stack(
        label,
        regions=regions,
        backend_rpm=RPM,
        aoai_args=("--requests-per-minute", str(RPM)),
        setting_overrides={"UPSTREAM_PACING": "on" if pacing else "off"},
    ) as stack:
        hosts = [stack.devhost_url, stack.start_devhost("devhost-2")]
        progress(f"{label}: {JOBS} jobs over {len(regions)} backend(s) at {RPM} RPM, pacing {pacing}")
        return _burst(stack, hosts, len(regions))


def run_throughput() -> dict[str, Any]:
    pooled = _run("throughput-pool", regions=REGIONS, pacing=True)
    baseline = _run("throughput-baseline", regions=REGIONS[:1], pacing=False)
    met = (
        pooled["wall_over_ideal"] <= TARGETS["wall_over_ideal_at_most"]
        and pooled["failed"] <= TARGETS["failed_at_most"]
        and (pooled["share_429"] or 0.0) <= TARGETS["share_429_at_most"]
        and pooled["paid_per_job"] == TARGETS["paid_per_job"]
    )
    return {
        "setup": {
            "jobs": JOBS,
            "backends": len(REGIONS),
            "rpm_each": RPM,
            "emulator_latency_s": LATENCY_SECONDS,
            "dev_host_processes": 2,
            "request": "1024x1024 png, n=1, Prefer: respond-async, half to each dev host",
        },
        "pool": pooled,
        "baseline_one_backend_pacing_off": baseline,
        "target": {**TARGETS, "met": met},
    }
