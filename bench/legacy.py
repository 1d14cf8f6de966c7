"""Figure 2: how late the caller learns that a legacy (`:submit` + poll) operation finished.

The emulator completes an operation at submit + legacy_queue_seconds + legacy_latency_seconds (0.2 +
1.5 s). The submit's wall-clock `time` comes from the emulator's request log (same machine, same
clock), so lag = the instant the caller has its answer - that completion instant. Two callers take
turns on the same emulator: the function app (POST returns once the image is stored and linked)
and a port of the Azure quickstart's PowerShell loop (fixed 1 s sleep between polls, then download).
"""

from __future__ import annotations

import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from bench.common import (
    StackClient,
    measure_on_stack,
    median,
    parse_log_time,
    progress,
    rounded,
)

QUEUE_SECONDS = 0.2
RUNNING_SECONDS = 1.5
RETRY_AFTER_SECONDS = 1
FUNCTION_WARM_UP = 2
PAIRS = 10
TARGET_RATIO = 0.10
QUICKSTART_API_VERSION = "2023-06-01-preview"
QUICKSTART_MAX_POLLS = 60  # the PowerShell loop has no bound; a benchmark must end


@dataclass(frozen=True)
class Answer:
    operation_id: str
    answered_at: float  # time.time() when the caller had its answer


def quickstart_loop(endpoint: str, api_key: str, prompt: str, ca_file: str, out_dir: Path) -> Answer:
    """The quickstart, line for line: submit, read operation-location, sleep 1 s, poll until
    `succeeded`, download result.data[0].url to a file. Each call is a fresh request, as
    Invoke-RestMethod makes them."""
    headers = {"api-key": api_key, "Content-Type": "application/json"}
    body = {"prompt": prompt, "size": "1024x1024", "n": 1}
    url = f"{endpoint}/openai/images/generations:submit?api-version={QUICKSTART_API_VERSION}"
    submission = requests.post(url, headers=headers, json=body, verify=ca_file, timeout=30)
    submission.raise_for_status()
    operation_location = submission.headers["operation-location"]
    status = ""
    response: dict[str, Any] = {}
    polls = 0
    while status != "succeeded":
        time.sleep(1)
        response = requests.get(operation_location, headers=headers, verify=ca_file, timeout=30).json()
        status = response["status"]
        polls += 1
        if status in ("failed", "canceled") or polls >= QUICKSTART_MAX_POLLS:
            raise RuntimeError(f"quickstart operation ended {status!r} after {polls} polls")
    image_url = response["result"]["data"][0]["url"]
    image = requests.get(image_url, verify=ca_file, timeout=30)
    image.raise_for_status()
    (out_dir / "generated_image.png").write_bytes(image.content)
    return Answer(str(submission.json()["id"]), time.time())


def _function_job(client: StackClient, prompt: str) -> Answer:
    response = client.post_image(prompt)
    answered_at = time.time()
    return Answer(str(response.json()["id"]), answered_at)


@dataclass(frozen=True)
class Lag:
    total_ms: float  # answer - completion: the figure with the target
    detection_ms: float  # first poll after completion - completion (the polling schedule's cost)
    emulator_poll_ms: float  # that poll's duration at the emulator (it renders the image then)
    after_poll_ms: float  # answer - end of that poll: download (+ upload, job record, link)


def _lag(client: StackClient, answer: Answer) -> Lag:
    """Answer instant - completion instant (submit time from the emulator's log + 1.7 s), split up."""
    ours = [e for e in client.emulator_requests("submit") if e.get("operation") == answer.operation_id]
    if len(ours) != 1:
        raise RuntimeError(f"expected one submit for the operation, found {len(ours)}")
    completed_at = parse_log_time(ours[0]["time"]) + QUEUE_SECONDS + RUNNING_SECONDS
    polls = [e for e in client.emulator_requests("poll") if e.get("operation") == answer.operation_id]
    after = [e for e in polls if parse_log_time(e["time"]) >= completed_at]
    if not after:
        raise RuntimeError("no poll after the operation completed")
    polled_at = parse_log_time(after[0]["time"])
    poll_ms = float(after[0]["duration_ms"])
    return Lag(
        total_ms=(answer.answered_at - completed_at) * 1000,
        detection_ms=(polled_at - completed_at) * 1000,
        emulator_poll_ms=poll_ms,
        after_poll_ms=(answer.answered_at - polled_at) * 1000 - poll_ms,
    )


