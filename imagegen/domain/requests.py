"""What each image model accepts (its rules, part of the catalog), and the validated request.

One definition of every request field, used to validate, to build the upstream body and to describe
the API. Values out of range for the configured model are the caller's error (400), not Azure's.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from imagegen.domain.errors import InvalidRequest


@dataclass(frozen=True)
class CustomSize:
    """A size rule instead of a list (gpt-image-2, FLUX): any WxH within these bounds."""

    multiple_of: int
    max_edge: int
    max_ratio: float
    min_pixels: int
    max_pixels: int
    min_edge: int = 0

    def describe(self) -> str:
        short = f", short edge at least {self.min_edge}" if self.min_edge else ""
        return (
            f"both edges multiples of {self.multiple_of}{short}, long edge at most {self.max_edge}, "
            f"aspect ratio at most {self.max_ratio:.3g}:1, {self.min_pixels:,}-{self.max_pixels:,} pixels"
        )

    def problem(self, width: int, height: int) -> str | None:
        """Why WxH breaks the rule, or None."""
        if width % self.multiple_of or height % self.multiple_of:
            return f"both edges must be multiples of {self.multiple_of}"
        if max(width, height) > self.max_edge:
            return f"the long edge must be at most {self.max_edge} pixels"
        if min(width, height) < self.min_edge:
            return f"the short edge must be at least {self.min_edge} pixels"
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
    backgrounds: tuple[str, ...] = ()
    output_formats: tuple[str, ...] = ("png",)
    supports_compression: bool = False
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
    "takes_user": True,
}
GPT_IMAGE_2 = ModelRules(
    name="gpt-image-2",
    sizes=("1024x1024", "1024x1536", "1536x1024", "2048x2048", "2048x1152", "3840x2160", "auto"),
    default_size="1024x1024",
    custom_size=GPT_IMAGE_2_SIZE,
    **_GPT_IMAGE_COMMON,
)
GPT_IMAGE_1_5 = ModelRules(
    name="gpt-image-1.5",
    sizes=("1024x1024", "1024x1536", "1536x1024", "auto"),
    default_size="1024x1024",
    **_GPT_IMAGE_COMMON,
)
GPT_IMAGE_1_MINI = ModelRules(
    name="gpt-image-1-mini",
    sizes=("1024x1024", "1024x1536", "1536x1024", "auto"),
    default_size="1024x1024",
    **_GPT_IMAGE_COMMON,
)
# FLUX through the OpenAI-compatible Image API (use-foundry-models-flux.md, 03/23/2026): one image per
# request, answered as a URL; 1 MP (Kontext) or 1.6 MP (1.1-pro) at most, MP = 2**20 pixels; edges
# multiples of 32 from 256 to 1440 and Kontext's 21:9 aspect bound come from Black Forest Labs' API.
# 5,000 tokens of prompt, counted here at 4 characters a token (Azure's count refuses the rest).
_FLUX_COMMON: dict[str, Any] = {
    "max_prompt_chars": 20_000,
    "max_n": 1,
    "default_size": "1024x1024",
    "output_formats": (),
}
_FLUX_SIZE = CustomSize(
    multiple_of=32, min_edge=256, max_edge=1440, max_ratio=1440 / 256, min_pixels=65_536, max_pixels=1_677_721
)
FLUX_1_1_PRO = ModelRules(
    name="FLUX-1.1-pro",
    sizes=("1024x1024", "1024x768", "768x1024", "1440x1120", "1120x1440"),
    custom_size=_FLUX_SIZE,  # 1.6 MP
    **_FLUX_COMMON,
)
FLUX_1_KONTEXT_PRO = ModelRules(
    name="FLUX.1-Kontext-pro",
    sizes=("1024x1024", "1216x832", "832x1216", "1344x768", "768x1344"),
    custom_size=replace(_FLUX_SIZE, max_ratio=21 / 9, max_pixels=1_048_576),  # 1 MP, 21:9 at most
    **_FLUX_COMMON,
)
WEBP_REFUSED = "Azure OpenAI does not serve webp images; use png or jpeg"


MAX_METADATA_KEYS = 10
MAX_METADATA_VALUE_CHARS = 256
MAX_METADATA_KEY_CHARS = 64
MAX_BODY_BYTES = 256 * 1024


@dataclass(frozen=True)
class RequestField:
    """One field of the image request, defined once: validation, the upstream body, the OpenAPI
    description and connector, the playground's options and the client's keyword arguments follow it."""

    name: str
    summary: str  # a short label: x-ms-summary in the connector, the playground's label, CLI help
    description: str
    upstream: bool = True  # passed on to Azure when the caller gives it (and the model takes it)
    choices: Callable[[ModelRules], tuple[str, ...]] | None = None  # the model's allowed values
    visibility: str = "advanced"  # x-ms-visibility
    cli_flag: str | None = None  # the command line's flag, when it has one


REQUEST_FIELD_TABLE: tuple[RequestField, ...] = (
    RequestField("prompt", "Prompt", "What to draw.", visibility="important"),
    RequestField("n", "Number of Images", "How many images to generate.", cli_flag="-n"),
    RequestField(
        "size", "Size", "Width x height in pixels.", choices=lambda rules: rules.sizes, cli_flag="--size"
    ),
    RequestField(
        "quality",
        "Quality",
        "Rendering quality.",
        choices=lambda rules: rules.qualities,
        cli_flag="--quality",
    ),
    RequestField(
        "background",
        "Background",
        "Background of the image; transparent needs output_format png.",
        choices=lambda rules: rules.backgrounds,
    ),
    RequestField(
        "output_format",
        "Output Format",
        "File format of the stored images.",
        choices=lambda rules: rules.output_formats,
        cli_flag="--format",
    ),
    RequestField(
        "output_compression",
        "Output Compression",
        "Compression level (0-100) for jpeg output; not allowed with png.",
    ),
    RequestField(
        "user",
        "End User",
        "An id of your end user, passed to Azure OpenAI for abuse monitoring.",
        cli_flag="--user",
    ),
    RequestField(
        "metadata", "Metadata", "Your own labels, kept with the job and returned with it.", upstream=False
    ),
)
REQUEST_FIELDS = tuple(entry.name for entry in REQUEST_FIELD_TABLE)
FIELDS_BY_NAME = {entry.name: entry for entry in REQUEST_FIELD_TABLE}
MAX_USER_CHARS = 256
CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg"}


@dataclass(frozen=True)
class ImageRequest:
    """A validated request: what the caller asked for, filled with the model's defaults."""

    prompt: str
    n: int = 1
    size: str = "1024x1024"
    quality: str | None = None
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
        """Parameters passed to Azure OpenAI: the upstream fields given, those this model takes."""
        body: dict[str, Any] = {}
        for entry in REQUEST_FIELD_TABLE:
            value = getattr(self, entry.name)
            offered = entry.choices(rules) if entry.choices is not None else None
            if not entry.upstream or value is None or (offered is not None and len(offered) < 2):
                continue  # not Azure's, not given, or nothing to choose (e.g. FLUX has no format choice)
            body[entry.name] = value
        return body


