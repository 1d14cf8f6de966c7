"""Figure 3: peak memory of the function app per in-flight image, as a multiple of the image's size.

The emulator draws incompressible images (`--image-detail noise`: ~3 MB per 1024x1024 PNG) and takes
2 s per generation, so 16 concurrent POSTs are all in flight together. The dev host's RSS (the
process that runs function_app.py) is sampled every 5 ms: baseline after a warm-up request, peak
during the burst. ratio = (peak - baseline) / in-flight images / image bytes.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psutil
import requests

from bench.common import StackClient, measure_on_stack, median, progress, rounded

LATENCY_SECONDS = 2.0
CONCURRENT = 16
SAMPLE_SECONDS = 0.005
TARGET_RATIO = 3.0
MIB = 1024 * 1024


class RssSampler:
    """Samples one process's resident set size on a thread until stopped."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.samples: list[int] = []

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(int(self._process.memory_info().rss))
            time.sleep(SAMPLE_SECONDS)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _idle_rss(pid: int, seconds: float = 0.5) -> int:
    with RssSampler(pid) as sampler:
        time.sleep(seconds)
    return int(median(sampler.samples))


def _burst(client: StackClient) -> list[int]:
    """16 concurrent POSTs (one session per thread); the stored images' sizes."""

    def one(index: int) -> int:
        with requests.Session() as session:
            job = client.post_image(f"burst {index}: a field of static", session).json()
        return int(job["images"][0]["bytes"])

    with ThreadPoolExecutor(max_workers=CONCURRENT) as pool:
        return list(pool.map(one, range(CONCURRENT)))


def _measure(client: StackClient) -> dict[str, Any]:
    client.configure_emulator({"latency_seconds": LATENCY_SECONDS, "image_detail": "noise"})
    pid = client.stack.processes["devhost"].pid
    progress("memory: warm-up request")
    warm_up_bytes = int(client.post_image("warm-up: a field of static").json()["images"][0]["bytes"])
    baseline = _idle_rss(pid)
    progress(f"memory: {CONCURRENT} concurrent requests at {LATENCY_SECONDS:.1f} s emulator latency")
    with RssSampler(pid) as sampler:
        sizes = _burst(client)
    peak = max(sampler.samples)
    image_bytes = sum(sizes) / len(sizes)
    ratio = (peak - baseline) / CONCURRENT / image_bytes
    return {
        "setup": {
            "emulator_image_detail": "noise",
            "emulator_latency_s": LATENCY_SECONDS,
            "concurrent_requests": CONCURRENT,
            "request": "1024x1024 png, n=1",
            "sample_interval_ms": SAMPLE_SECONDS * 1000,
            "process": "dev host (runs function_app.py)",
        },
        "image_bytes": int(image_bytes),
        "warm_up_image_bytes": warm_up_bytes,
        "baseline_rss_mib": rounded(baseline / MIB),
        "peak_rss_mib": rounded(peak / MIB),
        "growth_mib": rounded((peak - baseline) / MIB),
        "samples": len(sampler.samples),
        "per_image_ratio": round(ratio, 2),
        "target": {"ratio_at_most": TARGET_RATIO, "ratio": round(ratio, 2), "met": ratio <= TARGET_RATIO},
    }


def run_memory() -> dict[str, Any]:
    return measure_on_stack("memory", _measure, aoai_args=("--image-detail", "noise"))
