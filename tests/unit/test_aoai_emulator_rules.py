"""Azure OpenAI emulator, in-process: images, per-model validation, auth, faults, quota."""

from __future__ import annotations

import io
import time
from typing import Any

import pytest
from PIL import Image

from devtools.aoai_emulator.__main__ import build_parser, config_from_args
from devtools.aoai_emulator.auth import AuthError, authenticate
from devtools.aoai_emulator.errors import ApiError, rate_limited, retry_headers
from devtools.aoai_emulator.faults import FaultQueue, FaultSpecError, parse_fault
from devtools.aoai_emulator.images import render_image
from devtools.aoai_emulator.models import (
    DALL_E_2,
    DALL_E_3,
    FLUX_1_1_PRO,
    FLUX_1_KONTEXT_PRO,
    GPT_IMAGE,
    GPT_IMAGE_1_5,
    GPT_IMAGE_1_MINI,
    GPT_IMAGE_2,
    LEGACY,
    ModelRules,
    retirement_of,
    rules_for_model,
    usage,
    validate,
)
from devtools.aoai_emulator.state import (
    DEFAULT_DEPLOYMENTS,
    Config,
    ConfigError,
    QuotaDecision,
    QuotaWindow,
    window_capacity,
)
from devtools.tokens import mint_access_token

# ---- images ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "pil_format", "width", "height"),
    [
        ("png", "PNG", 1024, 1024),
        ("jpeg", "JPEG", 1536, 1024),
        ("webp", "WEBP", 1024, 1792),
        ("png", "PNG", 256, 256),
    ],
)
def test_render_image_has_requested_format_and_size(
    fmt: Any, pil_format: str, width: int, height: int
) -> None:
    data = render_image("a lighthouse", 0, width, height, output_format=fmt)
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == pil_format
        assert image.size == (width, height)


def test_render_image_transparent_background_has_alpha() -> None:
    data = render_image("a lighthouse", 0, 1024, 1024, transparent=True)
    with Image.open(io.BytesIO(data)) as image:
        assert image.mode == "RGBA"
        alpha = image.getchannel("A")
        low, high = alpha.getextrema()
        assert low == 0  # some of the background is transparent
        assert high == 255  # and the shapes are opaque


def test_render_image_differs_per_prompt_and_index_and_is_deterministic() -> None:
    first = render_image("a lighthouse", 0, 256, 256)
    assert render_image("a lighthouse", 0, 256, 256) == first
    assert render_image("a lighthouse", 1, 256, 256) != first
    assert render_image("a lantern", 0, 256, 256) != first


def test_render_image_is_fast() -> None:
    render_image("warm-up", 0, 1024, 1024)
    started = time.perf_counter()
    for index in range(5):
        render_image("a lighthouse", index, 1024, 1024)
    average = (time.perf_counter() - started) / 5
    assert average < 0.1  # well under 50 ms on a developer machine; generous for busy CI


def test_render_image_noise_is_incompressible_deterministic_and_fast() -> None:
    started = time.perf_counter()
    data = render_image("a lighthouse", 0, 1024, 1024, detail="noise")
    elapsed = time.perf_counter() - started
    assert len(data) > 3_000_000  # 1024*1024*3 raw bytes: zlib cannot shrink noise
    with Image.open(io.BytesIO(data)) as image:
        assert (image.format, image.size, image.mode) == ("PNG", (1024, 1024), "RGB")
    assert render_image("a lighthouse", 0, 1024, 1024, detail="noise") == data
    assert render_image("a lighthouse", 1, 64, 64, detail="noise") != render_image(
        "a lighthouse", 0, 64, 64, detail="noise"
    )
    assert len(render_image("a lighthouse", 0, 1024, 1024)) < 200_000  # smooth stays the default
    assert elapsed < 1.0  # ~0.1 s on a developer machine; generous for busy CI


