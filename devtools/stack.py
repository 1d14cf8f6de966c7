"""The whole local stack in one call: Azurite, the MSI and Azure OpenAI emulators, and the dev host.

    python -m devtools.stack up     # the fixed local ports, identity mode; writes .local/stack.json
    python -m devtools.stack down   # stops what `up` started, by pid

Tests call `start_local_stack` with free ports and their own folder, never the `make up` stack.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from devtools.certs import TlsFiles, make_localhost_certs
from devtools.procs import REPO_ROOT, ManagedProcess, ProcessStartError, free_port, free_ports
from devtools.services import (
    AoaiEndpoint,
    AzuriteEndpoints,
    MsiEndpoint,
    start_aoai_emulator,
    start_azurite,
    start_devhost,
    start_msi_emulator,
)

StorageMode = Literal["identity", "connection-string"]
LOCAL_DIR = REPO_ROOT / ".local"
LOCAL_BACKEND_RPM = 6000  # the local pool's quota: far above what tests and the demo send
STACK_FILE = LOCAL_DIR / "stack.json"


@dataclass(frozen=True)
class StackPorts:
    devhost: int
    aoai: int
    msi: int
    blob: int
    queue: int
    table: int

    @classmethod
    def fixed(cls) -> StackPorts:
        """The fixed local ports (`make up`), the same in every tool and doc."""
        return cls(devhost=7071, aoai=7081, msi=7082, blob=10000, queue=10001, table=10002)

    @classmethod
    def free(cls) -> StackPorts:
        return cls(*free_ports(6))


@dataclass
class LocalStack:
    root: Path
    tls: TlsFiles
    azurite: AzuriteEndpoints
    msi: MsiEndpoint
    aoai: AoaiEndpoint
    devhost_url: str
    function_key: str
    settings: dict[str, str]
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    devhost_env: dict[str, str] = field(default_factory=dict)
    ports: StackPorts | None = None
    storage_mode: StorageMode = "identity"
    retired: list[ManagedProcess] = field(default_factory=list)  # earlier processes, for their logs
    regions: list[AoaiEndpoint] = field(default_factory=list)  # every emulator (aoai is the first)

    def stop(self) -> None:
        for name in sorted(self.processes, key=lambda n: ("devhost" not in n, n)):
            self.processes[name].stop()

    def all_processes(self) -> list[ManagedProcess]:
        return [*self.retired, *self.processes.values()]

    def start_devhost(self, name: str = "devhost", port: int | None = None) -> str:
        """(Re)start a dev host on this stack (another name: a second instance); returns its URL."""
        settings_file = self.root / "local.settings.json"
        process, endpoint = start_devhost(
            log_dir=self.root / "logs" / name,
            port=port or free_port(),
            settings=self.settings,
            function_key=self.function_key,
            extra_env=self.devhost_env,
            extra_args=("--settings", str(settings_file)),
        )
        self.processes[name] = process
        return endpoint.base_url

    def crash_devhost(self, name: str = "devhost") -> None:
        """SIGKILL: no drain, no clean-up, like a lost instance."""
        process = self.processes.pop(name)
        process.kill()
        self.retired.append(process)

    def restart_devhost(self) -> None:
        """Start the dev host again on the same port (after crash_devhost)."""
        port = int(self.devhost_url.rsplit(":", 1)[1])
        self.start_devhost("devhost", port)

    def stop_azurite(self) -> None:
        process = self.processes.pop("azurite")
        process.stop()
        self.retired.append(process)

    def start_azurite_again(self) -> None:
        """Same ports, same folder: Azurite's disk persistence brings the data back."""
        assert self.ports is not None
        process, _ = start_azurite(
            self.azurite.location,
            log_dir=self.root / "logs" / f"azurite-{len(self.retired)}",
            tls=self.tls if self.storage_mode == "identity" else None,
            oauth=self.storage_mode == "identity",
            ports=(self.ports.blob, self.ports.queue, self.ports.table),
        )
        self.processes["azurite"] = process

    def describe(self) -> dict[str, Any]:
        """What .local/stack.json holds: every URL, the function key, pids, log files."""
        return {
            "devhost": {
                "url": self.devhost_url,
                "api": f"{self.devhost_url}/api",
                "function_key": self.function_key,
            },
            "aoai_emulator": {"endpoint": self.aoai.endpoint, "admin": self.aoai.admin_url},
            "msi_emulator": {"identity_endpoint": self.msi.identity_endpoint, "stats": self.msi.stats_url},
            "azurite": {
                "blob": self.azurite.blob_url,
                "queue": self.azurite.queue_url,
                "table": self.azurite.table_url,
                "https": self.azurite.https,
            },
            "ca_file": str(self.tls.ca_cert),
            "pids": {name: process.pid for name, process in self.processes.items()},
            "logs": {name: str(process.log_path) for name, process in self.processes.items()},
        }


