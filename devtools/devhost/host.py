"""Command line and lifecycle: settings → app import → index → HTTP server + queue listeners."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from devtools.devhost.auth import FunctionKeys
from devtools.devhost.config import (
    REQUEST_BODY_LIMIT_SETTING,
    DevhostConfigError,
    HostConfig,
    apply_settings,
    find_local_settings,
    load_host_json,
    load_local_settings,
    request_body_limit,
)
from devtools.devhost.connections import ConnectionSettingError, QueueServices
from devtools.devhost.easyauth import EasyAuth, easy_auth_from_environment
from devtools.devhost.functions import FunctionIndex, FunctionIndexError, index_functions, load_app
from devtools.devhost.http_server import HttpHost
from devtools.devhost.logsafety import scrub_handler
from devtools.devhost.queues import DEFAULT_MESSAGE_LEASE_SECONDS, QueueListener, QueueOutputs
from devtools.devhost.routing import RouteTemplateError

log = logging.getLogger("devhost")

FUNCTION_KEY_VARIABLE = "DEVHOST_FUNCTION_KEY"
MASTER_KEY_VARIABLE = "DEVHOST_MASTER_KEY"
LEASE_VARIABLE = "DEVHOST_QUEUE_LEASE_SECONDS"
DRAIN_VARIABLE = "DEVHOST_DRAIN_SECONDS"
DEFAULT_DRAIN_SECONDS = 5.0


@dataclass(frozen=True)
class DevhostOptions:
    host: str
    port: int
    app: str
    script_root: Path
    settings_file: Path | None
    keys: FunctionKeys
    message_lease_seconds: int
    drain_seconds: float


def parse_arguments(argv: Sequence[str], environ: dict[str, str]) -> DevhostOptions:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.devhost",
        description="Serve a Python v2-model function app's HTTP routes and queue triggers like the Functions host.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7071, help="port to listen on (default 7071)")
    parser.add_argument("--app", default="function_app:app", help="module:attribute of the FunctionApp")
    parser.add_argument(
        "--script-root", type=Path, default=Path("."), help="folder with host.json and the app"
    )
    parser.add_argument(
        "--settings", type=Path, default=None,
        help="settings file (default: <script root>/local.settings.json, else local.settings.json.example)",
    )  # fmt: skip
    parser.add_argument(
        "--function-key", default=None, help=f"key for function-level routes (or ${FUNCTION_KEY_VARIABLE})"
    )
    parser.add_argument(
        "--master-key", default=None,
        help=f"key for admin-level routes, also accepted by function-level ones (or ${MASTER_KEY_VARIABLE}; "
        "default: the function key)",
    )  # fmt: skip
    parser.add_argument(
        "--queue-lease-seconds", type=int, default=None,
        help=f"visibility a received message gets while its function runs, renewed at half "
        f"(or ${LEASE_VARIABLE}; default {DEFAULT_MESSAGE_LEASE_SECONDS}, like the host)",
    )  # fmt: skip
    parser.add_argument(
        "--drain-seconds", type=float, default=None,
        help=f"on SIGTERM, how long in-flight invocations may finish (or ${DRAIN_VARIABLE}; "
        f"default {DEFAULT_DRAIN_SECONDS})",
    )  # fmt: skip
    arguments = parser.parse_args(list(argv))
    function_key = arguments.function_key or environ.get(FUNCTION_KEY_VARIABLE) or None
    master_key = arguments.master_key or environ.get(MASTER_KEY_VARIABLE) or function_key
    try:
        lease = arguments.queue_lease_seconds or int(
            environ.get(LEASE_VARIABLE) or DEFAULT_MESSAGE_LEASE_SECONDS
        )
        drain = arguments.drain_seconds
        if drain is None:
            drain = float(environ.get(DRAIN_VARIABLE) or DEFAULT_DRAIN_SECONDS)
    except ValueError as error:
        parser.error(f"{LEASE_VARIABLE} / {DRAIN_VARIABLE}: {error}")
    return DevhostOptions(
        host=arguments.host,
        port=arguments.port,
        app=arguments.app,
        script_root=arguments.script_root.resolve(),
        settings_file=arguments.settings.resolve() if arguments.settings else None,
        keys=FunctionKeys(function_key=function_key, master_key=master_key),
        message_lease_seconds=max(1, lease),
        drain_seconds=max(0.0, drain),
    )


ACCESS_LOGGER = "aiohttp.access"


def configure_logging() -> None:
    """Everything at INFO, azure-core's per-request lines included: they show URLs with every query
    value but `api-version` REDACTED (so no SAS signature) and only allow-listed headers (so no
    Authorization). aiohttp's access log stays off: it would print query strings (`?code=`). What
    aiohttp and asyncio log loses every exception message (it may quote the request): logsafety."""
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stdout,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    for handler in logging.getLogger().handlers:
        scrub_handler(handler)
    logging.getLogger(ACCESS_LOGGER).setLevel(logging.WARNING)


def load_settings_into_environment(options: DevhostOptions) -> None:
    """local.settings.json Values → os.environ (variables already set win), before the app import."""
    settings_path = find_local_settings(options.script_root, options.settings_file)
    if settings_path is None:
        log.info("no local.settings.json(.example) in %s: using the environment only", options.script_root)
        return
    values = load_local_settings(settings_path)
    skipped = apply_settings(values, os.environ)
    log.info("settings: %d values from %s", len(values) - len(skipped), settings_path)
    for name in skipped:
        log.info("skipping %r from %s: already set in the environment", name, settings_path.name)


def _describe_routes(http_host: HttpHost, index: FunctionIndex, base_url: str) -> None:
    for entry in http_host.routes:
        methods = ",".join(sorted(entry.methods)) if entry.methods else "*"
        function = entry.endpoint
        log.info(
            "  %s: [%s] %s/%s (%s)",
            function.name,
            methods,
            base_url,
            entry.template.text,
            function.auth_level,
        )
    for queue_function in index.queue:
        log.info(
            "  %s: queueTrigger %s (%s)",
            queue_function.name,
            queue_function.queue_name,
            queue_function.connection,
        )


class Devhost:
    def __init__(
        self,
        options: DevhostOptions,
        config: HostConfig,
        index: FunctionIndex,
        *,
        max_body_bytes: int,
        easy_auth: EasyAuth | None = None,
    ) -> None:
        self.options = options
        self.config = config
        self.index = index
        self.services = QueueServices(os.environ)
        self.outputs = QueueOutputs(self.services, config.queues.message_encoding)
        self.http = HttpHost(
            index.http,
            config.route_prefix,
            options.keys,
            self.outputs,
            max_body_bytes=max_body_bytes,
            easy_auth=easy_auth,
        )
        self.listeners: list[QueueListener] = []
        self.abandoned = 0

    def check_connections(self) -> None:
        """Every queue binding's connection must resolve now, as the host checks at indexing."""
        names = {f.connection for f in self.index.queue}
        invokers = [f.invoker for f in self.index.queue] + [f.invoker for f in self.index.http]
        names |= {binding.connection for invoker in invokers for binding in invoker.queue_outputs}
        for name in sorted(names):
            self.services.service(name)  # builds the client now: a bad setting stops the start
            log.info("storage connection %s", self.services.spec(name).description)

    async def serve(self, stop: asyncio.Event) -> None:
        options = self.options
        runner = self.http.runner()
        await runner.setup()
        site = web.TCPSite(runner, options.host, options.port, shutdown_timeout=options.drain_seconds)
        await site.start()
        base_url = f"http://{options.host}:{options.port}"
        log.info("dev host listening on %s (script root %s)", base_url, options.script_root)
        log.info("%s: request bodies up to %d bytes", REQUEST_BODY_LIMIT_SETTING, self.http.max_body_bytes)
        if options.keys.function_key is None:
            log.warning(
                "no function key (--function-key or $%s): function- and admin-level routes answer 401",
                FUNCTION_KEY_VARIABLE,
            )
        _describe_routes(self.http, self.index, base_url)
        self.listeners = [
            QueueListener(
                function,
                self.services,
                self.outputs,
                self.config.queues,
                message_lease_seconds=options.message_lease_seconds,
            )
            for function in self.index.queue
        ]
        polling = [
            asyncio.create_task(listener.run(), name=listener.function.name) for listener in self.listeners
        ]
        try:
            await stop.wait()
        finally:
            log.info("stopping: no new messages; in-flight work gets %.1fs", options.drain_seconds)
            for listener in self.listeners:
                listener.stop()
            if polling:
                _, still_polling = await asyncio.wait(polling, timeout=5)
                for task in still_polling:
                    task.cancel()
            drained = await asyncio.gather(
                *(listener.drain(options.drain_seconds) for listener in self.listeners)
            )
            self.abandoned = sum(drained)
            if self.abandoned:
                log.warning(
                    "abandoned %d queue invocation(s): their messages reappear when their lease ends",
                    self.abandoned,
                )
            await runner.cleanup()
            await self.services.close()


