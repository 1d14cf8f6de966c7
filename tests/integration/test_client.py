"""imagegen_client (clients/python) and its command line against the dev host (real HTTP, real stack)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from imagegen_client import (
    AsyncImageGenClient,
    AuthenticationError,
    ContentFilteredError,
    IdempotencyKeyReusedError,
    ImageGenClient,
    InvalidRequestError,
    Job,
    NotFoundError,
    ThrottledError,
    WaitTimeoutError,
)

from tests.integration.conftest import FAULT_SETTINGS, StackFactory
from tests.integration.test_durable_jobs import DURABLE_SETTINGS, FAST_DEVHOST
from tests.integration.test_function_app import Api, _api

CLIENT_SRC = Path(__file__).resolve().parents[2] / "clients" / "python" / "src"


@pytest.fixture
def api(stacks: StackFactory) -> Api:
    return _api(stacks(setting_overrides=DURABLE_SETTINGS, devhost_env=FAST_DEVHOST))


@pytest.fixture
def client(api: Api) -> ImageGenClient:
    return ImageGenClient(api.base, api.stack.function_key, verify=api.ca)


def test_generate_follows_202_and_returns_the_images(
    api: Api, client: ImageGenClient, tmp_path: Path
) -> None:
    api.emulator("POST", "config", {"latency_seconds": 2.5})
    seen: list[tuple[str, float]] = []
    job = client.generate(
        "a paper boat", n=2, size="1024x1536", on_progress=lambda j, t: seen.append((j.status, t))
    )
    assert job.status == "succeeded"
    assert [(i.width, i.height) for i in job.images] == [(1024, 1536)] * 2
    assert "running" in [status for status, _ in seen] or "queued" in [status for status, _ in seen]
    saved = client.download(job.images[0], tmp_path / "boat.png")
    assert saved.read_bytes().startswith(b"\x89PNG")
    assert client.get(job.id).images[0].blob == job.images[0].blob


async def test_the_async_client_generates_downloads_and_cancels(api: Api, tmp_path: Path) -> None:
    api.emulator("POST", "config", {"latency_seconds": 1.5})
    async with AsyncImageGenClient(api.base, api.stack.function_key, verify=api.ca) as client:
        seen: list[str] = []
        job = await client.generate("an async kite", on_progress=lambda j, _: seen.append(j.status))
        assert job.status == "succeeded"
        assert seen[-1] == "succeeded" and len(seen) >= 2
        saved = await client.download(job.images[0], tmp_path / "kite.png")
        assert saved.read_bytes().startswith(b"\x89PNG")
        assert (await client.get(job.id)).id == job.id
        api.emulator("POST", "config", {"latency_seconds": 10})
        with pytest.raises(WaitTimeoutError) as caught:
            await client.generate("a slow async one", timeout=1)
        assert caught.value.job is not None
        assert (await client.cancel(caught.value.job.id)).status == "canceled"


def test_the_same_idempotency_key_is_the_same_job(api: Api, client: ImageGenClient) -> None:
    key = f"client-test-{uuid.uuid4()}"
    first = client.generate("one kite", idempotency_key=key)
    second = client.generate("one kite", idempotency_key=key)
    assert first.id == second.id
    assert len(api.calls("generate")) == 1
    with pytest.raises(IdempotencyKeyReusedError):
        client.generate("two kites", idempotency_key=key)


@pytest.mark.parametrize(
    ("prompt", "options", "error", "detail"),
    [
        ("forbidden scene", {}, ContentFilteredError, "categories"),
        ("a", {"n": 99}, InvalidRequestError, "field"),
        ("a", {"size": "7x7"}, InvalidRequestError, "field"),
    ],
)
def test_failures_raise_typed_errors(
    client: ImageGenClient, prompt: str, options: dict[str, object], error: type[Exception], detail: str
) -> None:
    with pytest.raises(error) as caught:
        client.generate(prompt, **options)  # type: ignore[arg-type]
    assert detail in caught.value.details  # type: ignore[attr-defined]


def test_throttling_raises_with_retry_after(stacks: StackFactory) -> None:
    api = _api(stacks(setting_overrides=FAULT_SETTINGS))
    api.emulator("POST", "faults", {"kind": "429", "count": 20, "retry_after": 2})
    with pytest.raises(ThrottledError) as caught:
        ImageGenClient(api.base, api.stack.function_key, verify=api.ca).generate("busy")
    assert caught.value.retry_after == 2
    assert caught.value.job is not None
    assert caught.value.job.status == "failed"


def test_a_wrong_key_and_an_unknown_job(api: Api, client: ImageGenClient) -> None:
    with pytest.raises(AuthenticationError):
        ImageGenClient(api.base, "wrong-key", verify=api.ca).generate("a")
    with pytest.raises(NotFoundError):
        client.get(str(uuid.uuid4()))


def test_the_clients_own_timeout_leaves_the_job_running_then_cancel(api: Api, client: ImageGenClient) -> None:
    api.emulator("POST", "config", {"latency_seconds": 10})
    with pytest.raises(WaitTimeoutError) as caught:
        client.generate("a slow one", timeout=1)
    job = caught.value.job
    assert isinstance(job, Job)
    canceled = client.cancel(job.id)
    assert canceled.status == "canceled"


def test_the_cli_saves_the_image_and_prints_the_link(api: Api, tmp_path: Path) -> None:
    target = tmp_path / "out" / "dog.png"
    command = [sys.executable, "-m", "imagegen_client", "a painting of a dog", "-o", str(target)]
    command += ["--url", api.base, "--key", api.stack.function_key, "--ca-file", api.ca]
    # The client is imported from its source tree, as pytest's pythonpath does for this process.
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(CLIENT_SRC), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False, env=env)
    assert done.returncode == 0, done.stderr
    assert target.read_bytes().startswith(b"\x89PNG")
    assert "SAS link  https://127.0.0.1:" in done.stdout
    assert f"saved     {target}" in done.stdout
    refused = subprocess.run(
        [*command[:3], "forbidden", *command[4:]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert refused.returncode == 3
    assert "content filter" in refused.stderr
