"""What the Functions host reads before it starts the app: local.settings.json, host.json and the app
settings the host itself acts on (FUNCTIONS_REQUEST_BODY_SIZE_LIMIT)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOCAL_SETTINGS_FILE = "local.settings.json"
LOCAL_SETTINGS_EXAMPLE_FILE = "local.settings.json.example"
HOST_JSON_FILE = "host.json"


class DevhostConfigError(ValueError):
    """A settings or host.json problem that stops the dev host at start (the message names it)."""


# --- local.settings.json -------------------------------------------------------------------------


def find_local_settings(script_root: Path, explicit: Path | None) -> Path | None:
    """The settings file to read: `explicit` if given (must exist), else local.settings.json in the
    script root, else local.settings.json.example there, else none."""
    if explicit is not None:
        if not explicit.is_file():
            raise DevhostConfigError(f"settings file {explicit} does not exist")
        return explicit
    for name in (LOCAL_SETTINGS_FILE, LOCAL_SETTINGS_EXAMPLE_FILE):
        candidate = script_root / name
        if candidate.is_file():
            return candidate
    return None


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object from a file (BOM allowed, as the Functions tools write them), or a clear error."""
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DevhostConfigError(f"{path}: not readable JSON ({error})") from error
    if not isinstance(document, dict):
        raise DevhostConfigError(f"{path}: expected a JSON object")
    return document


def load_local_settings(path: Path) -> dict[str, str]:
    """The `Values` of a local.settings.json file, as strings (numbers and booleans are converted)."""
    document = read_json_object(path)
    if document.get("IsEncrypted") is True:
        raise DevhostConfigError(f"{path}: IsEncrypted is true; the dev host reads plain values only")
    values = document.get("Values", {})
    if not isinstance(values, dict):
        raise DevhostConfigError(f"{path}: Values must be an object")
    settings: dict[str, str] = {}
    for name, value in values.items():
        if isinstance(value, bool):
            settings[name] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            settings[name] = str(value)
        elif value is None:
            continue
        else:
            raise DevhostConfigError(f"{path}: Values.{name} must be a string")
    return settings


def apply_settings(values: Mapping[str, str], environ: MutableMapping[str, str]) -> list[str]:
    """Put `values` into `environ` where the name is not already set; return the names skipped.

    Like `func start`: a variable already in the environment wins over local.settings.json (Core
    Tools prints "Skipping '<name>' from local.settings.json as it's already defined in current
    environment variables"). That is also how tests and `make up` inject settings.
    """
    skipped: list[str] = []
    for name, value in values.items():
        if name in environ:
            skipped.append(name)
        else:
            environ[name] = value
    return skipped


# --- app settings the host itself reads --------------------------------------------------------------

# azure-functions-host: EnvironmentSettingNames.FunctionsRequestBodySizeLimit, read by
# HttpRequestBodySizeMiddleware into Kestrel's IHttpMaxRequestBodySizeFeature; the default is
# ScriptConstants.DefaultMaxRequestBodySize (100 MB). learn.microsoft.com: functions-app-settings.
REQUEST_BODY_LIMIT_SETTING = "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"
DEFAULT_REQUEST_BODY_LIMIT = 104_857_600
# long.TryParse with NumberStyles.Integer: white space around, an optional sign, ASCII digits.
_DOTNET_LONG = re.compile(r"^[ \t\n\v\f\r]*([+-]?[0-9]+)[ \t\n\v\f\r]*$")
_LONG_RANGE = range(-(2**63), 2**63)


def request_body_limit(environ: Mapping[str, str]) -> int:
    """FUNCTIONS_REQUEST_BODY_SIZE_LIMIT in bytes, as the host reads it: a value that is not a long
    leaves the default. A negative one stops the start (Kestrel refuses it: in Azure every request
    would fail)."""
    match = _DOTNET_LONG.match(environ.get(REQUEST_BODY_LIMIT_SETTING) or "")
    if match is None or int(match.group(1)) not in _LONG_RANGE:
        return DEFAULT_REQUEST_BODY_LIMIT
    limit = int(match.group(1))
    if limit < 0:
        raise DevhostConfigError(f"{REQUEST_BODY_LIMIT_SETTING} must not be negative (it is {limit})")
    return limit


# --- host.json ------------------------------------------------------------------------------------