def app_settings(
    *,
    azurite: AzuriteEndpoints,
    msi: MsiEndpoint,
    aoai: AoaiEndpoint,
    storage_mode: StorageMode,
    api_style: str | None,
    model: str,
    deployment: str,
    ca_file: Path,
    public_api_base: str | None = None,
    overrides: Mapping[str, str] | None = None,
    regions: Sequence[tuple[str, AoaiEndpoint]] = (),
    backend_rpm: int = LOCAL_BACKEND_RPM,
) -> dict[str, str]:
    """The function app's settings for this stack: what local.settings.json would hold.

    The pool (AZURE_OPENAI_BACKENDS) lists every emulator instance as a region, each at
    `backend_rpm` requests per minute (generous by default, so tests not about pacing never wait)."""
    settings = {
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "AZURE_OPENAI_ENDPOINT": aoai.endpoint,
        "AZURE_OPENAI_DEPLOYMENT": deployment,
        "AZURE_OPENAI_MODEL": model,
        "IMAGES_CONTAINER": "images",
        "JOBS_CONTAINER": "jobs",
        "SAS_TTL_MINUTES": "60",
        "MAX_WAIT_SECONDS": "120",
        "UPSTREAM_TIMEOUT_SECONDS": "180",
        # As infra sets it: the host refuses larger request bodies before the app reads them.
        "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": "327680",
        # azure-identity's ManagedIdentityCredential (App Service protocol) -> the MSI emulator.
        "IDENTITY_ENDPOINT": msi.identity_endpoint,
        "IDENTITY_HEADER": msi.identity_header,
        # The stack's throw-away CA: the aiohttp transport reads SSL_CERT_FILE, requests reads the other.
        "SSL_CERT_FILE": str(ca_file),
        "REQUESTS_CA_BUNDLE": str(ca_file),
    }
    pool = []
    for label, endpoint in regions or (("local", aoai),):
        backend: dict[str, object] = {
            "label": label,
            "endpoint": endpoint.endpoint,
            "deployment": deployment,
            "model": model,
            "rpm": backend_rpm,
        }
        if api_style is not None:
            backend["api_style"] = api_style
        pool.append(backend)
    settings["AZURE_OPENAI_BACKENDS"] = json.dumps(pool)
    if public_api_base is not None:  # where links in job JSON point: the dev host, never a Host header
        settings["PUBLIC_API_BASE"] = public_api_base
    if api_style is not None:  # else the dialect Microsoft documents for the model (the catalog's)
        settings["AZURE_OPENAI_API_STYLE"] = api_style
    if aoai.api_key:
        settings["AZURE_OPENAI_API_KEY"] = aoai.api_key
    if storage_mode == "identity":
        settings["AzureWebJobsStorage__blobServiceUri"] = azurite.blob_url
        settings["AzureWebJobsStorage__queueServiceUri"] = azurite.queue_url
        settings["AzureWebJobsStorage__credential"] = "managedidentity"
    else:
        settings["AzureWebJobsStorage"] = azurite.connection_string
    settings.update(overrides or {})
    return settings


def start_local_stack(root: Path, *, ports: StackPorts | None = None, **options: Any) -> LocalStack:
    """Start the whole stack; `ports=None` picks free ones and, if another process takes one of them
    before our server binds it (the OS hands the same range to outgoing connections), tries again."""
    if ports is not None:
        return _start_local_stack(root, ports=ports, **options)
    for attempt in range(1, PORT_ATTEMPTS + 1):
        try:
            return _start_local_stack(
                root / f"try{attempt}" if attempt > 1 else root, ports=StackPorts.free(), **options
            )
        except ProcessStartError as error:
            if attempt == PORT_ATTEMPTS or not _port_taken(error):
                raise
    raise AssertionError("unreachable")


PORT_ATTEMPTS = 3


def _port_taken(error: ProcessStartError) -> bool:
    text = str(error).lower()
    return "address already in use" in text or "eaddrinuse" in text


