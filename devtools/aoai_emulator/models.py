"""Per-model request rules (sizes, n, prompt length, quality, style, formats), retirements and validation.

Error codes and messages follow the OpenAI front end that Azure OpenAI serves for the image models
(`invalid_request_error` type; codes `missing_required_parameter`, `unknown_parameter`,
`invalid_type`, `invalid_value`, `string_above_max_length`, `string_below_min_length`,
`integer_above_max_value`, `integer_below_min_value`), always naming the parameter in `param`.

FLUX facts: MicrosoftDocs/azure-ai-docs articles/foundry/foundry-models/includes/use-foundry-models-flux.md
(ms.date 03/23/2026). Retirements: articles/foundry/openai/includes/concepts-model-retirements-content.md
(ms.date 10/05/2026: a retired model's inference requests return `410 Gone`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal, cast

from devtools.aoai_emulator.errors import ApiError, invalid
from devtools.aoai_emulator.images import OutputFormat

Family = Literal["gpt-image", "dall-e-3", "dall-e-2", "legacy", "flux"]
ResponseFormat = Literal["b64_json", "url"]


@dataclass(frozen=True)
class SizeRule:
    """Any WIDTHxHEIGHT within bounds, instead of a list of sizes."""

    multiple: int  # both edges
    min_edge: int | None  # None: only the long edge is bounded (by max_edge)
    max_edge: int
    max_ratio: tuple[int, int] | None  # long:short at most
    min_pixels: int | None
    max_pixels: int
    max_pixels_label: str | None = None  # how messages name max_pixels ("1.6 MP")
    accepts_auto: bool = False

    def problem(self, width: int, height: int) -> str | None:
        """The first rule the size breaks, as a sentence; None when it fits."""
        long, short = max(width, height), min(width, height)
        if width % self.multiple or height % self.multiple:
            return f"Both edges must be multiples of {self.multiple} pixels."
        if self.min_edge is None and long > self.max_edge:
            return f"The long edge must be at most {self.max_edge} pixels."
        if self.min_edge is not None and not (self.min_edge <= short and long <= self.max_edge):
            return f"Each edge must be between {self.min_edge} and {self.max_edge} pixels."
        if self.max_ratio is not None:
            wide, narrow = self.max_ratio
            if short == 0 or long * narrow > wide * short:
                return f"The aspect ratio must not exceed {wide}:{narrow}."
        pixels = width * height
        if self.min_pixels is not None and not self.min_pixels <= pixels <= self.max_pixels:
            return f"The total pixel count must be between {self.min_pixels:,} and {self.max_pixels:,}."
        if pixels > self.max_pixels:
            label = f" ({self.max_pixels_label})" if self.max_pixels_label else ""
            return f"The total pixel count must be at most {self.max_pixels:,}{label}."
        return None


@dataclass(frozen=True)
class ModelRules:
    family: Family
    max_prompt: int  # in prompt_unit
    n_max: int
    sizes: tuple[str, ...]
    default_size: str
    qualities: tuple[str, ...] | None  # None: the parameter is unknown to this model
    default_quality: str | None
    styles: tuple[str, ...] | None
    response_formats: tuple[str, ...] | None
    default_response_format: ResponseFormat
    output_options: bool  # background, output_compression, moderation, stream
    output_formats: tuple[str, ...] | None = None  # None: output_format is unknown to this model
    size_rule: SizeRule | None = None  # any WxH within its bounds, besides `sizes`
    auto_quality: str = "medium"  # what quality "auto" bills as (usage)
    prompt_unit: Literal["characters", "tokens"] = "characters"  # tokens: estimated as characters / 4

    @property
    def known_parameters(self) -> frozenset[str]:
        names = {"prompt", "n", "size", "user", "model"}
        if self.qualities is not None:
            names.add("quality")
        if self.styles is not None:
            names.add("style")
        if self.response_formats is not None:
            names.add("response_format")
        if self.output_formats is not None:
            names.add("output_format")
        if self.output_options:
            names |= {"background", "output_compression", "moderation", "stream"}
        return frozenset(names)


GPT_IMAGE = ModelRules(
    family="gpt-image",
    max_prompt=32000,
    n_max=10,
    sizes=("1024x1024", "1024x1536", "1536x1024", "auto"),
    default_size="auto",
    qualities=("low", "medium", "high", "auto"),
    default_quality="auto",
    styles=None,
    response_formats=None,
    default_response_format="b64_json",
    output_options=True,
    output_formats=("png", "jpeg"),
)
# gpt-image-2 (2026-04-21): its own size rule, quality defaults to high, no webp on Azure.
GPT_IMAGE_2 = replace(
    GPT_IMAGE,
    sizes=("auto",),
    default_quality="high",
    auto_quality="high",
    size_rule=SizeRule(
        multiple=16,
        min_edge=None,
        max_edge=3840,
        max_ratio=(3, 1),
        min_pixels=655_360,
        max_pixels=8_294_400,
        accepts_auto=True,
    ),
)
GPT_IMAGE_1_5 = replace(GPT_IMAGE, auto_quality="high")
GPT_IMAGE_1_MINI = replace(GPT_IMAGE, auto_quality="medium")
# FLUX through the Image API: one PNG (or JPEG) a call, answered as a URL; 5,000 tokens of prompt.
FLUX_1_1_PRO = ModelRules(
    family="flux",
    max_prompt=5000,
    prompt_unit="tokens",
    n_max=1,
    sizes=(),
    default_size="1024x1024",
    qualities=None,
    default_quality=None,
    styles=None,
    response_formats=None,
    default_response_format="url",
    output_options=False,
    output_formats=("png", "jpeg"),
    size_rule=SizeRule(
        multiple=32,
        min_edge=256,
        max_edge=1440,
        max_ratio=None,
        min_pixels=None,
        max_pixels=1_677_721,
        max_pixels_label="1.6 MP",
    ),
)
FLUX_1_KONTEXT_PRO = replace(
    FLUX_1_1_PRO,
    size_rule=SizeRule(
        multiple=32,
        min_edge=256,
        max_edge=1440,
        max_ratio=(21, 9),
        min_pixels=None,
        max_pixels=1_048_576,
        max_pixels_label="1 MP",
    ),
)
DALL_E_3 = ModelRules(
    family="dall-e-3",
    max_prompt=4000,
    n_max=1,
    sizes=("1024x1024", "1792x1024", "1024x1792"),
    default_size="1024x1024",
    qualities=("standard", "hd"),
    default_quality="standard",
    styles=("vivid", "natural"),
    response_formats=("url", "b64_json"),
    default_response_format="url",
    output_options=False,
)
DALL_E_2 = ModelRules(
    family="dall-e-2",
    max_prompt=1000,
    n_max=10,
    sizes=("256x256", "512x512", "1024x1024"),
    default_size="1024x1024",
    qualities=("standard",),
    default_quality="standard",
    styles=None,
    response_formats=("url", "b64_json"),
    default_response_format="url",
    output_options=False,
)
# The quickstart's asynchronous API (api-version 2023-06-01-preview): dall-e-2 rules, n up to 5, URLs only.
LEGACY = ModelRules(
    family="legacy",
    max_prompt=1000,
    n_max=5,
    sizes=("256x256", "512x512", "1024x1024"),
    default_size="1024x1024",
    qualities=None,
    default_quality=None,
    styles=None,
    response_formats=("url",),
    default_response_format="url",
    output_options=False,
)


_RULES_BY_MODEL: dict[str, ModelRules] = {
    "gpt-image-2": GPT_IMAGE_2,
    "gpt-image-1.5": GPT_IMAGE_1_5,
    "gpt-image-1-mini": GPT_IMAGE_1_MINI,
    "flux-1.1-pro": FLUX_1_1_PRO,
    "flux.1-kontext-pro": FLUX_1_KONTEXT_PRO,
    "dall-e-3": DALL_E_3,
    "dall-e-2": DALL_E_2,
}


def rules_for_model(model: str) -> ModelRules | None:
    """Rules by model name (a deployment's model); None for a model that is not an image model."""
    name = model.lower()
    if name in _RULES_BY_MODEL:
        return _RULES_BY_MODEL[name]
    if name.startswith("gpt-image"):
        return GPT_IMAGE
    return None


@dataclass(frozen=True)
class Retirement:
    model: str
    retired: str  # ISO date
    replacement: str


RETIREMENTS: dict[str, Retirement] = {
    item.model: item
    for item in (
        Retirement("gpt-image-1", "2026-10-23", "gpt-image-2"),
        Retirement("dall-e-3", "2026-03-04", "gpt-image-2"),
        Retirement("dall-e-2", "2025-01-27", "gpt-image-2"),
    )
}


def retirement_of(model: str) -> Retirement | None:
    """The retirement of a deployment's model (matched whole: gpt-image-1.5 is not gpt-image-1)."""
    return RETIREMENTS.get(model.lower())


@dataclass(frozen=True)
class ImageRequest:
    """A validated generation request with every default filled in."""

    model: str
    rules: ModelRules
    prompt: str
    n: int
    size: str  # as the response reports it ("auto" resolved)
    width: int
    height: int
    quality: str | None
    style: str | None
    response_format: ResponseFormat
    output_format: OutputFormat
    output_compression: int | None
    background: str | None
    user: str | None


def _supported(value: object, allowed: tuple[str, ...], param: str) -> str:
    if not isinstance(value, str):
        raise invalid(
            "invalid_type",
            f"Invalid type for '{param}': expected a string, but got {_kind(value)} instead.",
            param,
        )
    if value not in allowed:
        choices = ", ".join(f"'{a}'" for a in allowed)
        raise invalid("invalid_value", f"Invalid value: '{value}'. Supported values are: {choices}.", param)
    return value


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _integer(value: object, param: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(
            "invalid_type",
            f"Invalid type for '{param}': expected an integer, but got {_kind(value)} instead.",
            param,
        )
    if value < low:
        raise invalid(
            "integer_below_min_value",
            f"Invalid '{param}': integer below minimum value. Expected a value >= {low}, but got {value} instead.",
            param,
        )
    if value > high:
        raise invalid(
            "integer_above_max_value",
            f"Invalid '{param}': integer above maximum value. Expected a value <= {high}, but got {value} instead.",
            param,
        )
    return value


def _prompt(body: dict[str, Any], rules: ModelRules) -> str:
    if "prompt" not in body or body["prompt"] is None:
        raise invalid("missing_required_parameter", "Missing required parameter: 'prompt'.", "prompt")
    prompt = body["prompt"]
    if not isinstance(prompt, str):
        raise invalid(
            "invalid_type",
            f"Invalid type for 'prompt': expected a string, but got {_kind(prompt)} instead.",
            "prompt",
        )
    if not prompt:
        raise invalid(
            "string_below_min_length",
            "Invalid 'prompt': string too short. Expected a string with minimum length 1, but got an empty "
            "string instead.",
            "prompt",
        )
    if rules.prompt_unit == "tokens":
        if len(prompt) > 4 * rules.max_prompt:
            raise invalid(
                "string_above_max_length",
                f"Invalid 'prompt': string too long. Expected a prompt of at most {rules.max_prompt} tokens, "
                f"but got about {-(-len(prompt) // 4)} tokens ({len(prompt)} characters) instead.",
                "prompt",
            )
    elif len(prompt) > rules.max_prompt:
        raise invalid(
            "string_above_max_length",
            f"Invalid 'prompt': string too long. Expected a string with maximum length {rules.max_prompt}, "
            f"but got a string with length {len(prompt)} instead.",
            "prompt",
        )
    return prompt


def _output_options(body: dict[str, Any], rules: ModelRules) -> tuple[OutputFormat, int | None, str | None]:
    if rules.output_formats is None:
        return "png", None, None
    output_format = cast(
        OutputFormat, _supported(body.get("output_format", "png"), rules.output_formats, "output_format")
    )
    if not rules.output_options:
        return output_format, None, None
    background = _supported(body.get("background", "auto"), ("transparent", "opaque", "auto"), "background")
    if background == "transparent" and output_format == "jpeg":
        raise invalid(
            "invalid_value",
            "Transparent background is not supported for output_format 'jpeg'; use 'png' or 'webp'.",
            "background",
        )
    compression: int | None = None
    if body.get("output_compression") is not None:
        compression = _integer(body["output_compression"], "output_compression", 0, 100)
        if output_format == "png":
            raise invalid(
                "invalid_value",
                "output_compression is only supported for output_format 'jpeg' and 'webp', not 'png'.",
                "output_compression",
            )
    if "moderation" in body:
        _supported(body["moderation"], ("low", "auto"), "moderation")
    if body.get("stream") not in (None, False):
        raise invalid(
            "invalid_value", "The local emulator does not support streaming image generation.", "stream"
        )
    return output_format, compression, background


def validate(body: object, rules: ModelRules, model: str) -> ImageRequest:
    """Check a request body against a model's rules, in the order Azure reports problems."""
    if not isinstance(body, dict):
        raise ApiError(
            400,
            "invalid_json",
            "The request body must be a JSON object.",
            param=None,
            type="invalid_request_error",
        )
    for name in body:
        if name not in rules.known_parameters:
            raise invalid("unknown_parameter", f"Unknown parameter: '{name}'.", name)
    prompt = _prompt(body, rules)
    n = _integer(body["n"], "n", 1, rules.n_max) if body.get("n") is not None else 1
    requested = body.get("size", rules.default_size)
    rule = rules.size_rule
    if rule is not None and isinstance(requested, str) and not (requested == "auto" and rule.accepts_auto):
        size = _free_size(requested, rule)
    else:
        size = _supported(requested, rules.sizes, "size")
    if size == "auto":
        size = "1024x1024"
    width, height = (int(part) for part in size.split("x"))
    quality = None
    if rules.qualities is not None:
        quality = _supported(body.get("quality", rules.default_quality), rules.qualities, "quality")
    style = None
    if rules.styles is not None:
        style = _supported(body.get("style", "vivid"), rules.styles, "style")
    response_format: ResponseFormat = rules.default_response_format
    if rules.response_formats is not None and body.get("response_format") is not None:
        response_format = cast(
            ResponseFormat, _supported(body["response_format"], rules.response_formats, "response_format")
        )
    output_format, compression, background = _output_options(body, rules)
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise invalid(
            "invalid_type",
            f"Invalid type for 'user': expected a string, but got {_kind(user)} instead.",
            "user",
        )
    return ImageRequest(
        model=model,
        rules=rules,
        prompt=prompt,
        n=n,
        size=size,
        width=width,
        height=height,
        quality=quality,
        style=style,
        response_format=response_format,
        output_format=output_format,
        output_compression=compression,
        background=background,
        user=user,
    )


def _free_size(size: str, rule: SizeRule) -> str:
    """A WIDTHxHEIGHT size checked against a model's size rule (400 naming the rule it breaks)."""
    width_text, sep, height_text = size.partition("x")
    if not sep or not width_text.isdigit() or not height_text.isdigit() or len(size) > 11:
        shape = "'auto' or WIDTHxHEIGHT" if rule.accepts_auto else "WIDTHxHEIGHT"
        raise invalid("invalid_value", f"Invalid value: '{size[:40]}'. Size must be {shape}.", "size")
    problem = rule.problem(int(width_text), int(height_text))
    if problem is None:
        return size
    raise invalid("invalid_value", f"Invalid size '{size}'. {problem}", "size")


# Output tokens per image of about one megapixel (1024x1024) by quality: OpenAI's gpt-image-1 table,
# whose 1024x1536 figures (408, 1584, 6240) are these times 1.5, the ratio of their pixel counts.
_OUTPUT_TOKENS = {"low": 272, "medium": 1056, "high": 4160}
_ONE_MEGAPIXEL = 1024 * 1024


def usage(request: ImageRequest) -> dict[str, Any]:
    """The `usage` block gpt-image models answer with (token counts are estimates, like the real ones)."""
    text_tokens = max(1, len(request.prompt) // 4)
    quality = request.quality if request.quality in _OUTPUT_TOKENS else request.rules.auto_quality
    # Larger images cost proportionally more tokens; smaller ones (gpt-image-2) cost the 1 MP figure.
    scale = max(1.0, request.width * request.height / _ONE_MEGAPIXEL)
    output_tokens = round(_OUTPUT_TOKENS[quality] * scale) * request.n
    return {
        "input_tokens": text_tokens,
        "input_tokens_details": {"image_tokens": 0, "text_tokens": text_tokens},
        "output_tokens": output_tokens,
        "total_tokens": text_tokens + output_tokens,
    }