def _describe(lags: list[Lag]) -> dict[str, Any]:
    return {
        "median": rounded(median([lag.total_ms for lag in lags])),
        "all": [rounded(lag.total_ms) for lag in lags],
        "median_parts": {
            "detection_ms": rounded(median([lag.detection_ms for lag in lags])),
            "emulator_poll_ms": rounded(median([lag.emulator_poll_ms for lag in lags])),
            "after_poll_ms": rounded(median([lag.after_poll_ms for lag in lags])),
        },
    }


def _run_pairs(client: StackClient, api_key: str, out_dir: Path) -> tuple[list[Lag], list[Lag]]:
    function_lags: list[Lag] = []
    baseline_lags: list[Lag] = []
    endpoint = client.stack.aoai.endpoint
    for index in range(PAIRS):
        progress(f"legacy: pair {index + 1}/{PAIRS}")
        function = _function_job(client, f"function {index}: a red fox in the snow")
        function_lags.append(_lag(client, function))
        baseline = quickstart_loop(
            endpoint, api_key, f"quickstart {index}: a red fox", client.ca_file, out_dir
        )
        baseline_lags.append(_lag(client, baseline))
    return function_lags, baseline_lags


def _net_of_emulator(lags: list[Lag]) -> float:
    """Median lag without the emulator's own time on the succeeded poll (an emulator artifact)."""
    return median([lag.total_ms - lag.emulator_poll_ms for lag in lags])


def _measure(client: StackClient, api_key: str) -> dict[str, Any]:
    client.configure_emulator(
        {
            "legacy_queue_seconds": QUEUE_SECONDS,
            "legacy_latency_seconds": RUNNING_SECONDS,
            "retry_after_seconds": RETRY_AFTER_SECONDS,
        }
    )
    progress(f"legacy: {FUNCTION_WARM_UP} warm-up jobs through the function (the first is cold)")
    warm_up = [_lag(client, _function_job(client, f"warm-up {i}")) for i in range(FUNCTION_WARM_UP)]
    with tempfile.TemporaryDirectory(prefix="bench-quickstart-") as folder:
        function_lags, baseline_lags = _run_pairs(client, api_key, Path(folder))
    function = _describe(function_lags)
    baseline = _describe(baseline_lags)
    ratio = function["median"] / baseline["median"]
    net_ratio = _net_of_emulator(function_lags) / _net_of_emulator(baseline_lags)
    return {
        "setup": {
            "api_style": "legacy",
            "model": "dall-e-2",
            "request": "1024x1024, n=1",
            "legacy_queue_seconds": QUEUE_SECONDS,
            "legacy_latency_seconds": RUNNING_SECONDS,
            "retry_after_seconds": RETRY_AFTER_SECONDS,
            "pairs_interleaved": PAIRS,
            "function_warm_up_jobs": FUNCTION_WARM_UP,
        },
        "function_cold_first_job_lag_ms": rounded(warm_up[0].total_ms),
        "function_warm_up_lags_ms": [rounded(lag.total_ms) for lag in warm_up],
        "function_lag_ms": function,
        "quickstart_lag_ms": baseline,
        "target": {"ratio_at_most": TARGET_RATIO, "ratio": round(ratio, 3), "met": ratio <= TARGET_RATIO},
        "ratio_net_of_emulator_poll": round(net_ratio, 3),
        "note": "lag = detection (first poll after completion) + that poll at the emulator (which renders "
        "the image on the first succeeded poll) + what follows: for the function, download, upload to "
        "Blob Storage, job record and link; for the quickstart, download to a file",
    }


def run_legacy() -> dict[str, Any]:
    api_key = secrets.token_urlsafe(24)  # used by both callers, never printed
    return measure_on_stack(
        "legacy",
        lambda client: _measure(client, api_key),
        api_style="legacy",
        model="dall-e-2",
        aoai_api_key=api_key,
    )
