"""A source's own mode, kept in its output: 16-bit and transparent images are masked as 8-bit gray/RGB
(what detectors and strategies work on) and written back in their own mode, only the changed pixels
replaced, so every pixel the mask leaves alone keeps its exact 16-bit value or alpha.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image, ImageOps

from ..io import ImageInfo

ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
# what each output format can hold beside 8-bit gray/RGB
HOLDS_16BIT = {"PNG", "TIFF"}
HOLDS_ALPHA = {"PNG", "TIFF", "WEBP"}


def _png_16bit(data: bytes) -> bool:
    return data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and data[24] == 16


def native_array(data: bytes, info: ImageInfo, img8: np.ndarray) -> tuple[np.ndarray, str] | None:
    """(the source's pixels in its own mode, that mode's name) when it is more than 8-bit gray/RGB: uint16
    (H,W[,3|4]) or uint8 with alpha (H,W,2|4). None for plain 8-bit gray/RGB (and what is not kept)."""
    if _png_16bit(data):
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if arr is None or arr.dtype != np.uint16 or arr.shape[:2] != img8.shape[:2]:
            return None
        if arr.ndim == 3:
            arr = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB if arr.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)
        return arr, {2: "I;16", 3: "RGB;16", 4: "RGBA;16"}[arr.ndim if arr.ndim == 2 else arr.shape[2]]
    transparent = info.mode in ALPHA_MODES or (info.mode == "P" and info.format in ("PNG", "GIF", "WEBP"))
    if info.mode not in ("I;16", "I;16B", "I;16L") and not transparent:
        return None
    pil = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    if info.mode.startswith("I;16"):
        arr = np.asarray(pil).astype(np.uint16)
        name = "I;16"
    else:
        if pil.mode == "P" and "transparency" not in pil.info:
            return None
        pil = pil.convert("LA" if pil.mode in ("LA", "La") else "RGBA")
        arr, name = np.asarray(pil), pil.mode
    return (arr, name) if arr.shape[:2] == img8.shape[:2] else None


def kept_in(native: np.ndarray, fmt: str) -> bool:
    """Whether `fmt` holds this mode (16-bit: PNG, TIFF; alpha: PNG, TIFF, WebP; 16-bit with alpha: PNG)."""
    if native.dtype == np.uint16:
        return fmt in HOLDS_16BIT and (native.ndim == 2 or native.shape[2] in (3, 4))
    return fmt in HOLDS_ALPHA


def restore(native: np.ndarray, img8: np.ndarray, out8: np.ndarray, occlusion: np.ndarray) -> np.ndarray:
    """The native array with the pixels the mask covers or changed replaced by the masked ones, scaled
    to its depth and made opaque."""
    changed = out8 != img8
    if changed.ndim == 3:
        changed = changed.any(axis=2)
    changed |= occlusion > 0
    res = native.copy()
    colour = out8[changed]
    top = 65535 if native.dtype == np.uint16 else 255
    if native.dtype == np.uint16:
        colour = colour.astype(np.uint16) * 257
    if native.ndim == 2:
        res[changed] = colour.reshape(len(colour), -1)[:, 0]
        return res
    alpha = native.shape[2] in (2, 4)
    n = native.shape[2] - (1 if alpha else 0)
    colour = colour.reshape(len(colour), -1)
    res[changed, :n] = colour if colour.shape[1] == n else np.repeat(colour[:, :1], n, axis=1)
    if alpha:
        res[changed, n] = top
    return res
