"""Whatever a caller sends, the intake answers with a Submission or InvalidRequest — never another
exception (which the host would turn into a bare 500). Hypothesis draws the inputs, lone surrogates,
odd numbers and deep nesting included; no network (callback URLs are checked with a fake resolver)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagegen.core.intake import build_submission, check_idempotency_key
from imagegen.domain.callbacks import check_callback_url
from imagegen.domain.errors import InvalidRequest
from imagegen.domain.requests import (
    FLUX_1_1_PRO,
    FLUX_1_KONTEXT_PRO,
    GPT_IMAGE_2,
    ImageRequest,
    ModelRules,
    validate_image_request,
)
from imagegen.domain.settings import Settings
from imagegen.edges.http_body import parse_json_object

SETTINGS = Settings.from_env(
    {
        "AZURE_OPENAI_ENDPOINT": "https://my-aoai.openai.azure.com/",
        "AZURE_OPENAI_DEPLOYMENT": "gpt-image-2",
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    }
)

# Every code point, surrogates included (hypothesis leaves them out of text() by default), and the
# troublesome ones often: halves of a surrogate pair, a whole pair, NUL, a byte order mark.
ANY_TEXT = st.text(
    alphabet=st.characters(codec=None, exclude_categories=())
    | st.sampled_from(["\ud800", "\udfff", "\U0001f600", "\x00", "\ufeff", "\u00e9"]),
    max_size=40,
)
FIELD_NAMES = st.sampled_from(
    (
        *("prompt", "n", "size", "quality", "style", "background", "output_format", "user"),
        *("output_compression", "metadata", "callback_url", "idempotency_key", "colour"),
    )
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | ANY_TEXT
    | st.sampled_from(["1024x1024", "auto", "png", "jpeg", "hd", "transparent", "a red fox"])
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT | FIELD_NAMES, inner, max_size=4),
    max_leaves=12,
)
# Mostly valid requests, so that drawn values reach the later steps (hashing, metadata, callbacks).
NEARLY_VALID = st.fixed_dictionaries(
    {"prompt": ANY_TEXT.filter(str.strip)},
    optional={
        "n": st.integers(min_value=1, max_value=10) | SCALARS,
        "size": st.sampled_from(["1024x1024", "1536x1024", "auto"]) | SCALARS,
        "output_format": st.sampled_from(["png", "jpeg", "webp"]),
        "output_compression": st.integers(min_value=0, max_value=100),
        "metadata": st.dictionaries(ANY_TEXT, ANY_TEXT | SCALARS, max_size=3),
        "callback_url": ANY_TEXT | st.just("https://hooks.example.com/x"),
    },
)
DOCUMENTS = NEARLY_VALID | st.dictionaries(FIELD_NAMES | ANY_TEXT, JSON_VALUES, max_size=6) | JSON_VALUES


async def _intake(body: bytes) -> None:
    try:
        document = parse_json_object(body, "application/json")
        await build_submission(document, rules=GPT_IMAGE_2, settings=SETTINGS, idempotency_key=None)
    except InvalidRequest:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=DOCUMENTS)
async def test_any_json_document_is_a_submission_or_a_400(document: Any) -> None:
    await _intake(json.dumps(document).encode())  # ensure_ascii: lone surrogates become \ud800 escapes


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=300))
async def test_any_bytes_are_a_submission_or_a_400(body: bytes) -> None:
    await _intake(body)


@settings(max_examples=200, deadline=None)
@given(depth=st.integers(min_value=1, max_value=20_000), digits=st.integers(min_value=1, max_value=9_000))
async def test_deep_nesting_and_long_numbers_are_a_submission_or_a_400(depth: int, digits: int) -> None:
    await _intake(b'{"prompt": ' + b"[" * depth + b"]" * depth + b"}")
    await _intake(b'{"prompt": "a", "n": ' + b"1" * digits + b"}")


@settings(max_examples=300, deadline=None)
@given(key=ANY_TEXT | st.none())
def test_any_idempotency_key_is_accepted_or_a_400(key: str | None) -> None:
    try:
        accepted = check_idempotency_key(key)
    except InvalidRequest as error:
        refused_field = error.field
        assert refused_field == "Idempotency-Key"
    else:
        assert accepted == key


async def _public(host: str, port: int) -> list[str]:
    return ["93.184.216.34"]


URL_PIECES = st.sampled_from(
    (
        *("https://", "http://", "//", "[", "]", "::1", ":", "@", "..", ".", "-", "%", "example.com"),
        *("0", "/", "\n", " ", "\x00", "xn--", "a" * 64, "99999", "\ud800", "\u00e9"),
    )
)


@settings(max_examples=500, deadline=None)
@given(url=st.lists(URL_PIECES, max_size=8).map("".join) | ANY_TEXT)
async def test_any_callback_url_is_accepted_or_a_400(url: str) -> None:
    try:
        accepted = await check_callback_url(url, allow_local=False, resolver=_public)
    except InvalidRequest as error:
        refused_field = error.field
        assert refused_field == "callback_url"
    else:
        assert accepted == url


# --- the size grammar of models with a size rule ---------------------------------------------

SIZE_RULED = [GPT_IMAGE_2, FLUX_1_1_PRO, FLUX_1_KONTEXT_PRO]
EDGES = st.integers(min_value=1, max_value=5000)


def _within(rules: ModelRules, width: int, height: int) -> bool:
    """The rule, written out again from the docs' words (not by calling CustomSize)."""
    rule = rules.custom_size
    assert rule is not None
    long, short = max(width, height), min(width, height)
    return (
        width % rule.multiple_of == 0
        and height % rule.multiple_of == 0
        and short >= rule.min_edge
        and long <= rule.max_edge
        and long <= rule.max_ratio * short
        and rule.min_pixels <= width * height <= rule.max_pixels
    )


