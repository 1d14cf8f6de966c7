from __future__ import annotations

import io

import pytest
from PIL import Image

from imagegen.domain.images import BrokenImage, inspect_image


def _encode(fmt: str, size: tuple[int, int], mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, (10, 200, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("fmt", "mode", "content_type", "extension"),
    [
        ("PNG", "RGBA", "image/png", "png"),
        ("JPEG", "RGB", "image/jpeg", "jpeg"),
        ("WEBP", "RGB", "image/webp", "webp"),
        ("WEBP", "RGBA", "image/webp", "webp"),
    ],
)
def test_recognises_type_and_size(fmt: str, mode: str, content_type: str, extension: str) -> None:
    info = inspect_image(_encode(fmt, (64, 48), mode))
    assert (info.content_type, info.extension, info.width, info.height) == (content_type, extension, 64, 48)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_a_truncated_image_is_refused(fmt: str) -> None:
    data = _encode(fmt, (64, 48))
    with pytest.raises(BrokenImage):
        inspect_image(data[: len(data) // 2])


def test_not_an_image_is_refused() -> None:
    with pytest.raises(BrokenImage):
        inspect_image(b"<html>error</html>")
