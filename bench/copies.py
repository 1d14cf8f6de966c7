"""Where one image's copies are: the decoding steps of imagegen/adapters/azure_openai.py under tracemalloc.

In-process, no network: an emulator-shaped answer (`{"data": [{"b64_json": …}]}` of a noise PNG) goes
through what `AzureOpenAIImages.generate` does while the raw answer is still referenced: `parse_json(body)` (UTF-8
decoding, then `json.loads`), then
`base64.b64decode(value, validate=True)`, then `inspect_image`. Each step's peak is reported as a
multiple of the image's size, with the alternative that avoids the str → bytes copy of b64decode.
"""

from __future__ import annotations

import base64
import binascii
import json
import tracemalloc
from collections.abc import Callable
from typing import Any

from devtools.aoai_emulator.images import render_image
from imagegen.domain.jsontext import parse_json


def _peak_ratio(step: Callable[[], object], image_bytes: int) -> tuple[float, object]:
    """Peak traced allocation during `step` (above what was live before), / image bytes."""
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    result = step()
    peak = tracemalloc.get_traced_memory()[1]
    return round((peak - before) / image_bytes, 2), result


def run_copies() -> dict[str, Any]:
    image = render_image("copies", 0, 1024, 1024, detail="noise")
    size = len(image)
    body = json.dumps({"created": 0, "data": [{"b64_json": base64.b64encode(image).decode()}]}).encode()
    tracemalloc.start()
    try:
        parse_ratio, document = _peak_ratio(lambda: parse_json(body), size)
        assert isinstance(document, dict)
        value: str = document["data"][0]["b64_json"]
        decode_ratio, _ = _peak_ratio(lambda: base64.b64decode(value, validate=True), size)
        direct_ratio, _ = _peak_ratio(lambda: binascii.a2b_base64(value, strict_mode=True), size)
    finally:
        tracemalloc.stop()
    live_body = len(body) / size
    return {
        "image_bytes": size,
        "answer_body_over_image": round(live_body, 2),
        "parse_json_peak_over_image": parse_ratio,
        "b64decode_peak_over_image": decode_ratio,
        "a2b_base64_peak_over_image": direct_ratio,
        "held_at_decode_over_image": round(live_body + len(value) / size + decode_ratio, 2),
        "note": "peaks are allocations during the step; held_at_decode adds what is still referenced "
        "then (the raw answer body and the parsed base64 str)",
    }
