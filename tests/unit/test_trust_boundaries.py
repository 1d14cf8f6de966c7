"""Inputs at the app's doors, tried as an attacker or a careless caller would (each was a bug first)."""

from __future__ import annotations

import base64
import json
import logging

import azure.functions as func
import pytest

from imagegen.domain.callbacks import check_callback_url
from imagegen.domain.errors import InvalidRequest, SettingsError
from imagegen.domain.logtext import escaped
from imagegen.domain.requests import GPT_IMAGE_2, validate_image_request
from imagegen.domain.settings import Settings
from imagegen.edges.http_api import error_response

ENV = {
    "AZURE_OPENAI_ENDPOINT": "https://my-aoai.openai.azure.com/",
    "AZURE_OPENAI_DEPLOYMENT": "gpt-image-2",
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
}


def _whsec(size: int) -> str:
    return "whsec_" + base64.b64encode(b"k" * size).decode()


# --- WEBHOOK_SECRET ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret",
    [
        "whsec_",  # an empty key: anyone can forge the signature
        "whsec_!!!not-base64!!!",  # started, then every delivery failed forever
        _whsec(8),  # too short (Standard Webhooks: 24-64 bytes)
        _whsec(65),
        "short plain text",
    ],
)
def test_a_weak_or_malformed_webhook_secret_stops_start_up(secret: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**ENV, "WEBHOOK_SECRET": secret})
    assert caught.value.name == "WEBHOOK_SECRET"
    assert secret.removeprefix("whsec_")[:6] not in str(caught.value) or secret == "whsec_"


@pytest.mark.parametrize("secret", [_whsec(24), _whsec(32), _whsec(64), "a plain-text secret of 32 bytes!"])
def test_a_sound_webhook_secret_starts(secret: str) -> None:
    assert Settings.from_env({**ENV, "WEBHOOK_SECRET": secret}).webhook_secret == secret


# --- the callback guard ------------------------------------------------------------------------


async def _public(host: str, port: int) -> list[str]:
    return ["93.184.216.34"]