def validate_image_request(document: Mapping[str, Any], rules: ModelRules) -> ImageRequest:
    unknown = sorted(set(document) - set(REQUEST_FIELDS))
    if unknown:
        raise InvalidRequest(f"unknown field '{unknown[0]}'", field=unknown[0])

    prompt = document.get("prompt")
    if not isinstance(prompt, str):
        raise InvalidRequest("'prompt' is required and must be a string", field="prompt")
    if not _has_visible_character(prompt):
        raise InvalidRequest("'prompt' must not be empty (or only invisible characters)", field="prompt")
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
        background=background,
        output_format=output_format,
        output_compression=compression,
        user=user,
        metadata=_metadata(document.get("metadata")),
    )


# Format, control, private-use, unassigned and surrogate code points draw nothing (U+200B, U+2060,
# U+FEFF, U+00AD …): a prompt of only those is empty.
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Cc", "Co", "Cn", "Cs"})


def _has_visible_character(text: str) -> bool:
    return any(
        not character.isspace() and unicodedata.category(character) not in _INVISIBLE_CATEGORIES
        for character in text
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
            f"'size' must be {'auto or ' if 'auto' in rules.sizes else ''}WIDTHxHEIGHT in pixels "
            f"(e.g. {rules.sizes[0]}) for {rules.name}",
            field="size",
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