def _start_local_stack(
    root: Path,
    *,
    ports: StackPorts,
    storage_mode: StorageMode = "identity",
    api_style: str | None = None,
    model: str = "gpt-image-2",
    deployment: str | None = None,
    aoai_api_key: str | None = None,
    aoai_args: tuple[str, ...] = (),
    setting_overrides: Mapping[str, str] | None = None,
    function_key: str | None = None,
    devhost_env: Mapping[str, str] | None = None,
    regions: Sequence[str] = (),
    backend_rpm: int = LOCAL_BACKEND_RPM,
) -> LocalStack:
    """Start everything; on any failure stop what already started and re-raise.

    `regions`: one Azure OpenAI emulator per name (each its own quota, `--region`), all in the pool;
    none: one emulator, the backend "local"."""
    logs = root / "logs"
    tls = make_localhost_certs(root / "tls")
    started: dict[str, ManagedProcess] = {}
    try:
        azurite_process, azurite = start_azurite(
            root / "azurite",
            log_dir=logs,
            tls=tls if storage_mode == "identity" else None,
            oauth=storage_mode == "identity",
            ports=(ports.blob, ports.queue, ports.table),
        )
        started["azurite"] = azurite_process
        msi_process, msi = start_msi_emulator(log_dir=logs, port=ports.msi)
        started["msi"] = msi_process
        aoai_process, aoai = start_aoai_emulator(
            log_dir=logs,
            port=ports.aoai,
            api_key=aoai_api_key,
            tls=tls,
            extra_args=(*aoai_args, *(("--region", regions[0]) if regions else ())),
        )
        started["aoai"] = aoai_process
        emulators: list[tuple[str, AoaiEndpoint]] = []
        for index, region in enumerate(regions):
            if index == 0:
                emulators.append((region, aoai))
                continue
            process, endpoint = start_aoai_emulator(
                log_dir=logs / f"aoai-{region}",
                api_key=aoai_api_key,
                tls=tls,
                extra_args=(*aoai_args, "--region", region),
            )
            started[f"aoai-{region}"] = process
            emulators.append((region, endpoint))
        settings = app_settings(
            azurite=azurite,
            msi=msi,
            aoai=aoai,
            storage_mode=storage_mode,
            api_style=api_style,
            model=model,
            deployment=deployment or model,
            ca_file=tls.ca_cert,
            public_api_base=f"http://127.0.0.1:{ports.devhost}/api",
            overrides=setting_overrides,
            regions=emulators,
            backend_rpm=backend_rpm,
        )
        key = function_key or secrets.token_urlsafe(24)
        # The stack's own local.settings.json, so the repository's example never leaks into it.
        settings_file = root / "local.settings.json"
        settings_file.write_text(json.dumps({"IsEncrypted": False, "Values": settings}, indent=2))
        settings_file.chmod(0o600)
        devhost_process, devhost = start_devhost(
            log_dir=logs,
            port=ports.devhost,
            settings=settings,
            function_key=key,
            extra_env=devhost_env,
            extra_args=("--settings", str(settings_file)),
        )
        started["devhost"] = devhost_process
    except BaseException:
        for process in reversed(list(started.values())):
            process.stop()
        raise
    return LocalStack(
        root=root,
        tls=tls,
        azurite=azurite,
        msi=msi,
        aoai=aoai,
        devhost_url=devhost.base_url,
        function_key=key,
        settings=settings,
        processes=started,
        devhost_env=dict(devhost_env or {}),
        ports=ports,
        storage_mode=storage_mode,
        regions=[endpoint for _, endpoint in emulators] or [aoai],
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def up() -> int:
    if STACK_FILE.exists():
        described = json.loads(STACK_FILE.read_text())
        if all(_pid_alive(pid) for pid in described.get("pids", {}).values()):
            print(f"local stack already running: {described['devhost']['url']} (see {STACK_FILE})")
            return 0
        down()
    stack = start_local_stack(LOCAL_DIR, ports=StackPorts.fixed(), function_key=secrets.token_urlsafe(24))
    STACK_FILE.write_text(json.dumps(stack.describe(), indent=2))
    STACK_FILE.chmod(0o600)
    print(
        f"local stack up: function app {stack.devhost_url}/api, details in {STACK_FILE.relative_to(REPO_ROOT)}"
    )
    return 0


def down() -> int:
    if not STACK_FILE.exists():
        print("local stack is not running")
        return 0
    described = json.loads(STACK_FILE.read_text())
    for name, pid in described.get("pids", {}).items():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
            print(f"stopping {name} (pid {pid})")
    deadline = time.monotonic() + 10
    for pid in described.get("pids", {}).values():
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    STACK_FILE.unlink()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="start or stop the local Azure stack")
    parser.add_argument("command", choices=["up", "down"])
    args = parser.parse_args(argv)
    return up() if args.command == "up" else down()


if __name__ == "__main__":
    sys.exit(main())