def test_render_image_noise_in_other_formats() -> None:
    data = render_image("x", 0, 256, 256, output_format="webp", transparent=True, detail="noise")
    with Image.open(io.BytesIO(data)) as image:
        assert (image.format, image.mode) == ("WEBP", "RGBA")


def test_jpeg_compression_changes_size() -> None:
    small = render_image("x", 0, 512, 512, output_format="jpeg", compression=90)
    large = render_image("x", 0, 512, 512, output_format="jpeg", compression=0)
    assert len(small) < len(large)


# ---- validation --------------------------------------------------------------------------------

BAD_REQUESTS: list[tuple[ModelRules, dict[str, Any], str, str | None]] = [
    (GPT_IMAGE, {}, "missing_required_parameter", "prompt"),
    (GPT_IMAGE, {"prompt": ""}, "string_below_min_length", "prompt"),
    (GPT_IMAGE, {"prompt": 7}, "invalid_type", "prompt"),
    (GPT_IMAGE, {"prompt": "x" * 32001}, "string_above_max_length", "prompt"),
    (DALL_E_3, {"prompt": "x" * 4001}, "string_above_max_length", "prompt"),
    (DALL_E_2, {"prompt": "x" * 1001}, "string_above_max_length", "prompt"),
    (GPT_IMAGE, {"prompt": "p", "n": 0}, "integer_below_min_value", "n"),
    (GPT_IMAGE, {"prompt": "p", "n": 11}, "integer_above_max_value", "n"),
    (GPT_IMAGE, {"prompt": "p", "n": "2"}, "invalid_type", "n"),
    (DALL_E_3, {"prompt": "p", "n": 2}, "integer_above_max_value", "n"),
    (DALL_E_2, {"prompt": "p", "n": 11}, "integer_above_max_value", "n"),
    (LEGACY, {"prompt": "p", "n": 6}, "integer_above_max_value", "n"),
    (GPT_IMAGE, {"prompt": "p", "size": "1792x1024"}, "invalid_value", "size"),
    (DALL_E_3, {"prompt": "p", "size": "1024x1536"}, "invalid_value", "size"),
    (DALL_E_2, {"prompt": "p", "size": "1792x1024"}, "invalid_value", "size"),
    (LEGACY, {"prompt": "p", "size": "auto"}, "invalid_value", "size"),
    (GPT_IMAGE, {"prompt": "p", "quality": "hd"}, "invalid_value", "quality"),
    (DALL_E_3, {"prompt": "p", "quality": "high"}, "invalid_value", "quality"),
    (DALL_E_3, {"prompt": "p", "style": "moody"}, "invalid_value", "style"),
    (GPT_IMAGE, {"prompt": "p", "style": "vivid"}, "unknown_parameter", "style"),
    (DALL_E_2, {"prompt": "p", "style": "vivid"}, "unknown_parameter", "style"),
    (GPT_IMAGE, {"prompt": "p", "response_format": "url"}, "unknown_parameter", "response_format"),
    (DALL_E_3, {"prompt": "p", "response_format": "png"}, "invalid_value", "response_format"),
    (GPT_IMAGE, {"prompt": "p", "background": "green"}, "invalid_value", "background"),
    (
        GPT_IMAGE,
        {"prompt": "p", "background": "transparent", "output_format": "jpeg"},
        "invalid_value",
        "background",
    ),
    (GPT_IMAGE, {"prompt": "p", "output_format": "gif"}, "invalid_value", "output_format"),
    (GPT_IMAGE, {"prompt": "p", "output_compression": 50}, "invalid_value", "output_compression"),
    (
        GPT_IMAGE,
        {"prompt": "p", "output_format": "jpeg", "output_compression": 101},
        "integer_above_max_value",
        "output_compression",
    ),
    (DALL_E_3, {"prompt": "p", "output_format": "png"}, "unknown_parameter", "output_format"),
    (DALL_E_3, {"prompt": "p", "background": "opaque"}, "unknown_parameter", "background"),
    (GPT_IMAGE, {"prompt": "p", "colour": "red"}, "unknown_parameter", "colour"),
    (GPT_IMAGE, {"prompt": "p", "stream": True}, "invalid_value", "stream"),
    (FLUX_1_1_PRO, {}, "missing_required_parameter", "prompt"),
    (FLUX_1_1_PRO, {"prompt": "x" * 20_001}, "string_above_max_length", "prompt"),
    (FLUX_1_KONTEXT_PRO, {"prompt": "x" * 20_001}, "string_above_max_length", "prompt"),
    (FLUX_1_1_PRO, {"prompt": "p", "n": 2}, "integer_above_max_value", "n"),
    (FLUX_1_KONTEXT_PRO, {"prompt": "p", "n": 2}, "integer_above_max_value", "n"),
    (FLUX_1_1_PRO, {"prompt": "p", "n": 0}, "integer_below_min_value", "n"),
    (FLUX_1_1_PRO, {"prompt": "p", "quality": "high"}, "unknown_parameter", "quality"),
    (FLUX_1_1_PRO, {"prompt": "p", "background": "opaque"}, "unknown_parameter", "background"),
    (FLUX_1_1_PRO, {"prompt": "p", "style": "vivid"}, "unknown_parameter", "style"),
    (FLUX_1_1_PRO, {"prompt": "p", "response_format": "url"}, "unknown_parameter", "response_format"),
    (FLUX_1_1_PRO, {"prompt": "p", "output_compression": 0}, "unknown_parameter", "output_compression"),
    (FLUX_1_KONTEXT_PRO, {"prompt": "p", "moderation": "low"}, "unknown_parameter", "moderation"),
    (FLUX_1_KONTEXT_PRO, {"prompt": "p", "stream": False}, "unknown_parameter", "stream"),
    (FLUX_1_1_PRO, {"prompt": "p", "output_format": "webp"}, "invalid_value", "output_format"),
    (FLUX_1_1_PRO, {"prompt": "p", "size": "auto"}, "invalid_value", "size"),
    (FLUX_1_1_PRO, {"prompt": "p", "size": 1024}, "invalid_type", "size"),
    (FLUX_1_1_PRO, {"prompt": "p", "size": "1024*1024"}, "invalid_value", "size"),
]


