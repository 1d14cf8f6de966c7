"""Start, watch and stop the local stack's processes (shared by `make up` and the tests)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import psutil

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct free ports: all sockets stay bound until every port is chosen, so the OS
    cannot hand the same port out twice."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def listening_ports(pid: int) -> set[int]:
    """TCP ports a process (or one of its children) listens on."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return set()
    ports: set[int] = set()
    for process in processes:
        try:
            connections = process.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        ports.update(c.laddr.port for c in connections if c.status == psutil.CONN_LISTEN)
    return ports


class ProcessStartError(RuntimeError):
    """A stack process exited or did not become ready in time."""


@dataclass
class ManagedProcess:
    """A child process with its log file; `stop()` ends its whole process group."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def kill(self) -> None:
        """Simulate a crash: SIGKILL, no clean-up."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()


def open_private_log(path: Path) -> BinaryIO:
    """`path` for appending, readable and writable by its owner only (0600): a log can hold what a
    process was sent. A file left from an earlier run is made private before anything is added; a
    symlink in its place is refused."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        return os.fdopen(fd, "ab")
    except BaseException:
        os.close(fd)
        raise


def start_process(
    name: str,
    argv: Sequence[str],
    *,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    ready_ports: Sequence[int] = (),
    timeout: float = 30.0,
    cwd: Path = REPO_ROOT,
) -> ManagedProcess:
    """Start `argv` in its own process group, logging to `log_dir/<name>.log`, and wait until ready.

    Ready means this process (or a child) listens on every port in `ready_ports`.
    """
    log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    with open_private_log(log_path) as log_file:
        popen = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    process = ManagedProcess(name=name, popen=popen, log_path=log_path)
    deadline = time.monotonic() + timeout
    while True:
        if not process.alive():
            raise ProcessStartError(
                f"{name} exited with {popen.returncode}; log:\n{process.log_text()[-4000:]}"
            )
        # The ports must be ours: another process that grabbed a port first would also "answer".
        if set(ready_ports) <= listening_ports(popen.pid):
            return process
        if time.monotonic() > deadline:
            process.stop()
            raise ProcessStartError(f"{name} not ready after {timeout}s; log:\n{process.log_text()[-4000:]}")
        time.sleep(0.05)


def python_module_argv(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
