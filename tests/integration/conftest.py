"""Fixtures that start real local processes on free ports (never the ports of `make up`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.certs import TlsFiles, make_localhost_certs
from devtools.procs import ManagedProcess
from devtools.services import (
    AzuriteEndpoints,
    MsiEndpoint,
    start_azurite,
    start_msi_emulator,
)
from devtools.stack import LocalStack, start_local_stack

# A short upstream deadline, so throttling and hangs end quickly. One definition: every module that
# asks StackFactory for these options shares one stack.
# A short deadline: a job that is throttled for good ends upstream_throttled within seconds.
FAULT_SETTINGS = {"UPSTREAM_TIMEOUT_SECONDS": "4", "MAX_WAIT_SECONDS": "10", "JOB_DEADLINE_SECONDS": "5"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/integration carries the `integration` marker (a conftest's pytestmark
    does not reach the modules it serves)."""
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_localhost_certs(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def msi_process(logs_dir: Path) -> Iterator[tuple[ManagedProcess, MsiEndpoint]]:
    process, endpoint = start_msi_emulator(log_dir=logs_dir)
    yield process, endpoint
    process.stop()


@pytest.fixture(scope="session")
def msi(msi_process: tuple[ManagedProcess, MsiEndpoint]) -> MsiEndpoint:
    return msi_process[1]


@pytest.fixture
def msi_env(msi: MsiEndpoint, monkeypatch: pytest.MonkeyPatch) -> MsiEndpoint:
    """Point azure-identity's ManagedIdentityCredential (App Service protocol) at the emulator."""
    monkeypatch.setenv("IDENTITY_ENDPOINT", msi.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", msi.identity_header)
    for name in ("MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT", "IDENTITY_SERVER_THUMBPRINT"):
        monkeypatch.delenv(name, raising=False)
    return msi


@pytest.fixture(scope="session")
def azurite_oauth(
    tmp_path_factory: pytest.TempPathFactory, logs_dir: Path, tls_files: TlsFiles
) -> Iterator[AzuriteEndpoints]:
    """Identity mode: HTTPS with --oauth basic."""
    process, endpoints = start_azurite(
        tmp_path_factory.mktemp("azurite-oauth"), log_dir=logs_dir / "oauth", tls=tls_files, oauth=True
    )
    yield endpoints
    process.stop()


@pytest.fixture(scope="session")
def azurite_plain(tmp_path_factory: pytest.TempPathFactory, logs_dir: Path) -> Iterator[AzuriteEndpoints]:
    """Connection-string mode: HTTP, account key."""
    process, endpoints = start_azurite(
        tmp_path_factory.mktemp("azurite-plain"), log_dir=logs_dir / "plain", tls=None, oauth=False
    )
    yield endpoints
    process.stop()


# --- the whole local stack (Azurite + emulators + dev host running function_app) ----------------

StackOptions = tuple[tuple[str, Any], ...]


class StackFactory:
    """Starts one LocalStack per distinct set of options and reuses it for the session."""

    def __init__(self, base: Path) -> None:
        self._base = base
        self._stacks: dict[StackOptions, LocalStack] = {}

    def __call__(self, **options: Any) -> LocalStack:
        key: StackOptions = tuple(sorted((k, _freeze(v)) for k, v in options.items()))
        if key not in self._stacks:
            root = self._base / f"stack{len(self._stacks)}"
            self._stacks[key] = start_local_stack(root, **options)
        return self._stacks[key]

    def all(self) -> list[LocalStack]:
        return list(self._stacks.values())

    def stop_all(self) -> None:
        for stack in self._stacks.values():
            stack.stop()


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted(value.items()))
    if isinstance(value, list):
        return tuple(value)
    return value


@pytest.fixture(scope="session")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackFactory]:
    factory = StackFactory(tmp_path_factory.mktemp("stacks"))
    yield factory
    factory.stop_all()