@pytest.mark.parametrize(("rules", "body", "code", "param"), BAD_REQUESTS)
def test_validate_rejects_like_azure(
    rules: ModelRules, body: dict[str, Any], code: str, param: str | None
) -> None:
    with pytest.raises(ApiError) as caught:
        validate(body, rules, "model")
    error = caught.value
    assert error.status == 400
    assert error.code == code
    assert error.param == param
    assert error.body()["error"]["type"] == "invalid_request_error"


def test_validate_fills_defaults_per_model() -> None:
    gpt = validate({"prompt": "p", "model": "gpt-image-1"}, GPT_IMAGE, "gpt-image-1")
    assert (gpt.width, gpt.height, gpt.size) == (1024, 1024, "1024x1024")
    assert gpt.response_format == "b64_json"
    assert gpt.output_format == "png"
    dalle3 = validate({"prompt": "p"}, DALL_E_3, "dall-e-3")
    assert (dalle3.response_format, dalle3.quality, dalle3.style) == ("url", "standard", "vivid")
    dalle2 = validate({"prompt": "p", "n": 10, "size": "256x256"}, DALL_E_2, "dall-e-2")
    assert (dalle2.n, dalle2.width) == (10, 256)


def test_validate_accepts_the_documented_extremes() -> None:
    assert validate({"prompt": "x" * 32000, "n": 10}, GPT_IMAGE, "m").n == 10
    assert validate({"prompt": "p", "size": "1536x1024", "quality": "high"}, GPT_IMAGE, "m").width == 1536
    jpeg = validate({"prompt": "p", "output_format": "jpeg", "output_compression": 0}, GPT_IMAGE, "m")
    assert (jpeg.output_format, jpeg.output_compression) == ("jpeg", 0)
    with pytest.raises(ApiError):
        validate({"prompt": "p", "output_format": "webp"}, GPT_IMAGE, "m")
    assert validate({"prompt": "p", "n": 5}, LEGACY, "dall-e-2").n == 5


