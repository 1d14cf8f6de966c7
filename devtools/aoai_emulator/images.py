"""Real, cheap images made with Pillow: different per prompt and index, in the requested size and format."""

from __future__ import annotations

import hashlib
import io
import random
from typing import Literal

from PIL import Image, ImageDraw, ImageOps

OutputFormat = Literal["png", "jpeg", "webp"]
ImageDetail = Literal["smooth", "noise"]
IMAGE_DETAILS: tuple[ImageDetail, ...] = ("smooth", "noise")

CONTENT_TYPES: dict[str, str] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
EXTENSIONS: dict[str, str] = {"png": "png", "jpeg": "jpg", "webp": "webp"}

_GRADIENT = Image.linear_gradient("L")  # 256x256, made once


def _seed(prompt: str, index: int) -> int:
    digest = hashlib.sha256(f"{index}\x00{prompt}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _colour(rng: random.Random) -> tuple[int, int, int]:
    return rng.randrange(256), rng.randrange(256), rng.randrange(256)


def render_image(
    prompt: str,
    index: int,
    width: int,
    height: int,
    *,
    output_format: OutputFormat = "png",
    transparent: bool = False,
    compression: int | None = None,
    detail: ImageDetail = "smooth",
) -> bytes:
    """Encode a picture derived from sha256(index, prompt): a gradient and a few text-free shapes.

    `compression` is the API's output_compression (0-100, higher = smaller file) for jpeg/webp.
    PNG uses compress_level 1: fast enough that the emulator never dominates a benchmark.
    `detail="noise"` draws seeded random pixels instead: incompressible, so a 1024x1024 PNG is ~3 MB,
    as large as a detailed real picture (memory benchmarks need images of realistic size).
    """
    rng = random.Random(_seed(prompt, index))
    mode = "RGBA" if transparent else "RGB"
    if detail == "noise":
        noise = Image.frombytes(mode, (width, height), rng.randbytes(width * height * len(mode)))
        return _encode(noise, output_format, compression)
    if transparent:
        canvas = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    else:
        gradient = _GRADIENT.rotate(rng.choice((0, 90, 180, 270))).resize((width, height))
        canvas = ImageOps.colorize(gradient, _colour(rng), _colour(rng)).convert(mode)
    draw = ImageDraw.Draw(canvas)
    short = min(width, height)
    for _ in range(rng.randint(3, 6)):
        x = rng.randrange(width)
        y = rng.randrange(height)
        r = rng.randint(short // 12, short // 3)
        box = (x - r, y - r, x + r, y + r)
        fill = (*_colour(rng), 255) if transparent else _colour(rng)
        shape = rng.randrange(3)
        if shape == 0:
            draw.ellipse(box, fill=fill)
        elif shape == 1:
            draw.rectangle(box, fill=fill)
        else:
            draw.polygon([(x, y - r), (x + r, y + r), (x - r, y + r)], fill=fill)
    return _encode(canvas, output_format, compression)


def _encode(canvas: Image.Image, output_format: OutputFormat, compression: int | None) -> bytes:
    out = io.BytesIO()
    if output_format == "png":
        canvas.save(out, format="PNG", compress_level=1)
    elif output_format == "jpeg":
        quality = 100 - (compression if compression is not None else 25)
        canvas.convert("RGB").save(out, format="JPEG", quality=max(1, min(95, quality)))
    else:
        quality = 100 - (compression if compression is not None else 25)
        canvas.save(out, format="WEBP", quality=max(1, quality), method=0)
    return out.getvalue()
