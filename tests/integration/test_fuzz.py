"""schemathesis against the dev host over the served /api/openapi.json: no 5xx, no response that
breaks its documented status, headers or schema.

Bounded inside `make test` (FUZZ_SECONDS, default 30); `make fuzz` runs it longer. Fuzzing cannot
reach the 500 of a poisoned job (test_openapi drives that one). The stack has webhooks off, so the
served document has no callback_url and nothing generated is ever called back: fuzzing stays on
loopback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import requests

from tests.integration.conftest import StackFactory
from tests.integration.test_function_app import _api

FUZZ_SECONDS = int(os.environ.get("FUZZ_SECONDS", "30"))
FUZZ_MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "25"))
# A stack of its own (no other test uses these settings): fuzzing leaves queued jobs behind, and
# they must not show up in another test's emulator request log.
FUZZ_SETTINGS = {"MAX_WAIT_SECONDS": "6", "UPSTREAM_TIMEOUT_SECONDS": "30"}
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
)


def test_fuzzing_finds_no_server_error_and_no_schema_breaking_response(
    stacks: StackFactory, tmp_path: Path
) -> None:
    api = _api(stacks(setting_overrides=FUZZ_SETTINGS), {"latency_seconds": 0.05})
    document = requests.get(f"{api.base}/openapi.json", timeout=10).json()
    assert "callback_url" not in document["definitions"]["ImageRequest"]["properties"]  # loopback only
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{api.base}/openapi.json",
        "--header",
        f"x-functions-key: {api.stack.function_key}",
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        str(FUZZ_MAX_EXAMPLES),
        "--max-time",
        str(FUZZ_SECONDS),
        "--request-timeout",
        "30",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
    ]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=FUZZ_SECONDS + 90,
        cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_TELEMETRY": "false"},
        check=False,
    )
    output = result.stdout + result.stderr
    (tmp_path / "schemathesis.txt").write_text(output)
    assert result.returncode == 0, output[-6000:]
    assert "Operations:" in output and "passed" in output, output[-3000:]