def test_usage_counts_tokens() -> None:
    request = validate({"prompt": "a" * 40, "n": 2, "quality": "low"}, GPT_IMAGE, "m")
    counted = usage(request)
    assert counted["input_tokens"] == 10
    assert counted["output_tokens"] == 2 * 272
    assert counted["total_tokens"] == counted["input_tokens"] + counted["output_tokens"]
    assert counted["input_tokens_details"] == {"image_tokens": 0, "text_tokens": 10}
    assert usage(validate({"prompt": "a"}, GPT_IMAGE, "m"))["input_tokens"] == 1  # at least one


def _output_tokens(rules: ModelRules, **body: Any) -> int:
    tokens: int = usage(validate({"prompt": "p", **body}, rules, "m"))["output_tokens"]
    return tokens


@pytest.mark.parametrize(
    ("size", "low", "medium", "high"),
    [("1024x1024", 272, 1056, 4160), ("1536x1024", 408, 1584, 6240), ("1024x1536", 408, 1584, 6240)],
)
@pytest.mark.parametrize("rules", [GPT_IMAGE_2, GPT_IMAGE_1_5, GPT_IMAGE_1_MINI], ids=["2", "1.5", "mini"])
def test_usage_matches_the_published_table(
    rules: ModelRules, size: str, low: int, medium: int, high: int
) -> None:
    counted = [_output_tokens(rules, size=size, quality=q) for q in ("low", "medium", "high")]
    assert counted == [low, medium, high]


def test_usage_grows_with_quality_size_and_n() -> None:
    by_quality = [_output_tokens(GPT_IMAGE_2, quality=q) for q in ("low", "medium", "high")]
    assert by_quality == sorted(set(by_quality))
    by_size = [
        _output_tokens(GPT_IMAGE_2, size=s) for s in ("1024x1024", "1536x1024", "2048x1152", "2048x2048")
    ]
    assert by_size == sorted(set(by_size))
    assert by_size[-1] == 4 * 4160  # 4 MP at high: four times the 1 MP figure
    assert _output_tokens(GPT_IMAGE_2, size="3840x2160") == round(4160 * 3840 * 2160 / 1024**2)
    assert _output_tokens(GPT_IMAGE_2, size="1024x640") == 4160  # below 1 MP: the 1 MP figure
    by_n = [_output_tokens(GPT_IMAGE_1_MINI, n=n) for n in (1, 2, 5)]
    assert by_n == [1056, 2 * 1056, 5 * 1056]


def test_usage_auto_quality_and_size_count_as_the_model_defaults() -> None:
    assert _output_tokens(GPT_IMAGE_2, quality="auto") == _output_tokens(GPT_IMAGE_2, quality="high") == 4160
    assert _output_tokens(GPT_IMAGE_2) == 4160  # quality defaults to high
    assert _output_tokens(GPT_IMAGE_1_5, quality="auto") == _output_tokens(GPT_IMAGE_1_5) == 4160
    assert _output_tokens(GPT_IMAGE_1_MINI, quality="auto") == _output_tokens(GPT_IMAGE_1_MINI) == 1056
    assert _output_tokens(GPT_IMAGE_1_5, size="auto", quality="low") == 272  # auto size bills as 1024x1024


