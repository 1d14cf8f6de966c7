"""One request-field table: the client (its own distribution, which cannot import the app) and the CLI
must offer exactly the fields the table defines, with the flags the table names."""

from __future__ import annotations

import inspect

from imagegen_client import AsyncImageGenClient, ImageGenClient
from imagegen_client import cli as client_cli

from imagegen.domain.requests import REQUEST_FIELD_TABLE, REQUEST_FIELDS, ImageRequest

# What the client's generate() takes besides the request fields: the body-level callback, the
# Idempotency-Key header, and how to wait.
CLIENT_EXTRAS = {"callback_url", "idempotency_key", "timeout", "on_progress"}


def test_the_request_dataclass_has_exactly_the_tables_fields() -> None:
    assert tuple(ImageRequest.__dataclass_fields__) == REQUEST_FIELDS


def test_both_clients_take_exactly_the_tables_fields() -> None:
    for client in (ImageGenClient, AsyncImageGenClient):
        parameters = set(inspect.signature(client.generate).parameters) - {"self"}
        assert parameters - CLIENT_EXTRAS == set(REQUEST_FIELDS), client.__name__


def test_the_cli_has_the_flags_the_table_names_and_they_reach_the_field() -> None:
    actions = {
        flag: action for action in client_cli.build_parser()._actions for flag in action.option_strings
    }
    flagged = [entry for entry in REQUEST_FIELD_TABLE if entry.cli_flag is not None]
    assert flagged
    for entry in flagged:
        assert entry.cli_flag in actions, entry.name
        assert actions[entry.cli_flag].dest in (entry.name, entry.name.replace("_", "")), entry.name
