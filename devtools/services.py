"""Start each local Azure stand-in on chosen (or free) ports: used by `make up` and by the tests."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from devtools.certs import TlsFiles
from devtools.msi_emulator import DEFAULT_IDENTITY_HEADER
from devtools.procs import REPO_ROOT, ManagedProcess, free_port, free_ports, python_module_argv, start_process

AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key: public, documented, only valid against the emulator.
AZURITE_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
AZURITE_BIN = REPO_ROOT / "node_modules" / ".bin" / "azurite"


@dataclass(frozen=True)
class AzuriteEndpoints:
    blob_url: str
    queue_url: str
    table_url: str
    https: bool
    ca_file: Path | None
    location: Path

    @property
    def connection_string(self) -> str:
        """Account-key connection string (connection-string mode, and admin access in tests)."""
        scheme = "https" if self.https else "http"
        return (
            f"DefaultEndpointsProtocol={scheme};AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_ACCOUNT_KEY};"
            f"BlobEndpoint={self.blob_url};QueueEndpoint={self.queue_url};TableEndpoint={self.table_url};"
        )


def start_azurite(
    location: Path,
    *,
    log_dir: Path,
    tls: TlsFiles | None,
    oauth: bool,
    ports: tuple[int, int, int] | None = None,
) -> tuple[ManagedProcess, AzuriteEndpoints]:
    """Azurite blob/queue/table. `oauth=True` needs `tls` (Azurite only accepts bearer tokens over HTTPS)."""
    if oauth and tls is None:
        raise ValueError("Azurite --oauth basic requires HTTPS certificates")
    if not AZURITE_BIN.exists():
        raise FileNotFoundError(f"{AZURITE_BIN} is missing: run `npm ci` (make setup does)")
    blob_port, queue_port, table_port = ports or tuple(free_ports(3))
    location.mkdir(parents=True, exist_ok=True)
    argv = [
        str(AZURITE_BIN),
        "--disableTelemetry",
        "--skipApiVersionCheck",
        "--silent",
        "--location",
        str(location),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(blob_port),
        "--queueHost",
        "127.0.0.1",
        "--queuePort",
        str(queue_port),
        "--tableHost",
        "127.0.0.1",
        "--tablePort",
        str(table_port),
    ]
    if tls is not None:
        argv += ["--cert", str(tls.server_cert), "--key", str(tls.server_key)]
    if oauth:
        argv += ["--oauth", "basic"]
    process = start_process(
        "azurite", argv, log_dir=log_dir, ready_ports=(blob_port, queue_port, table_port), timeout=60
    )
    scheme = "https" if tls is not None else "http"
    endpoints = AzuriteEndpoints(
        blob_url=f"{scheme}://127.0.0.1:{blob_port}/{AZURITE_ACCOUNT}",
        queue_url=f"{scheme}://127.0.0.1:{queue_port}/{AZURITE_ACCOUNT}",
        table_url=f"{scheme}://127.0.0.1:{table_port}/{AZURITE_ACCOUNT}",
        https=tls is not None,
        ca_file=tls.ca_cert if tls is not None else None,
        location=location,
    )
    return process, endpoints


@dataclass(frozen=True)
class MsiEndpoint:
    identity_endpoint: str
    identity_header: str
    stats_url: str


def start_msi_emulator(
    *, log_dir: Path, port: int | None = None, client_ids: Sequence[str] = ()
) -> tuple[ManagedProcess, MsiEndpoint]:
    port = port or free_port()
    header = DEFAULT_IDENTITY_HEADER + "-" + secrets.token_hex(8)
    argv = python_module_argv("devtools.msi_emulator", "--port", str(port), "--identity-header", header)
    for client_id in client_ids:
        argv += ["--client-id", client_id]
    process = start_process("msi-emulator", argv, log_dir=log_dir, ready_ports=(port,))
    base = f"http://127.0.0.1:{port}"
    return process, MsiEndpoint(f"{base}/msi/token", header, f"{base}/_emulator/stats")


@dataclass(frozen=True)
class AoaiEndpoint:
    endpoint: str  # what AZURE_OPENAI_ENDPOINT is set to, e.g. https://127.0.0.1:7081
    admin_url: str  # the emulator's /_emulator/ API
    api_key: str | None
    ca_file: Path | None


def start_aoai_emulator(
    *,
    log_dir: Path,
    port: int | None = None,
    api_key: str | None = None,
    tls: TlsFiles | None = None,
    extra_args: Sequence[str] = (),
) -> tuple[ManagedProcess, AoaiEndpoint]:
    port = port or free_port()
    argv = python_module_argv(
        "devtools.aoai_emulator", "--host", "127.0.0.1", "--port", str(port), *extra_args
    )
    if api_key:
        argv.append(f"--api-key={api_key}")  # "=": a key may start with "-"
    if tls is not None:
        argv += ["--tls-cert", str(tls.server_cert), "--tls-key", str(tls.server_key)]
    process = start_process("aoai-emulator", argv, log_dir=log_dir, ready_ports=(port,))
    scheme = "https" if tls is not None else "http"
    base = f"{scheme}://127.0.0.1:{port}"
    return process, AoaiEndpoint(base, f"{base}/_emulator", api_key, tls.ca_cert if tls else None)


@dataclass(frozen=True)
class DevhostEndpoint:
    base_url: str  # e.g. http://127.0.0.1:7071 (routes are under {base_url}/api)
    function_key: str


def start_devhost(
    *,
    log_dir: Path,
    port: int | None = None,
    app: str = "function_app:app",
    settings: Mapping[str, str],
    function_key: str,
    extra_env: Mapping[str, str] | None = None,
    script_root: Path = REPO_ROOT,
    extra_args: Sequence[str] = (),
) -> tuple[ManagedProcess, DevhostEndpoint]:
    """The dev host (devtools/devhost) serving `app` from `script_root` (its host.json).

    `settings` reach the app as environment variables, which win over the script root's
    local.settings.json(.example), as with `func start`. The key travels in the environment
    (DEVHOST_FUNCTION_KEY), not on the command line. Ready when the port accepts connections.
    """
    port = port or free_port()
    env = {**settings, "DEVHOST_FUNCTION_KEY": function_key, **(extra_env or {})}
    argv = python_module_argv(
        "devtools.devhost", "--host", "127.0.0.1", "--port", str(port), "--app", app,
        "--script-root", str(script_root), *extra_args,
    )  # fmt: skip
    process = start_process("devhost", argv, log_dir=log_dir, env=env, ready_ports=(port,), timeout=60)
    return process, DevhostEndpoint(f"http://127.0.0.1:{port}", function_key)