# ---- FLUX and retired models -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "size"),
    [
        (FLUX_1_1_PRO, "1440x1152"),  # 1,658,880 pixels: under 1.6 MP
        (FLUX_1_1_PRO, "1440x256"),  # no aspect-ratio limit on FLUX1.1 [pro]
        (FLUX_1_1_PRO, "256x256"),
        (FLUX_1_KONTEXT_PRO, "1024x1024"),  # exactly 1 MP
        (FLUX_1_KONTEXT_PRO, "1344x576"),  # exactly 21:9
        (FLUX_1_KONTEXT_PRO, "576x1344"),
    ],
)
def test_flux_accepts_sizes_within_its_rule(rules: ModelRules, size: str) -> None:
    request = validate({"prompt": "p", "size": size}, rules, "m")
    assert f"{request.width}x{request.height}" == request.size == size


@pytest.mark.parametrize(
    ("rules", "size", "message"),
    [
        (FLUX_1_1_PRO, "1000x1024", "Both edges must be multiples of 32 pixels."),
        (FLUX_1_1_PRO, "224x1024", "Each edge must be between 256 and 1440 pixels."),
        (FLUX_1_1_PRO, "1472x1024", "Each edge must be between 256 and 1440 pixels."),
        (FLUX_1_1_PRO, "1440x1440", "The total pixel count must be at most 1,677,721 (1.6 MP)."),
        (FLUX_1_KONTEXT_PRO, "1440x1152", "The total pixel count must be at most 1,048,576 (1 MP)."),
        (FLUX_1_KONTEXT_PRO, "1440x544", "The aspect ratio must not exceed 21:9."),
        (FLUX_1_KONTEXT_PRO, "544x1440", "The aspect ratio must not exceed 21:9."),
        (FLUX_1_KONTEXT_PRO, "0x0", "Each edge must be between 256 and 1440 pixels."),
        (GPT_IMAGE_2, "1000x1000", "Both edges must be multiples of 16 pixels."),
        (GPT_IMAGE_2, "4096x2048", "The long edge must be at most 3840 pixels."),
        (GPT_IMAGE_2, "3840x1120", "The aspect ratio must not exceed 3:1."),
        (GPT_IMAGE_2, "1024x512", "The total pixel count must be between 655,360 and 8,294,400."),
    ],
)
def test_size_rules_name_the_rule_broken(rules: ModelRules, size: str, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        validate({"prompt": "p", "size": size}, rules, "m")
    assert (caught.value.code, caught.value.param) == ("invalid_value", "size")
    assert caught.value.message == f"Invalid size '{size}'. {message}"


def test_flux_defaults_and_accepted_parameters() -> None:
    request = validate(
        {"prompt": "x" * 20_000, "n": 1, "model": "whatever", "user": "u", "output_format": "jpeg"},
        FLUX_1_1_PRO,
        "FLUX-1.1-pro",
    )
    assert (request.size, request.n, request.response_format) == ("1024x1024", 1, "url")
    assert (request.output_format, request.quality, request.background) == ("jpeg", None, None)
    assert validate({"prompt": "p"}, FLUX_1_KONTEXT_PRO, "m").output_format == "png"
    with pytest.raises(ApiError) as caught:
        validate({"prompt": "x" * 20_001}, FLUX_1_1_PRO, "m")
    assert "at most 5000 tokens" in caught.value.message


def test_rules_and_retirements_by_model_name() -> None:
    assert rules_for_model("FLUX-1.1-pro") is FLUX_1_1_PRO
    assert rules_for_model("flux.1-kontext-pro") is FLUX_1_KONTEXT_PRO
    assert rules_for_model("gpt-image-1.5") is GPT_IMAGE_1_5
    assert rules_for_model("FLUX.2-pro") is None  # only the two FLUX models of the Image API
    for model, retired in (
        ("gpt-image-1", "2026-10-23"),
        ("DALL-E-3", "2026-03-04"),
        ("dall-e-2", "2025-01-27"),
    ):
        retirement = retirement_of(model)
        assert retirement is not None
        assert (retirement.retired, retirement.replacement) == (retired, "gpt-image-2")
    for live in ("gpt-image-2", "gpt-image-1.5", "gpt-image-1-mini", "FLUX-1.1-pro", "FLUX.1-Kontext-pro"):
        assert retirement_of(live) is None
        assert DEFAULT_DEPLOYMENTS[live] == live
    assert {"gpt-image-1", "dall-e-3", "dall-e-2"} <= set(DEFAULT_DEPLOYMENTS)  # kept, to answer 410


# ---- auth --------------------------------------------------------------------------------------


def _token(resource: str = "https://cognitiveservices.azure.com", lifetime: int = 600, **kw: Any) -> str:
    token, _ = mint_access_token(resource=resource, client_id=None, lifetime_seconds=lifetime, **kw)
    return token


def test_api_key_accepted_and_wrong_key_refused() -> None:
    assert authenticate({"api-key": "k"}, api_key="k") == "api-key"
    with pytest.raises(AuthError) as caught:
        authenticate({"api-key": "nope"}, api_key="k")
    assert caught.value.body() == {"error": {"code": "401", "message": caught.value.message}}
    assert caught.value.message.startswith("Access denied due to invalid subscription key")


def test_keys_refused_when_no_key_is_configured() -> None:
    with pytest.raises(AuthError):
        authenticate({"api-key": ""}, api_key=None)


@pytest.mark.parametrize(
    "resource", ["https://cognitiveservices.azure.com/.default", "https://ai.azure.com/"]
)
def test_bearer_tokens_for_accepted_audiences(resource: str) -> None:
    assert authenticate({"Authorization": f"Bearer {_token(resource)}"}, api_key=None) == "bearer"


@pytest.mark.parametrize(
    "token",
    [
        _token("https://storage.azure.com"),
        _token(now=time.time() - 7200, lifetime=3600),
        _token(now=time.time() + 3600),  # not valid yet
        "not-a-jwt",
    ],
    ids=["wrong-audience", "expired", "not-before", "garbage"],
)
def test_bad_bearer_tokens_are_unauthorized(token: str) -> None:
    with pytest.raises(AuthError) as caught:
        authenticate({"Authorization": f"Bearer {token}"}, api_key="k")
    assert caught.value.status == 401
    assert caught.value.code == "Unauthorized"
    assert caught.value.kind == "invalid-token"


def test_missing_credentials_and_denied_principal() -> None:
    with pytest.raises(AuthError) as missing:
        authenticate({}, api_key="k")
    assert missing.value.code == "401"
    token = _token()
    from devtools.tokens import read_claims

    oid = read_claims(token)["oid"]
    with pytest.raises(AuthError) as denied:
        authenticate({"Authorization": f"Bearer {token}"}, api_key=None, denied_object_ids=[oid])
    assert denied.value.code == "PermissionDenied"


# ---- faults, quota, config ---------------------------------------------------------------------


def test_fault_queue_fires_for_the_next_n_matching_calls() -> None:
    queue = FaultQueue()
    queue.add(parse_fault({"kind": "500", "count": 2, "scope": "poll"}))
    queue.add(parse_fault({"kind": "truncated"}))
    assert queue.take("generate", "d") is None
    first = queue.take("poll", None)
    assert first is not None
    assert first.kind == "500"
    assert queue.take("poll", None) is not None
    assert queue.take("poll", None) is None
    truncated = queue.take("download", None)
    assert truncated is not None
    assert truncated.kind == "truncated"
    assert queue.pending() == []


def test_fault_scoped_to_a_deployment() -> None:
    queue = FaultQueue()
    queue.add(parse_fault({"kind": "429", "deployment": "a"}))
    assert queue.take("generate", "b") is None
    assert queue.take("generate", "a") is not None


@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "418"},
        {"kind": "500", "count": 0},
        {"kind": "500", "scope": "admin"},
        {"kind": "500", "x": 1},
        [],
    ],
)
def test_bad_fault_specs_are_refused(spec: object) -> None:
    with pytest.raises(FaultSpecError):
        parse_fault(spec)


