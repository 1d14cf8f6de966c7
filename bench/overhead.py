"""Figure 1: what the whole path (dev host, job record, token, upload, SAS) adds to a generation.

Identity mode (the default stack), gpt-image-2 on its default v1 dialect, 1024x1024 PNG, n=1. The emulator
is set to take 1.0 s per generation; after a warm-up, 40 sequential POSTs are timed by the client.
Overhead is reported two ways: client time minus the configured latency, and client time minus the
emulator's own `duration_ms` for that call (which also removes the emulator's rendering and encoding).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from bench.common import (
    StackClient,
    measure_on_stack,
    progress,
    rounded,
    stack_identity,
    summary_ms,
)
from devtools.stack import LocalStack
from imagegen.adapters.blob_store import BlobStore
from imagegen.domain.settings import Settings

LATENCY_SECONDS = 1.0
WARM_UP = 3
SAMPLES = 40
TARGET_P50_MS = 30.0
SPACING_SECONDS = 0.2
BASELINE_SAMPLES = 15
# About the size of a job record; the path writes three blobs of this order in a row (record, image,
# record; the 1024x1024 smooth PNG is ~24 KB).
BASELINE_DOCUMENT = {"baseline": "x" * 1000}


def _timed_posts(client: StackClient, count: int, label: str) -> list[float]:
    """Client-observed milliseconds of `count` sequential successful POSTs.

    Requests are spaced SPACING_SECONDS apart: after answering, the function app publishes the
    finished job (image-results, message delete) in the background, and that work belongs to the
    previous request, not to the next one's path.
    """
    times: list[float] = []
    for index in range(count):
        time.sleep(SPACING_SECONDS)
        started = time.perf_counter()
        client.post_image(f"{label} {index}: a lighthouse at dawn, watercolor")
        times.append((time.perf_counter() - started) * 1000)
    return times


def _emulator_durations(client: StackClient, count: int) -> list[float]:
    """`duration_ms` of the last `count` generate calls (sequential, so in the client's order)."""
    entries = client.emulator_requests("generate")[-count:]
    if len(entries) != count or any(entry["status"] != 200 for entry in entries):
        raise RuntimeError("the emulator's log does not show one successful generation per POST")
    return [float(entry["duration_ms"]) for entry in entries]


async def _storage_writes_after_idle(stack: LocalStack, samples: int, idle_seconds: float) -> list[float]:
    """Milliseconds of one Blob write (a record-sized create, identity mode, the app's BlobStore) from
    this process after `idle_seconds` of quiet: the unit the path's storage round trips cost here.

    On these VMs a round trip after a second of idle costs several times a back-to-back one (CPUs
    and processes wake up), and the path makes its writes right after the generation's wait."""
    credential = stack_identity(stack)
    settings = Settings.from_env(stack.settings)
    store = BlobStore(settings.storage, credential=credential, connection_verify=str(stack.tls.ca_cert))
    container = settings.jobs_container
    times: list[float] = []
    try:
        await store.create_json(container, f"bench-baseline/{uuid.uuid4()}.json", BASELINE_DOCUMENT)
        for _ in range(samples):
            await asyncio.sleep(idle_seconds)
            started = time.perf_counter()
            await store.create_json(container, f"bench-baseline/{uuid.uuid4()}.json", BASELINE_DOCUMENT)
            times.append((time.perf_counter() - started) * 1000)
    finally:
        await store.close()
        await credential.close()
    return times


def _measure(client: StackClient) -> dict[str, Any]:
    client.configure_emulator({"latency_seconds": LATENCY_SECONDS})
    progress(f"overhead: {WARM_UP} warm-up requests")
    _timed_posts(client, WARM_UP, "warm-up")
    tokens_before = client.msi_stats()
    progress(f"overhead: {SAMPLES} sequential requests at {LATENCY_SECONDS:.1f} s emulator latency")
    client_ms = _timed_posts(client, SAMPLES, "sample")
    emulator_ms = _emulator_durations(client, SAMPLES)
    tokens_after = client.msi_stats()
    over_latency = [c - LATENCY_SECONDS * 1000 for c in client_ms]
    over_emulator = [c - e for c, e in zip(client_ms, emulator_ms, strict=True)]
    p50 = summary_ms(over_latency)["p50"]
    progress(f"overhead: baseline, {BASELINE_SAMPLES} Blob writes after {LATENCY_SECONDS:.1f} s idle")
    write_ms = asyncio.run(_storage_writes_after_idle(client.stack, BASELINE_SAMPLES, LATENCY_SECONDS))
    write_p50 = summary_ms(write_ms)["p50"]
    return {
        "setup": {
            "storage_mode": "identity",
            "api_style": "v1",
            "model": "gpt-image-2",
            "request": "1024x1024 png, n=1",
            "emulator_latency_s": LATENCY_SECONDS,
            "warm_up_requests": WARM_UP,
            "samples": SAMPLES,
            "spacing_s": SPACING_SECONDS,
        },
        "client_ms": summary_ms(client_ms),
        "emulator_duration_ms": summary_ms(emulator_ms),
        "overhead_over_configured_latency_ms": summary_ms(over_latency),
        "overhead_over_emulator_duration_ms": summary_ms(over_emulator),
        "target": {"p50_ms_at_most": TARGET_P50_MS, "p50_ms": p50, "met": p50 <= TARGET_P50_MS},
        "baseline_blob_write_after_idle_ms": summary_ms(write_ms),
        # The path makes three storage round trips in a row (record+message, image, record).
        "overhead_in_blob_writes": rounded(p50 / write_p50, 2),
        "msi_tokens": {
            "issued_total_after_warm_up": tokens_before["total"],
            "issued_total_at_end": tokens_after["total"],
            "issued_during_samples": tokens_after["total"] - tokens_before["total"],
            "by_audience_at_end": tokens_after["tokens_issued"],
            "requests_served": WARM_UP + SAMPLES,
        },
        "share_of_client_time": rounded(p50 / summary_ms(client_ms)["p50"], 4),
    }


def run_overhead() -> dict[str, Any]:
    return measure_on_stack("overhead", _measure)