def build(argv: Sequence[str]) -> Devhost:
    options = parse_arguments(argv, dict(os.environ))
    load_settings_into_environment(options)
    max_body_bytes = request_body_limit(os.environ)  # the host reads its own settings from there too
    config = load_host_json(options.script_root)
    os.chdir(options.script_root)  # the host runs the app with the script root as working folder
    app = load_app(options.app, options.script_root)
    index = index_functions(app, timeout=config.function_timeout, environ=os.environ)
    devhost = Devhost(
        options,
        config,
        index,
        max_body_bytes=max_body_bytes,
        easy_auth=easy_auth_from_environment(os.environ),
    )
    devhost.check_connections()
    return devhost


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging()
    try:
        devhost = build(sys.argv[1:] if argv is None else argv)
    except (DevhostConfigError, FunctionIndexError, RouteTemplateError, ConnectionSettingError) as error:
        log.error("dev host cannot start: %s", error)
        return 2
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    stop = asyncio.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, stop.set)
    try:
        loop.run_until_complete(devhost.serve(stop))
    except OSError as error:
        log.error("dev host cannot listen on %s:%d: %s", devhost.options.host, devhost.options.port, error)
        return 2
    if devhost.abandoned:
        # Sync functions still running on threads cannot be stopped; leave like a crash would.
        logging.shutdown()
        os._exit(0)
    with contextlib.suppress(RuntimeError):
        loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()
    log.info("dev host stopped")
    return 0