@pytest.mark.parametrize(
    ("rpm", "capacity"), [(0, 0), (1, 1), (5, 1), (6, 1), (11, 1), (12, 2), (60, 10), (61, 10), (600, 100)]
)
def test_window_capacity_is_a_sixth_of_rpm_at_least_one(rpm: int, capacity: int) -> None:
    assert window_capacity(rpm) == capacity


def _admitted(decision: QuotaDecision | None) -> QuotaDecision:
    assert decision is not None
    assert decision.retry_after is None, decision
    return decision


def _refused(decision: QuotaDecision | None) -> float:
    assert decision is not None
    assert decision.retry_after is not None, decision
    assert decision.remaining == 0
    return decision.retry_after


def test_quota_window_admits_capacity_requests_per_sliding_ten_seconds() -> None:
    quota = QuotaWindow()
    # RPM 18: 3 requests in any 10 s span.
    assert _admitted(quota.admit("d", 18, now=100.0)) == QuotaDecision(limit=3, remaining=2, retry_after=None)
    assert _admitted(quota.admit("d", 18, now=102.0)).remaining == 1
    assert _admitted(quota.admit("d", 18, now=105.0)).remaining == 0
    assert _refused(quota.admit("d", 18, now=106.0)) == pytest.approx(4.0)  # t=100 leaves at 110
    assert _refused(quota.admit("d", 18, now=109.5)) == pytest.approx(0.5)
    # Sliding, not fixed: at 110 only the request of t=100 has left, so exactly one more fits.
    assert _admitted(quota.admit("d", 18, now=110.0)).remaining == 0
    assert _refused(quota.admit("d", 18, now=110.0)) == pytest.approx(2.0)  # next to leave: t=102
    assert _admitted(quota.admit("d", 18, now=112.0)).remaining == 0
    assert _admitted(quota.admit("d", 18, now=115.0)).remaining == 0  # t=105 left
    assert _admitted(quota.admit("d", 18, now=130.0)).remaining == 2  # all gone


