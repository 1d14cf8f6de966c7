"""Shared pieces of the benchmark: progress output, statistics, a stack for one figure, HTTP helpers.

Nothing here prints the function key, tokens, api keys or SAS signatures: figures only.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from devtools.stack import LocalStack, start_local_stack

if TYPE_CHECKING:
    from azure.identity.aio import ManagedIdentityCredential

IMAGE_BODY: dict[str, Any] = {"n": 1, "size": "1024x1024"}
HTTP_TIMEOUT_SECONDS = 120.0


def progress(message: str) -> None:
    """Progress goes to stderr; stdout carries only the JSON document."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def rounded(value: float, digits: int = 1) -> float:
    return round(value, digits)


def percentile(values: Sequence[float], fraction: float) -> float:
    """Linear-interpolation percentile (fraction in 0..1) of a non-empty sample."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary_ms(values: Sequence[float]) -> dict[str, float]:
    """p50/p95/min/max of a sample of milliseconds."""
    return {
        "p50": rounded(percentile(values, 0.50)),
        "p95": rounded(percentile(values, 0.95)),
        "min": rounded(min(values)),
        "max": rounded(max(values)),
    }


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def machine_info() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in load],
    }


def stack_identity(stack: LocalStack) -> ManagedIdentityCredential:
    """The managed identity the stack's function app has (the MSI emulator), for the bench process."""
    from azure.identity.aio import ManagedIdentityCredential

    os.environ["IDENTITY_ENDPOINT"] = stack.msi.identity_endpoint
    os.environ["IDENTITY_HEADER"] = stack.msi.identity_header
    return ManagedIdentityCredential()


@contextmanager
def running_stack(label: str, **options: Any) -> Iterator[LocalStack]:
    """A local stack on free ports in a temporary folder, always stopped."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{label}-") as folder:
        progress(f"{label}: starting a local stack")
        stack = start_local_stack(Path(folder), **options)
        try:
            yield stack
        finally:
            progress(f"{label}: stopping the stack")
            stack.stop()


def measure_on_stack(
    label: str, measure: Callable[[StackClient], dict[str, Any]], **options: Any
) -> dict[str, Any]:
    """Run one figure's `measure` against a stack of its own (started and stopped here)."""
    with running_stack(label, **options) as stack:
        client = StackClient.open(stack)
        try:
            return measure(client)
        finally:
            client.close()


@dataclass
class StackClient:
    """HTTP calls to one stack: the function app (dev host) and the emulators' admin APIs."""

    stack: LocalStack
    session: requests.Session

    @classmethod
    def open(cls, stack: LocalStack) -> StackClient:
        return cls(stack, requests.Session())

    def close(self) -> None:
        self.session.close()

    @property
    def ca_file(self) -> str:
        return str(self.stack.tls.ca_cert)

    def post_image(self, prompt: str, session: requests.Session | None = None) -> requests.Response:
        """POST /api/images (n=1, 1024x1024); raises unless the job succeeded (200)."""
        response = (session or self.session).post(
            f"{self.stack.devhost_url}/api/images",
            headers={"x-functions-key": self.stack.function_key},
            json={"prompt": prompt, **IMAGE_BODY},
            timeout=HTTP_TIMEOUT_SECONDS,
        )
        if response.status_code != 200:
            raise RuntimeError(f"POST /api/images answered {response.status_code}: {_error_code(response)}")
        return response

    def configure_emulator(self, patch: Mapping[str, Any]) -> dict[str, Any]:
        response = self.session.post(
            f"{self.stack.aoai.admin_url}/config", json=dict(patch), verify=self.ca_file, timeout=10
        )
        response.raise_for_status()
        config: dict[str, Any] = response.json()
        return config

    def emulator_requests(self, kind: str) -> list[dict[str, Any]]:
        response = self.session.get(
            f"{self.stack.aoai.admin_url}/requests",
            params={"kind": kind},
            verify=self.ca_file,
            timeout=10,
        )
        response.raise_for_status()
        entries: list[dict[str, Any]] = response.json()["requests"]
        return entries

    def msi_stats(self) -> dict[str, Any]:
        response = self.session.get(self.stack.msi.stats_url, timeout=10)
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats


def _error_code(response: requests.Response) -> str:
    """The error code of a failed answer (never the whole body: it could hold links)."""
    try:
        document = response.json()
    except ValueError:
        return "no JSON body"
    error = document.get("error") if isinstance(document, dict) else None
    return str(error.get("code")) if isinstance(error, dict) else "no error code"
