"""16-bit PNGs, which Pillow reads only as 8 bits per channel: SYNTHIA's label files.

SYNTHIA-RAND-CITYSCAPES stores its class ids in channel 0 of 16-bit multi-channel PNGs. Pillow decodes
those to 8-bit RGB and loses the ids, so they are decoded with torchvision's PNG decoder (already a
dependency), and written with a small encoder of our own (torchvision encodes 8-bit PNGs only).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels → PNG colour type (grey, grey+alpha, RGB, RGBA)


def png_bit_depth(path: str | Path) -> int | None:
    """Bits per channel of a PNG from its header, or None when the file is not a PNG."""
    with open(path, "rb") as handle:
        head = handle.read(26)
    if len(head) < 26 or not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return head[24]


def read_png16(path: str | Path) -> np.ndarray:
    """A 16-bit PNG as uint16, H×W (one channel) or H×W×C; a broken file raises with its path."""
    import torch
    from torchvision.io import ImageReadMode, decode_png

    data = Path(path).read_bytes()
    try:
        decoded = decode_png(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.UNCHANGED)
    except RuntimeError as error:
        raise ValueError(f"{path}: not a decodable PNG ({error})") from error
    array = decoded.numpy()
    return array[0] if array.shape[0] == 1 else np.ascontiguousarray(array.transpose(1, 2, 0))


def encode_png16(array: np.ndarray) -> bytes:
    """PNG bytes of a uint16 H×W or H×W×C (C in 1..4) array, rows unfiltered, zlib-compressed."""
    if array.dtype != np.uint16:
        raise ValueError(f"encode_png16 takes uint16 arrays, got {array.dtype}")
    if array.ndim == 2:
        array = array[:, :, None]
    height, width, channels = array.shape
    if channels not in _COLOUR_TYPES:
        raise ValueError(f"encode_png16 takes 1 to 4 channels, got {channels}")
    rows = np.zeros((height, 1 + width * channels * 2), dtype=np.uint8)  # filter byte 0 per row
    rows[:, 1:] = array.astype(">u2").view(np.uint8).reshape(height, -1)

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 16, _COLOUR_TYPES[channels], 0, 0, 0)
    return PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + chunk(b"IEND", b"")