def test_quota_window_refusals_do_not_count() -> None:
    quota = QuotaWindow()
    assert _admitted(quota.admit("d", 6, now=0.0)).limit == 1
    for now in (1.0, 2.0, 5.0, 9.0, 9.999):  # hammering while full does not push the window back
        _refused(quota.admit("d", 6, now=now))
    assert _admitted(quota.admit("d", 6, now=10.0)).remaining == 0


def test_quota_window_is_per_key_and_none_means_no_quota() -> None:
    quota = QuotaWindow()
    _admitted(quota.admit("a", 6, now=0.0))
    _refused(quota.admit("a", 6, now=1.0))
    _admitted(quota.admit("b", 6, now=1.0))  # another deployment has its own window
    _admitted(quota.admit("legacy", 6, now=1.0))
    assert quota.admit("a", None, now=1.0) is None  # no quota: nothing counted, no headers
    quota.clear()
    _admitted(quota.admit("a", 6, now=1.0))


def test_quota_window_zero_rpm_always_throttles_for_a_minute() -> None:
    quota = QuotaWindow()
    for now in (0.0, 30.0, 3600.0):
        assert quota.admit("d", 0, now=now) == QuotaDecision(limit=0, remaining=0, retry_after=60.0)


def test_quota_window_uses_its_clock_and_handles_a_lowered_quota() -> None:
    clock = [50.0]
    quota = QuotaWindow(clock=lambda: clock[0])
    for _ in range(5):
        _admitted(quota.admit("d", 60))  # capacity 10, all at t=50
    clock[0] = 53.0
    _admitted(quota.admit("d", 60))  # 6 in the window
    # Lowered to RPM 12 (capacity 2): room again once only one remains, i.e. when the five at t=50 left.
    assert _refused(quota.admit("d", 12)) == pytest.approx(7.0)
    clock[0] = 60.0
    assert _admitted(quota.admit("d", 12)) == QuotaDecision(limit=2, remaining=0, retry_after=None)


