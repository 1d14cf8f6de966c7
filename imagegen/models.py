"""What each Azure OpenAI image model accepts, and the validated request the API works with.

One definition, used by the HTTP handler to validate (and later to describe the API). Values out of
range for the configured model are the caller's error (400), not Azure's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from imagegen.errors import InvalidRequest
from imagegen.jsontext import NotJson, parse_json


@dataclass(frozen=True)
class CustomSize:
    """A size rule instead of a list (gpt-image-2): any WxH within these bounds."""

    multiple_of: int
    max_edge: int
    max_ratio: float
    min_pixels: int
    max_pixels: int

    def problem(self, width: int, height: int) -> str | None:
        """Why WxH breaks the rule, or None."""
        if width % self.multiple_of or height % self.multiple_of:
            return f"both edges must be multiples of {self.multiple_of}"
        if max(width, height) > self.max_edge:
            return f"the long edge must be at most {self.max_edge} pixels"
        if max(width, height) > self.max_ratio * min(width, height):
            return f"the aspect ratio must be at most {self.max_ratio:g}:1"
        if not self.min_pixels <= width * height <= self.max_pixels:
            return f"the total pixel count must be between {self.min_pixels:,} and {self.max_pixels:,}"
        return None


@dataclass(frozen=True)
class ModelRules:
    name: str
    max_prompt_chars: int
    max_n: int
    sizes: tuple[str, ...]
    default_size: str
    qualities: tuple[str, ...] = ()
    default_quality: str | None = None
    styles: tuple[str, ...] = ()
    backgrounds: tuple[str, ...] = ()
    output_formats: tuple[str, ...] = ("png",)
    supports_compression: bool = False
    # gpt-image models always answer base64; dall-e models answer what response_format asks.
    sends_response_format: bool = True
    custom_size: CustomSize | None = None  # sizes are then presets, not the whole list
    takes_user: bool = False


# Documented in articles/foundry/openai/how-to/dall-e.md (04/17/2026); see docs/models.md.
GPT_IMAGE_2_SIZE = CustomSize(
    multiple_of=16, max_edge=3840, max_ratio=3.0, min_pixels=655_360, max_pixels=8_294_400
)
_GPT_IMAGE_COMMON: dict[str, Any] = {
    "max_prompt_chars": 32000,
    "max_n": 10,
    "qualities": ("low", "medium", "high"),
    "backgrounds": ("transparent", "opaque", "auto"),
    "output_formats": ("png", "jpeg"),  # Azure does not serve webp
    "supports_compression": True,
    "sends_response_format": False,
    "takes_user": True,
}
GPT_IMAGE_2 = ModelRules(
    name="gpt-image-2",
    sizes=("1024x1024", "1024x1536", "1536x1024", "2048x2048", "2048x1152", "3840x2160", "auto"),
    default_size="1024x1024",
    default_quality="high",
    custom_size=GPT_IMAGE_2_SIZE,
    **_GPT_IMAGE_COMMON,
)
GPT_IMAGE_1_5 = ModelRules(
    name="gpt-image-1.5",
    sizes=("1024x1024", "1024x1536", "1536x1024", "auto"),
    default_size="1024x1024",
    default_quality="high",
    **_GPT_IMAGE_COMMON,
)
GPT_IMAGE_1_MINI = ModelRules(
    name="gpt-image-1-mini",
    sizes=("1024x1024", "1024x1536", "1536x1024", "auto"),
    default_size="1024x1024",
    default_quality="medium",
    **_GPT_IMAGE_COMMON,
)
DALL_E_2 = ModelRules(
    name="dall-e-2",
    max_prompt_chars=1000,
    max_n=5,  # the legacy :submit API allows 1-5
    sizes=("256x256", "512x512", "1024x1024"),
    default_size="1024x1024",
)
MODEL_RULES: dict[str, ModelRules] = {
    rules.name: rules for rules in (GPT_IMAGE_2, GPT_IMAGE_1_5, GPT_IMAGE_1_MINI, DALL_E_2)
}
WEBP_REFUSED = "Azure OpenAI does not serve webp images; use png or jpeg"


def rules_for_model(model: str) -> ModelRules:
    """The rules of a model Azure serves (by its model name, as deployed)."""
    try:
        return MODEL_RULES[model.lower()]
    except KeyError:
        raise ValueError(f"unknown image model {model!r}") from None


MAX_METADATA_KEYS = 10
MAX_METADATA_VALUE_CHARS = 256
MAX_METADATA_KEY_CHARS = 64
MAX_BODY_BYTES = 256 * 1024
REQUEST_FIELDS = (
    "prompt",
    "n",
    "size",
    "quality",
    "style",
    "background",
    "output_format",
    "output_compression",
    "user",
    "metadata",
)
MAX_USER_CHARS = 256
CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg"}


@dataclass(frozen=True)
class ImageRequest:
    """A validated request: what the caller asked for, filled with the model's defaults."""

    prompt: str
    n: int = 1
    size: str = "1024x1024"
    quality: str | None = None
    style: str | None = None
    background: str | None = None
    output_format: str = "png"
    output_compression: int | None = None
    user: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["metadata"] = dict(self.metadata)
        return {k: v for k, v in record.items() if v is not None and v != {}}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ImageRequest:
        return cls(**{k: v for k, v in record.items() if k in REQUEST_FIELDS})

    def upstream_body(self, rules: ModelRules) -> dict[str, Any]:
        """Parameters passed to Azure OpenAI (only those this model understands)."""
        body: dict[str, Any] = {"prompt": self.prompt, "n": self.n, "size": self.size}
        for name in ("quality", "style", "background", "output_compression", "user"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        if len(rules.output_formats) > 1:
            body["output_format"] = self.output_format
        if rules.sends_response_format:
            body["response_format"] = "b64_json"
        return body


def parse_image_request(body: bytes, content_type: str | None, rules: ModelRules) -> ImageRequest:
    """Validate a POST body for the configured model; raise InvalidRequest naming the field."""
    return validate_image_request(parse_json_object(body, content_type), rules)


def parse_json_object(body: bytes, content_type: str | None) -> dict[str, Any]:
    """A JSON object from a request body, or InvalidRequest (content type, size, syntax)."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise InvalidRequest("Content-Type must be application/json", field="Content-Type")
    if len(body) > MAX_BODY_BYTES:
        raise InvalidRequest(f"the body is larger than {MAX_BODY_BYTES} bytes", field="body")
    try:
        document = parse_json(body)
    except NotJson as error:
        raise InvalidRequest(f"the body is not valid JSON ({error.reason})", field="body") from None
    if not isinstance(document, dict):
        raise InvalidRequest("the body must be a JSON object", field="body")
    return document


def validate_image_request(document: Mapping[str, Any], rules: ModelRules) -> ImageRequest:
    unknown = sorted(set(document) - set(REQUEST_FIELDS))
    if unknown:
        raise InvalidRequest(f"unknown field '{unknown[0]}'", field=unknown[0])

    prompt = document.get("prompt")
    if not isinstance(prompt, str):
        raise InvalidRequest("'prompt' is required and must be a string", field="prompt")
    if not prompt.strip():
        raise InvalidRequest("'prompt' must not be empty", field="prompt")
    if len(prompt) > rules.max_prompt_chars:
        raise InvalidRequest(
            f"'prompt' is longer than {rules.max_prompt_chars} characters for {rules.name}", field="prompt"
        )

    n = document.get("n", 1)
    if not isinstance(n, int) or isinstance(n, bool):
        raise InvalidRequest("'n' must be an integer", field="n")
    if not 1 <= n <= rules.max_n:
        raise InvalidRequest(f"'n' must be between 1 and {rules.max_n} for {rules.name}", field="n")

    size = _size(document.get("size"), rules)
    quality = _choice(document, "quality", rules.qualities, rules)
    style = _choice(document, "style", rules.styles, rules)
    background = _choice(document, "background", rules.backgrounds, rules)
    if isinstance(document.get("output_format"), str) and document["output_format"].lower() == "webp":
        raise InvalidRequest(f"'output_format' webp: {WEBP_REFUSED}", field="output_format")
    output_format = _choice(document, "output_format", rules.output_formats, rules) or "png"
    if background == "transparent" and output_format == "jpeg":
        raise InvalidRequest("a transparent background needs output_format png", field="background")
    user = document.get("user")
    if user is not None:
        if not rules.takes_user:
            raise InvalidRequest(f"'user' is not supported by {rules.name}", field="user")
        if not isinstance(user, str) or not 1 <= len(user) <= MAX_USER_CHARS or not user.isprintable():
            raise InvalidRequest(f"'user' must be 1-{MAX_USER_CHARS} printable characters", field="user")

    compression = document.get("output_compression")
    if compression is not None:
        if not rules.supports_compression:
            raise InvalidRequest(
                f"'output_compression' is not supported by {rules.name}", field="output_compression"
            )
        if not isinstance(compression, int) or isinstance(compression, bool) or not 0 <= compression <= 100:
            raise InvalidRequest(
                "'output_compression' must be an integer from 0 to 100", field="output_compression"
            )
        if output_format == "png":
            raise InvalidRequest("'output_compression' applies to jpeg only", field="output_compression")

    return ImageRequest(
        prompt=prompt,
        n=n,
        size=size,
        quality=quality,
        style=style,
        background=background,
        output_format=output_format,
        output_compression=compression,
        user=user,
        metadata=_metadata(document.get("metadata")),
    )


_SIZE = re.compile(r"^([1-9][0-9]{0,4})x([1-9][0-9]{0,4})$")


def _size(value: Any, rules: ModelRules) -> str:
    """A listed size, or (for a model with a size rule) any WxH within the rule."""
    if value is None:
        return rules.default_size
    if rules.custom_size is None or not isinstance(value, str) or value in rules.sizes:
        return _choice({"size": value}, "size", rules.sizes, rules) or rules.default_size
    match = _SIZE.match(value)
    if match is None:
        raise InvalidRequest(
            f"'size' must be auto or WIDTHxHEIGHT in pixels (e.g. 2048x1152) for {rules.name}", field="size"
        )
    problem = rules.custom_size.problem(int(match.group(1)), int(match.group(2)))
    if problem is not None:
        raise InvalidRequest(
            f"size {value}: {problem} for {rules.name}", field="size", details={"rule": problem}
        )
    return value


def _choice(
    document: Mapping[str, Any], name: str, allowed: tuple[str, ...], rules: ModelRules
) -> str | None:
    value = document.get(name)
    if value is None:
        return None
    if not allowed:
        raise InvalidRequest(f"'{name}' is not supported by {rules.name}", field=name)
    if not isinstance(value, str) or value not in allowed:
        raise InvalidRequest(
            f"'{name}' must be one of {', '.join(allowed)} for {rules.name}",
            field=name,
            details={"allowed": allowed},
        )
    return value


def _metadata(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest("'metadata' must be an object of strings", field="metadata")
    if len(value) > MAX_METADATA_KEYS:
        raise InvalidRequest(f"'metadata' has more than {MAX_METADATA_KEYS} keys", field="metadata")
    for key, item in value.items():
        if not 0 < len(key) <= MAX_METADATA_KEY_CHARS:
            raise InvalidRequest(
                f"'metadata' keys must be 1 to {MAX_METADATA_KEY_CHARS} characters", field="metadata"
            )
        if not isinstance(item, str) or len(item) > MAX_METADATA_VALUE_CHARS:
            raise InvalidRequest(
                f"'metadata' values must be strings of at most {MAX_METADATA_VALUE_CHARS} characters",
                field=f"metadata.{key}",
            )
    return dict(value)
