"""`python -m bench` (`make bench`): every benchmark figure as one JSON document.

stdout carries only the JSON; progress goes to stderr; a copy is written to bench/results/<UTC
timestamp>.json. Figures are ratios against baselines measured in the same run, never assertions
about absolute timings (machines are noisy).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import machine_info, progress
from bench.concurrency import run_concurrency
from bench.copies import run_copies
from bench.memory import run_memory
from bench.overhead import run_overhead
from bench.storage_ops import run_storage_ops
from bench.throughput import run_throughput

RESULTS_DIR = Path(__file__).resolve().parent / "results"
FIGURES: dict[str, Callable[[], dict[str, Any]]] = {
    "overhead": run_overhead,
    "memory": run_memory,
    "memory_copies": run_copies,
    "concurrency": run_concurrency,
    "storage_ops": run_storage_ops,
    "throughput_under_quota": run_throughput,
}


def _run_figure(name: str, figure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """One figure; a failure is reported in its place so the others still count."""
    started = time.monotonic()
    try:
        result = figure()
    except Exception as error:  # noqa: BLE001 - a broken figure must not hide the others
        progress(f"{name} failed: {error.__class__.__name__}")
        result = {"error": f"{error.__class__.__name__}: {str(error)[:300]}"}
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def _targets(figures: dict[str, dict[str, Any]]) -> dict[str, bool | None]:
    return {
        name: figure["target"]["met"] if "target" in figure else None
        for name, figure in figures.items()
        if name != "memory_copies"
    }


def main(argv: list[str] | None = None) -> int:
    """`python -m bench [figure ...]`: every figure, or only the ones named."""
    names = sys.argv[1:] if argv is None else argv
    unknown = sorted(set(names) - set(FIGURES))
    if unknown:
        print(f"unknown figure(s): {', '.join(unknown)}; figures: {', '.join(FIGURES)}", file=sys.stderr)
        return 2
    chosen = {name: figure for name, figure in FIGURES.items() if not names or name in names}
    started = time.monotonic()
    stamp = datetime.now(UTC)
    document: dict[str, Any] = {"started_at": stamp.isoformat(timespec="seconds"), "machine": machine_info()}
    figures = {name: _run_figure(name, figure) for name, figure in chosen.items()}
    document["figures"] = figures
    document["targets_met"] = _targets(figures)
    document["total_seconds"] = round(time.monotonic() - started, 1)
    text = json.dumps(document, indent=2)
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{stamp.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(text + "\n")
    progress(f"written to {path}")
    print(text)
    return 1 if any("error" in figure for figure in figures.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
