"""What each Azure OpenAI image model accepts, and the validated request the API works with.

One definition, used by the HTTP handler to validate (and later to describe the API). Values out of
range for the configured model are the caller's error (400), not Azure's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from imagegen.errors import InvalidRequest
from imagegen.jsontext import NotJson, parse_json


@dataclass(frozen=True)
class ModelRules:
    name: str
    max_prompt_chars: int
    max_n: int
    sizes: tuple[str, ...]
    default_size: str
    qualities: tuple[str, ...] = ()
    styles: tuple[str, ...] = ()
    backgrounds: tuple[str, ...] = ()
    output_formats: tuple[str, ...] = ("png",)
    supports_compression: bool = False
    # gpt-image models always answer base64; dall-e models answer what response_format asks.
    sends_response_format: bool = True


GPT_IMAGE = ModelRules(
    name="gpt-image-1",
    max_prompt_chars=32000,
    max_n=10,
    sizes=("1024x1024", "1024x1536", "1536x1024", "auto"),
    default_size="1024x1024",
    qualities=("low", "medium", "high", "auto"),
    backgrounds=("transparent", "opaque", "auto"),
    output_formats=("png", "jpeg", "webp"),
    supports_compression=True,
    sends_response_format=False,
)
DALL_E_3 = ModelRules(
    name="dall-e-3",
    max_prompt_chars=4000,
    max_n=1,
    sizes=("1024x1024", "1792x1024", "1024x1792"),
    default_size="1024x1024",
    qualities=("standard", "hd"),
    styles=("vivid", "natural"),
)
DALL_E_2 = ModelRules(
    name="dall-e-2",
    max_prompt_chars=1000,
    max_n=5,  # the legacy :submit API allows 1-5
    sizes=("256x256", "512x512", "1024x1024"),
    default_size="1024x1024",
)


def rules_for_model(model: str) -> ModelRules:
    """gpt-image-1, gpt-image-1-mini, gpt-image-1.5 … share rules; so do the dall-e generations."""
    name = model.lower()
    if name.startswith("gpt-image"):
        return GPT_IMAGE
    if name.startswith("dall-e-3"):
        return DALL_E_3
    if name.startswith("dall-e-2"):
        return DALL_E_2
    raise ValueError(f"unknown image model {model!r}")


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
    "metadata",
)
CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


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
        for name in ("quality", "style", "background", "output_compression"):
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

    size = _choice(document, "size", rules.sizes, rules) or rules.default_size
    quality = _choice(document, "quality", rules.qualities, rules)
    style = _choice(document, "style", rules.styles, rules)
    background = _choice(document, "background", rules.backgrounds, rules)
    output_format = _choice(document, "output_format", rules.output_formats, rules) or "png"
    if background == "transparent" and output_format == "jpeg":
        raise InvalidRequest("a transparent background needs output_format png or webp", field="background")

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
            raise InvalidRequest(
                "'output_compression' applies to jpeg and webp only", field="output_compression"
            )

    return ImageRequest(
        prompt=prompt,
        n=n,
        size=size,
        quality=quality,
        style=style,
        background=background,
        output_format=output_format,
        output_compression=compression,
        metadata=_metadata(document.get("metadata")),
    )


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