def _validated(size: str, rules: ModelRules) -> ImageRequest | InvalidRequest:
    try:
        return validate_image_request({"prompt": "a fox", "size": size}, rules)
    except InvalidRequest as error:
        return error


@settings(max_examples=400, deadline=None)
@given(rules=st.sampled_from(SIZE_RULED), width=EDGES, height=EDGES)
def test_a_size_is_accepted_exactly_when_it_is_within_the_models_rule(
    rules: ModelRules, width: int, height: int
) -> None:
    size = f"{width}x{height}"
    outcome = _validated(size, rules)
    if isinstance(outcome, InvalidRequest):
        assert size not in rules.sizes and not _within(rules, width, height), size
        assert outcome.field == "size"
        assert f"size {size}: " in outcome.message and rules.name in outcome.message
    else:
        assert outcome.size == size
        assert size in rules.sizes or _within(rules, width, height)


@settings(max_examples=200, deadline=None)
@given(rules=st.sampled_from(SIZE_RULED), text=ANY_TEXT | st.from_regex(r"\A[0-9]{1,6}[xX*][0-9]{1,6}\Z"))
def test_any_size_text_is_accepted_or_refused_naming_the_size(rules: ModelRules, text: str) -> None:
    outcome = _validated(text, rules)
    if isinstance(outcome, InvalidRequest):
        assert outcome.field == "size"
    else:
        width, _, height = outcome.size.partition("x")
        assert outcome.size in rules.sizes or _within(rules, int(width), int(height))


@settings(max_examples=100, deadline=None)
@given(
    multiple=st.integers(min_value=1, max_value=240),
    ratio=st.sampled_from([(1, 1), (16, 9), (9, 16), (3, 1), (1, 3), (4, 3)]),
)
def test_gpt_image_2_takes_every_multiple_of_16_in_its_bounds(multiple: int, ratio: tuple[int, int]) -> None:
    width, height = 16 * multiple * ratio[0], 16 * multiple * ratio[1]
    accepted = not isinstance(_validated(f"{width}x{height}", GPT_IMAGE_2), InvalidRequest)
    assert accepted == _within(GPT_IMAGE_2, width, height)
