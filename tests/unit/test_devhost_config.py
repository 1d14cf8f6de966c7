"""local.settings.json and host.json as the dev host reads them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from devtools.devhost.config import (
    DevhostConfigError,
    HostConfig,
    QueueOptions,
    apply_settings,
    find_local_settings,
    load_host_json,
    load_local_settings,
    parse_host_json,
    parse_timespan,
    request_body_limit,
)
from imagegen.domain.requests import MAX_BODY_BYTES


def write_settings(path: Path, values: dict[str, object], encrypted: bool = False) -> Path:
    path.write_text(json.dumps({"IsEncrypted": encrypted, "Values": values}))
    return path


def test_local_settings_wins_over_example_and_explicit_path_wins_over_both(tmp_path: Path) -> None:
    assert find_local_settings(tmp_path, None) is None
    example = write_settings(tmp_path / "local.settings.json.example", {"A": "example"})
    assert find_local_settings(tmp_path, None) == example
    local = write_settings(tmp_path / "local.settings.json", {"A": "local"})
    assert find_local_settings(tmp_path, None) == local
    explicit = write_settings(tmp_path / "other.json", {"A": "other"})
    assert find_local_settings(tmp_path, explicit) == explicit
    with pytest.raises(DevhostConfigError, match="does not exist"):
        find_local_settings(tmp_path, tmp_path / "missing.json")


def test_values_are_strings(tmp_path: Path) -> None:
    path = write_settings(tmp_path / "s.json", {"S": "x", "N": 3, "B": True, "Z": None})
    assert load_local_settings(path) == {"S": "x", "N": "3", "B": "true"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not readable JSON"),
        ("[]", "expected a JSON object"),
        (json.dumps({"IsEncrypted": True, "Values": {}}), "IsEncrypted"),
        (json.dumps({"Values": []}), "Values must be an object"),
        (json.dumps({"Values": {"X": {"nested": 1}}}), "Values.X"),
    ],
)
def test_bad_settings_files_are_named(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text(content)
    with pytest.raises(DevhostConfigError, match=message):
        load_local_settings(path)


def test_environment_wins_over_settings_file() -> None:
    environ = {"ALREADY": "from-env"}
    skipped = apply_settings({"ALREADY": "from-file", "NEW": "from-file"}, environ)
    assert environ == {"ALREADY": "from-env", "NEW": "from-file"}
    assert skipped == ["ALREADY"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("00:00:02", 2.0),
        ("00:01:00", 60.0),
        ("00:00:00.250", 0.25),
        ("1.02:00:00", 93600.0),
        ("10:00:00", 36000.0),
    ],
)
def test_timespan(text: str, seconds: float) -> None:
    assert parse_timespan(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["2s", "", "00:02", "a:b:c"])
def test_bad_timespan(text: str) -> None:
    with pytest.raises(DevhostConfigError):
        parse_timespan(text)


def test_host_json_defaults_match_the_host() -> None:
    config = parse_host_json({"version": "2.0"})
    assert config == HostConfig(route_prefix="api", queues=QueueOptions(), function_timeout=None)
    assert config.queues.max_polling_interval == 60.0
    assert config.queues.visibility_timeout == 0.0
    assert config.queues.batch_size == 16
    assert config.queues.new_batch_threshold == 8
    assert config.queues.max_dequeue_count == 5
    assert config.queues.message_encoding == "base64"


def test_host_json_queue_settings_and_derived_threshold() -> None:
    config = parse_host_json(
        {
            "functionTimeout": "00:10:00",
            "extensions": {
                "http": {"routePrefix": "/v1/"},
                "queues": {
                    "maxPollingInterval": "00:00:02",
                    "visibilityTimeout": "00:00:01.5",
                    "batchSize": 10,
                    "maxDequeueCount": 2,
                    "messageEncoding": "None",
                },
            },
        }
    )
    assert config.route_prefix == "v1"
    assert config.function_timeout == 600.0
    queues = config.queues
    assert (queues.max_polling_interval, queues.visibility_timeout) == (2.0, 1.5)
    assert queues.visibility_timeout_seconds == 2  # storage takes whole seconds: rounded up
    assert (queues.batch_size, queues.new_batch_threshold) == (10, 5)
    assert (queues.max_dequeue_count, queues.message_encoding) == (2, "none")


@pytest.mark.parametrize(
    ("queues", "message"),
    [
        ({"batchSize": 33}, "batchSize"),
        ({"batchSize": "16"}, "batchSize"),
        ({"maxDequeueCount": 0}, "maxDequeueCount"),
        ({"messageEncoding": "utf8"}, "messageEncoding"),
        ({"maxPollingInterval": 2}, "maxPollingInterval"),
        ({"visibilityTimeout": "soon"}, "visibilityTimeout"),
    ],
)
def test_bad_host_json_values_are_named(queues: dict[str, object], message: str) -> None:
    with pytest.raises(DevhostConfigError, match=message):
        parse_host_json({"extensions": {"queues": queues}})


def test_project_host_json_parses(tmp_path: Path) -> None:
    repo_root = Path(__file__).resolve().parents[2]
    config = load_host_json(repo_root)
    assert config.route_prefix == "api"
    assert load_host_json(tmp_path) == HostConfig()


# --- FUNCTIONS_REQUEST_BODY_SIZE_LIMIT -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "limit"),
    [
        (None, 104_857_600),  # ScriptConstants.DefaultMaxRequestBodySize
        ("327680", 327_680),
        (" 1024 ", 1024),  # long.TryParse: surrounding white space and a sign are fine
        ("+1024", 1024),
        ("0", 0),
        ("", 104_857_600),  # not a number: the host keeps its default
        ("invalid", 104_857_600),
        ("1_000", 104_857_600),
        ("1e6", 104_857_600),
        ("9223372036854775808", 104_857_600),  # beyond a long
    ],
)
def test_request_body_limit_is_read_like_the_host(value: str | None, limit: int) -> None:
    environ = {} if value is None else {"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": value}
    assert request_body_limit(environ) == limit


def test_a_negative_request_body_limit_stops_the_start() -> None:
    # Kestrel refuses a negative MaxRequestBodySize, so every request would fail in Azure.
    with pytest.raises(DevhostConfigError, match="FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"):
        request_body_limit({"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": "-1"})


def test_the_deployed_body_limit_is_a_little_above_the_apps_own() -> None:
    bicep = (Path(__file__).parents[2] / "infra" / "app" / "api.bicep").read_text()
    match = re.search(r"name: 'FUNCTIONS_REQUEST_BODY_SIZE_LIMIT'\s*\n\s*value: '(\d+)'", bicep)
    assert match, "infra/app/api.bicep sets FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"
    deployed = int(match.group(1))
    assert MAX_BODY_BYTES < deployed <= MAX_BODY_BYTES + 128 * 1024