_TIMESPAN = re.compile(r"^(?:(?P<days>\d+)\.)?(?P<hours>\d+):(?P<minutes>\d+):(?P<seconds>\d+(?:\.\d+)?)$")


def parse_timespan(text: str) -> float:
    """A .NET TimeSpan string (`[d.]hh:mm:ss[.fff]`) in seconds."""
    match = _TIMESPAN.match(text.strip())
    if match is None:
        raise DevhostConfigError(f"not a TimeSpan (expected [d.]hh:mm:ss[.fff]): {text!r}")
    days = int(match["days"] or 0)
    return days * 86400 + int(match["hours"]) * 3600 + int(match["minutes"]) * 60 + float(match["seconds"])


@dataclass(frozen=True)
class QueueOptions:
    """host.json `extensions.queues`, with the host's defaults (Consumption plan, one vCPU)."""

    max_polling_interval: float = 60.0
    visibility_timeout: float = 0.0
    batch_size: int = 16
    new_batch_threshold: int = 8
    max_dequeue_count: int = 5
    message_encoding: str = "base64"

    @property
    def visibility_timeout_seconds(self) -> int:
        """Storage takes whole seconds; round up so a failure never comes back earlier than asked."""
        return math.ceil(self.visibility_timeout)


MIN_POLLING_INTERVAL = 0.1  # the host's minimum (and first) back-off step


@dataclass(frozen=True)
class HostConfig:
    route_prefix: str = "api"
    queues: QueueOptions = field(default_factory=QueueOptions)
    function_timeout: float | None = None


def _section(document: Mapping[str, Any], *path: str) -> Mapping[str, Any]:
    current: Any = document
    for key in path:
        current = current.get(key, {}) if isinstance(current, Mapping) else {}
    if not isinstance(current, Mapping):
        raise DevhostConfigError(f"host.json: {'.'.join(path)} must be an object")
    return current


def _int_option(section: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = section.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DevhostConfigError(f"host.json: extensions.queues.{name} must be an integer in {low}..{high}")
    return value


def _timespan_option(section: Mapping[str, Any], name: str, default: float, where: str) -> float:
    value = section.get(name)
    if value is None:
        return default
    if not isinstance(value, str):
        raise DevhostConfigError(f"host.json: {where}{name} must be a TimeSpan string like 00:00:02")
    try:
        return parse_timespan(value)
    except DevhostConfigError as error:
        raise DevhostConfigError(f"host.json: {where}{name}: {error}") from error


def parse_host_json(document: Mapping[str, Any]) -> HostConfig:
    http = _section(document, "extensions", "http")
    route_prefix = http.get("routePrefix", "api")
    if not isinstance(route_prefix, str):
        raise DevhostConfigError("host.json: extensions.http.routePrefix must be a string")

    queues = _section(document, "extensions", "queues")
    batch_size = _int_option(queues, "batchSize", 16, 1, 32)
    encoding = queues.get("messageEncoding", "base64")
    if not isinstance(encoding, str) or encoding.lower() not in ("base64", "none"):
        raise DevhostConfigError('host.json: extensions.queues.messageEncoding must be "base64" or "none"')
    max_polling = _timespan_option(queues, "maxPollingInterval", 60.0, "extensions.queues.")
    queue_options = QueueOptions(
        max_polling_interval=max(max_polling, MIN_POLLING_INTERVAL),
        visibility_timeout=_timespan_option(queues, "visibilityTimeout", 0.0, "extensions.queues."),
        batch_size=batch_size,
        new_batch_threshold=_int_option(queues, "newBatchThreshold", batch_size // 2, 0, 10_000),
        max_dequeue_count=_int_option(queues, "maxDequeueCount", 5, 1, 10_000),
        message_encoding=encoding.lower(),
    )
    function_timeout = document.get("functionTimeout")
    timeout_seconds: float | None = None
    if function_timeout is not None and function_timeout != "-1":
        timeout_seconds = _timespan_option(document, "functionTimeout", 0.0, "")
    return HostConfig(
        route_prefix=route_prefix.strip("/"), queues=queue_options, function_timeout=timeout_seconds
    )


def load_host_json(script_root: Path) -> HostConfig:
    """host.json from the script root; the host's defaults when there is none."""
    path = script_root / HOST_JSON_FILE
    if not path.is_file():
        return HostConfig()
    document = read_json_object(path)
    return parse_host_json(document)
