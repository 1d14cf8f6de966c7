"""Recognise an image from its bytes (type, size) and refuse a truncated or broken one.

Pure byte parsing, no imaging library: the function app only needs to know what it stores.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class BrokenImage(ValueError):
    """The bytes are not a complete PNG, JPEG or WebP image."""


@dataclass(frozen=True)
class ImageInfo:
    content_type: str
    extension: str
    width: int
    height: int


def inspect_image(data: bytes) -> ImageInfo:
    if data.startswith(PNG_SIGNATURE):
        return _png(data)
    if data.startswith(b"\xff\xd8"):
        return _jpeg(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data)
    raise BrokenImage("not a PNG, JPEG or WebP image")


def _png(data: bytes) -> ImageInfo:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise BrokenImage("PNG without an IHDR chunk")
    width, height = struct.unpack(">II", data[16:24])
    if not data.endswith(b"IEND\xaeB`\x82"):
        raise BrokenImage("PNG is truncated (no IEND chunk)")
    return ImageInfo("image/png", "png", width, height)


_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg(data: bytes) -> ImageInfo:
    if not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise BrokenImage("JPEG is truncated (no end-of-image marker)")
    offset = 2
    while offset + 4 <= len(data):
        if data[offset] != 0xFF:
            raise BrokenImage("JPEG marker expected")
        marker = data[offset + 1]
        if marker == 0xFF:
            offset += 1
            continue
        (length,) = struct.unpack(">H", data[offset + 2 : offset + 4])
        if marker in _SOF_MARKERS and offset + 9 <= len(data):
            height, width = struct.unpack(">HH", data[offset + 5 : offset + 9])
            return ImageInfo("image/jpeg", "jpeg", width, height)
        offset += 2 + length
    raise BrokenImage("JPEG without a frame header")


def _webp(data: bytes) -> ImageInfo:
    (riff_size,) = struct.unpack("<I", data[4:8])
    if riff_size + 8 != len(data):
        raise BrokenImage("WebP is truncated (RIFF size does not match)")
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
    elif chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    elif chunk == b"VP8 " and len(data) >= 30:
        width = int.from_bytes(data[26:28], "little") & 0x3FFF
        height = int.from_bytes(data[28:30], "little") & 0x3FFF
    else:
        raise BrokenImage("WebP with an unknown first chunk")
    return ImageInfo("image/webp", "webp", width, height)
