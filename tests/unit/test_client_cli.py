"""The command line (imagegen_client.cli) on a scripted API: what it prints, saves and exits with."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from imagegen_client import ImageGenClient, cli

from tests.unit.client_fakes import (
    JOB_ID,
    PNG,
    FakeApi,
    VirtualTime,
    error_answer,
    image_json,
    running,
    succeeded,
)

CLIENT_SRC = Path(__file__).resolve().parents[2] / "clients" / "python" / "src"


class Terminal:
    """The CLI's client on a FakeApi, and what the CLI wrote."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *answers: httpx.Response) -> None:
        self.api = FakeApi(*answers)
        self.time = VirtualTime()
        self.endpoints: list[tuple[str, str | None, Any]] = []
        self.stdout = io.StringIO()
        self.stderr = io.StringIO()
        monkeypatch.setattr(cli, "ImageGenClient", self._client)

    def _client(self, url: str, key: str | None, *, verify: Any) -> ImageGenClient:
        self.endpoints.append((url, key, verify))
        return ImageGenClient(
            url, key, transport=httpx.MockTransport(self.api), sleep=self.time.sleep, clock=self.time.clock
        )

    def run(self, *argv: str) -> int:
        return cli.main(list(argv), stdout=self.stdout, stderr=self.stderr)


def test_it_saves_the_image_and_prints_the_job_cost_and_link(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cost = {"amount": "0.04", "currency": "USD", "prices_as_of": "2026-01-01"}
    terminal = Terminal(monkeypatch, running(retry_after="1"), succeeded(model="gpt-image-2", cost=cost))
    target = tmp_path / "out" / "dog.png"
    args = ("a dog", "-o", str(target), "--url", "http://api.test/api/", "--key", "k", "--user", "u-1")
    assert terminal.run(*args) == 0
    image = image_json()
    assert terminal.stdout.getvalue().splitlines() == [
        "POST http://api.test/api/images",
        f"job       {JOB_ID} (succeeded, gpt-image-2)",
        "cost      0.04 USD (prices as of 2026-01-01)",
        f"image     1024x1024 image/png, {len(PNG)} bytes",
        f"SAS link  {image['url']}",
        f"expires   {image['expires_at']}",
        f"saved     {target}",
    ]
    assert terminal.stderr.getvalue().splitlines() == [
        f"  running after 0.0 s (job {JOB_ID})",
        f"  succeeded after 1.0 s (job {JOB_ID})",
    ]
    assert target.read_bytes() == PNG
    assert json.loads(terminal.api.requests[0].content) == {"prompt": "a dog", "user": "u-1"}
    assert terminal.endpoints == [("http://api.test/api/", "k", True)]


def test_several_images_go_into_a_folder_named_after_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    terminal = Terminal(monkeypatch, succeeded(images=2))
    terminal.api.blobs[f"/images/{JOB_ID}-1.png"] = PNG
    assert (
        terminal.run("two", "-n", "2", "-o", str(tmp_path / "dogs.png"), "--url", "http://api.test/api") == 0
    )
    assert sorted(p.name for p in (tmp_path / "dogs").iterdir()) == [f"{JOB_ID}-0.png", f"{JOB_ID}-1.png"]


@pytest.mark.parametrize(
    ("answer", "status", "message"),
    [
        (
            lambda: error_answer(422, "content_filtered", details={"categories": ["violence"]}),
            3,
            "content filter",
        ),
        (
            lambda: error_answer(503, "upstream_throttled", headers={"Retry-After": "20"}),
            4,
            "try again in 20 s",
        ),
        (lambda: error_answer(400, "invalid_request"), 1, "failed: invalid_request (HTTP 400)"),
        (lambda: httpx.Response(401), 1, "failed: unauthorized (HTTP 401)"),
    ],
    ids=["content-filtered", "throttled", "invalid", "unauthorized"],
)
def test_a_failure_has_its_exit_status(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, answer: Any, status: int, message: str
) -> None:
    terminal = Terminal(monkeypatch, answer())
    assert terminal.run("a", "-o", str(tmp_path), "--url", "http://api.test/api") == status
    assert message in terminal.stderr.getvalue()
    assert list(tmp_path.iterdir()) == []


def test_without_a_url_it_uses_the_local_stack(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    stack = {
        "devhost": {"api": "http://127.0.0.1:7071/api", "function_key": "stack-key"},
        "ca_file": "/tmp/ca.pem",
    }
    (tmp_path / ".local").mkdir()
    (tmp_path / ".local" / "stack.json").write_text(json.dumps(stack))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IMAGEGEN_URL", raising=False)
    monkeypatch.delenv("IMAGEGEN_KEY", raising=False)
    terminal = Terminal(monkeypatch, succeeded())
    assert terminal.run("a", "-o", "images/one.png") == 0
    assert terminal.endpoints == [("http://127.0.0.1:7071/api", "stack-key", "/tmp/ca.pem")]
    assert (tmp_path / "images" / "one.png").read_bytes() == PNG


def test_without_a_url_or_a_stack_it_says_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IMAGEGEN_URL", raising=False)
    with pytest.raises(SystemExit, match="make up"):
        cli.main(["a"])


def test_the_package_imports_neither_the_app_nor_requests(tmp_path: Path) -> None:
    """Installed on its own, the client needs httpx only: importing it loads no `imagegen`, no `requests`."""
    probe = (
        "import sys, imagegen_client, imagegen_client.cli\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('imagegen', 'requests'))\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,  # not the repository root, where `imagegen` would be importable
        env={"PYTHONPATH": str(CLIENT_SRC), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
