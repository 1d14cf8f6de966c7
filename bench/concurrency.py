"""64 concurrent respond-async jobs, 3 s emulated latency, one dev host process.

All 64 POSTs answer 202 at once; queue workers on the one dev host run them. The figure is the wall
time from the first POST until `image-results` has published all 64 terminal jobs, as a ratio to
the 3 s latency (1.0 would be perfect overlap). Target ≤ 1.5.
"""

from __future__ import annotations

import contextlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient, TextBase64DecodePolicy

from bench.common import IMAGE_BODY, StackClient, measure_on_stack, progress, rounded

JOBS = 64
LATENCY_SECONDS = 3.0
TARGET_RATIO = 1.5
TIMEOUT_SECONDS = 120.0


def _post_async(client: StackClient, index: int) -> str:
    with requests.Session() as session:
        response = session.post(
            f"{client.stack.devhost_url}/api/images",
            headers={"x-functions-key": client.stack.function_key, "Prefer": "respond-async"},
            json={"prompt": f"concurrent {index}: a paper crane", **IMAGE_BODY},
            timeout=30,
        )
    if response.status_code != 202:
        raise RuntimeError(f"respond-async POST answered {response.status_code}")
    return str(response.json()["id"])


def _wait_for_results(results: QueueClient, count: int) -> None:
    """Until `image-results` holds `count` messages: one cheap call per check, so the measuring
    itself does not load the storage the jobs need (receiving and deleting 64 messages would)."""
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while (found := results.get_queue_properties().approximate_message_count or 0) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {found} of {count} jobs ended within {TIMEOUT_SECONDS:.0f} s")
        time.sleep(0.05)


def _drain_outcomes(results: QueueClient) -> dict[str, str]:
    seen: dict[str, str] = {}
    while messages := list(results.receive_messages(max_messages=32, visibility_timeout=30)):
        for message in messages:
            job = json.loads(message.content)
            seen[job["id"]] = job["status"]
            results.delete_message(message)
    return seen


def _measure(client: StackClient) -> dict[str, Any]:
    client.configure_emulator({"latency_seconds": LATENCY_SECONDS})
    results = QueueClient.from_connection_string(
        client.stack.azurite.connection_string,
        "image-results",
        message_decode_policy=TextBase64DecodePolicy(),
        connection_verify=client.ca_file,
    )
    with contextlib.suppress(ResourceExistsError):  # the app creates it with its first result
        results.create_queue()
    progress("concurrency: warm-up job")
    _post_async(client, -1)
    _wait_for_results(results, 1)
    _drain_outcomes(results)
    progress(f"concurrency: {JOBS} respond-async jobs at {LATENCY_SECONDS:.0f} s emulator latency")
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        job_ids = set(pool.map(lambda i: _post_async(client, i), range(JOBS)))
    accepted = time.monotonic() - started
    _wait_for_results(results, JOBS)
    wall = time.monotonic() - started
    outcomes = _drain_outcomes(results)
    results.close()
    if set(outcomes) != job_ids:
        raise RuntimeError("image-results does not hold exactly the 64 jobs")
    ratio = wall / LATENCY_SECONDS
    return {
        "setup": {
            "jobs": JOBS,
            "emulator_latency_s": LATENCY_SECONDS,
            "dev_host_processes": 1,
            "request": "1024x1024 png, n=1, Prefer: respond-async",
        },
        "all_accepted_s": rounded(accepted, 2),
        "wall_s": rounded(wall, 2),
        "succeeded": sum(1 for status in outcomes.values() if status == "succeeded"),
        "target": {"ratio_at_most": TARGET_RATIO, "ratio": round(ratio, 2), "met": ratio <= TARGET_RATIO},
    }


def run_concurrency() -> dict[str, Any]:
    return measure_on_stack("concurrency", _measure)