def test_config_rpm_for_prefers_the_deployment_override() -> None:
    config = Config()
    assert config.rpm_for("gpt-image-2") is None  # default: no quota
    config.update({"requests_per_minute": 60, "deployment_requests_per_minute": {"slow": 6, "legacy": 0}})
    assert config.rpm_for("gpt-image-2") == 60
    assert config.rpm_for("slow") == 6
    assert config.rpm_for("legacy") == 0
    config.update({"requests_per_minute": None})
    assert config.rpm_for("gpt-image-2") is None
    assert config.rpm_for("slow") == 6  # an override applies without a global quota too
    assert config.to_json()["deployment_requests_per_minute"] == {"slow": 6, "legacy": 0}


@pytest.mark.parametrize(
    ("seconds", "whole", "millis"),
    [
        (3.2, "4", "3200"),
        (110.0 - 106.8, "4", "3200"),
        (1.5, "2", "1500"),
        (60.0, "60", "60000"),
        (0.0004, "1", "1"),
        (2.0001, "3", "2001"),
        (0.0, "1", "1"),
    ],
)
def test_retry_headers_round_up(seconds: float, whole: str, millis: str) -> None:
    assert retry_headers(seconds) == {"retry-after": whole, "retry-after-ms": millis}


def test_rate_limited_carries_extra_headers_and_azure_body() -> None:
    error = rate_limited(3.2, "Images_Generations", "2025-04-01-preview", {"x-ratelimit-limit-requests": "2"})
    assert error.status == 429
    assert error.headers == {"x-ratelimit-limit-requests": "2", "retry-after": "4", "retry-after-ms": "3200"}
    assert error.body()["error"]["code"] == "429"
    assert "API version 2025-04-01-preview" in error.message
    assert "Please retry after 4 seconds." in error.message


def test_config_update_is_checked_and_all_or_nothing() -> None:
    config = Config()
    assert config.image_detail == "smooth"
    config.update({"latency_seconds": 0, "deployments": {"img": "FLUX-1.1-pro"}, "image_detail": "noise"})
    assert config.deployments == {"img": "FLUX-1.1-pro"}
    assert config.to_json()["image_detail"] == "noise"
    with pytest.raises(ConfigError):
        config.update({"latency_seconds": 1, "deployments": {"chat": "gpt-4o"}})
    assert config.latency_seconds == 0.0
    for bad in (
        {"nope": 1},
        {"latency_seconds": -1},
        {"content_filter_words": "x"},
        {"requests_per_minute": 1.5},
        {"requests_per_minute": -1},
        {"requests_per_minute": True},
        {"deployment_requests_per_minute": {"d": -1}},
        {"deployment_requests_per_minute": {"d": None}},
        {"deployment_requests_per_minute": {"": 6}},
        {"deployment_requests_per_minute": [6]},
        {"images_per_minute": 10},  # replaced by requests_per_minute
        {"image_detail": "grainy"},
        {"image_detail": None},
    ):
        with pytest.raises(ConfigError):
            config.update(bad)


def test_image_detail_flag() -> None:
    assert config_from_args(build_parser().parse_args([])).image_detail == "smooth"
    assert config_from_args(build_parser().parse_args(["--image-detail", "noise"])).image_detail == "noise"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--image-detail", "grainy"])


def test_requests_per_minute_and_region_flags() -> None:
    defaults = config_from_args(build_parser().parse_args([]))
    assert (defaults.requests_per_minute, defaults.deployment_requests_per_minute) == (None, {})
    assert defaults.region == "swedencentral"
    args = build_parser().parse_args(["--requests-per-minute", "30", "--region", "westus3"])
    config = config_from_args(args)
    assert (config.requests_per_minute, config.region) == (30, "westus3")
    assert config_from_args(build_parser().parse_args(["--requests-per-minute", "0"])).rpm_for("d") == 0
    with pytest.raises(ValueError, match="requests_per_minute"):
        config_from_args(build_parser().parse_args(["--requests-per-minute", "-1"]))
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--images-per-minute", "3"])