@pytest.mark.parametrize(
    "url",
    [
        "https://[2002:7f00:1::]/hook",  # 6to4 embedding 127.0.0.1
        "https://[2002:a9fe:a9fe::1]/hook",  # 6to4 embedding 169.254.169.254
        "https://[2002:0a00:0001::]/hook",  # 6to4 embedding 10.0.0.1
        "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hook",  # Teredo
    ],
)
async def test_tunnelled_ipv6_literals_cannot_reach_inside(url: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await check_callback_url(url, allow_local=False, resolver=_public)
    assert caught.value.field == "callback_url"


# --- prompts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("prompt", ["\u200b\u200b", "\u200b \u2060\ufeff", "\u200d\u00ad\u180e"])
def test_a_prompt_of_only_invisible_characters_is_refused(prompt: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        validate_image_request({"prompt": prompt}, GPT_IMAGE_2)
    assert caught.value.field == "prompt"


def test_a_prompt_with_a_zero_width_joiner_inside_words_is_fine() -> None:
    assert validate_image_request({"prompt": "a fox\u200dcub"}, GPT_IMAGE_2).prompt == "a fox\u200dcub"


# --- answers that carry SAS links ----------------------------------------------------------------


def test_json_answers_are_not_sniffed_or_cached() -> None:
    response = error_response(InvalidRequest("bad", field="n"))
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


# --- logs --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hostile",
    [
        "job\r\n2026-12-02 INFO forged line",
        "\x1b[31mred\x1b[0m",
        "tab\there",
        "\u2028line separator",
    ],
)
def test_values_from_outside_are_logged_escaped(hostile: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    logging.getLogger("imagegen.test").info("job %s dropped", escaped(hostile))
    [line] = caplog.records
    text = line.getMessage()
    assert "\n" not in text and "\r" not in text and "\x1b" not in text and "\u2028" not in text
    assert "\t" not in text


def test_escaping_cuts_long_values_and_keeps_plain_ones_readable() -> None:
    assert escaped("4f1c-ok") == "4f1c-ok"
    assert len(escaped("x" * 10_000)) < 200


# --- image-requests messages ---------------------------------------------------------------------


class PoisonRecorder:
    """The service surface the image-requests trigger uses, recording what it did."""

    def __init__(self, *, reused: bool = False) -> None:
        from imagegen.domain.settings import Settings as RealSettings

        self.settings = RealSettings.from_env(ENV)
        self.rules = GPT_IMAGE_2
        self.poisoned: list[tuple[str, dict[str, object]]] = []
        self.submitted = 0
        self._reused = reused

    async def reject_request_message(self, text: str, error: InvalidRequest) -> None:
        self.poisoned.append((text, error.to_json()))

    async def submit_async(self, submission: object) -> object:
        self.submitted += 1
        if self._reused:
            from imagegen.domain.errors import IdempotencyKeyReused

            raise IdempotencyKeyReused("this Idempotency-Key was used with a different request body")
        raise AssertionError("not expected")


def _context(service: PoisonRecorder) -> object:
    from imagegen.edges.context import HandlerContext

    return HandlerContext(settings=lambda: service.settings, service=lambda: service)  # type: ignore[arg-type,return-value]


async def test_a_queue_request_that_is_not_utf8_goes_to_poison_with_the_reason() -> None:
    from imagegen.edges.queue_triggers import accept_image_request

    service = PoisonRecorder()
    body = b'{"prompt": "a \xff\xfe fox"}'
    await accept_image_request(func.QueueMessage(id="m-1", body=body), _context(service))  # type: ignore[arg-type]
    assert service.submitted == 0
    [(_, error)] = service.poisoned
    assert error["code"] == "invalid_request" and "UTF-8" in str(error["message"])


async def test_a_queue_request_whose_key_was_used_for_another_body_goes_to_poison_at_once() -> None:
    from imagegen.edges.queue_triggers import accept_image_request

    service = PoisonRecorder(reused=True)
    message = func.QueueMessage(
        id="m-2", body=json.dumps({"prompt": "a fox", "idempotency_key": "k"}).encode()
    )
    await accept_image_request(message, _context(service))  # type: ignore[arg-type]
    [(_, error)] = service.poisoned
    assert error["code"] == "idempotency_key_reused"


# --- the URLs a job's JSON and Location carry ----------------------------------------------------


def test_the_public_api_base_is_a_setting_and_links_default_to_relative() -> None:
    assert Settings.from_env(ENV).api_base == "/api"  # no setting: relative, never a Host header
    settings = Settings.from_env({**ENV, "PUBLIC_API_BASE": "https://my-app.azurewebsites.net/api/"})
    assert settings.api_base == "https://my-app.azurewebsites.net/api"


@pytest.mark.parametrize(
    "value", ["my-app.azurewebsites.net/api", "https://my-app.azurewebsites.net/api?x=1", "https://u:p@h/api"]
)
def test_a_public_api_base_that_is_not_a_plain_url_stops_start_up(value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**ENV, "PUBLIC_API_BASE": value})
    assert caught.value.name == "PUBLIC_API_BASE"


def test_the_sdk_log_level_is_a_setting_that_quiets_the_azure_loggers() -> None:
    from imagegen import wiring

    azure_logger = logging.getLogger("azure")
    before = azure_logger.level
    try:
        wiring.configure_logging(Settings.from_env({**ENV, "AZURE_SDK_LOG_LEVEL": "warning"}))
        assert azure_logger.level == logging.WARNING
        assert not logging.getLogger("azure.core.pipeline.policies.http_logging_policy").isEnabledFor(
            logging.INFO
        )
    finally:
        azure_logger.setLevel(before)
    with pytest.raises(SettingsError):
        Settings.from_env({**ENV, "AZURE_SDK_LOG_LEVEL": "chatty"})


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("http://127.0.0.1:7071//api/playground", "/api"),  # was "//api": a host name to the browser
        ("http://127.0.0.1:7071///evil.example/playground", "/evil.example"),
        ("http://127.0.0.1:7071/api//playground", "/api"),
        ("http://127.0.0.1:7071/a%2F%2Fb/playground", "/api"),  # anything not a plain path: the default
    ],
)
def test_the_playgrounds_api_base_is_always_a_path_on_its_own_origin(url: str, base: str) -> None:
    from imagegen.edges import playground

    found = playground.api_base_for(url)
    assert found == base
    assert not found.startswith("//")


async def test_a_job_id_from_a_message_is_logged_escaped(caplog: pytest.LogCaptureFixture) -> None:
    from tests.unit.fakes import World

    caplog.set_level(logging.WARNING)
    service = World().instance("worker")
    forged = "00000000-0000-4000-8000-000000000000\r\n2026-12-02 ERROR forged"
    await service.handle_job_message(forged)
    await service.handle_poisoned_job_message(forged, 5)
    lines = [record.getMessage() for record in caplog.records]
    assert lines and all("\n" not in line and "\r" not in line for line in lines)
