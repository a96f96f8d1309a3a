"""Image I/O that never loses data: any mode in, uint8 gray/RGB out; atomic writes that keep format and mode."""

from __future__ import annotations

import contextlib
import io
import os
import threading
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .errors import (
    ImageNotFound,
    MaskgenError,
    NotAnImage,
    TooManyPixels,
    TruncatedImage,
    UnsupportedImage,
)

MAX_PIXELS = 80_000_000  # decompression-bomb guard: about 9k x 9k
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
_FORMATS[".webp"] = "WEBP"
WRITABLE_SUFFIXES = frozenset(_FORMATS)  # what `write_image` writes; other formats are read only
ImageFile.LOAD_TRUNCATED_IMAGES = False

# libjpeg's base luminance table (ITU T.81 Annex K) used to estimate the quality a JPEG was saved with.
_STD_LUMA = np.array(
    [
        16,
        11,
        10,
        16,
        24,
        40,
        51,
        61,
        12,
        12,
        14,
        19,
        26,
        58,
        60,
        55,
        14,
        13,
        16,
        24,
        40,
        57,
        69,
        56,
        14,
        17,
        22,
        29,
    ]
    + [
        51,
        87,
        80,
        62,
        18,
        22,
        37,
        56,
        68,
        109,
        103,
        77,
        24,
        35,
        55,
        64,
        81,
        104,
        113,
        92,
        49,
        64,
        78,
        87,
        103,
        121,
    ]
    + [120, 101, 72, 92, 95, 98, 112, 100, 103, 99],
    dtype=np.float64,
)


@dataclass(frozen=True)
class ImageInfo:
    """What a written copy needs to know about its source: container format and JPEG quality."""

    format: str
    mode: str
    quality: int | None


def read_bytes(path: str | os.PathLike) -> bytes:
    """The file's bytes, with one-line errors for the usual ways a path is not an image file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ImageNotFound(f"{path}: no such file") from None
    except IsADirectoryError:
        raise NotAnImage(f"{path}: is a directory, not an image") from None
    except OSError as e:  # permission denied, a broken device, ...
        raise NotAnImage(f"{path}: cannot read ({e.strerror or e})") from None
    if not data:
        raise NotAnImage(f"{path}: empty file (0 bytes)")
    return data


def _open(path: str | os.PathLike, data: bytes | None = None) -> Image.Image:
    p = Path(path)
    data = read_bytes(p) if data is None else data
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise NotAnImage(f"{p}: not an image file (unrecognised format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise TooManyPixels(f"{p}: too many pixels to read safely (limit {MAX_PIXELS:,})") from None
    except OSError as e:
        raise NotAnImage(f"{p}: cannot read ({e})") from None
    if img.width * img.height > MAX_PIXELS:
        raise TooManyPixels(f"{p}: {img.width}x{img.height} has too many pixels (limit {MAX_PIXELS:,})")
    return img


def estimate_jpeg_quality(img: Image.Image) -> int | None:
    """The libjpeg quality (1-100) whose luminance table best matches the file's, or None."""
    tables = getattr(img, "quantization", None)
    if not tables or 0 not in tables:
        return None
    return _quality_of(tuple(tables[0]))


@lru_cache(maxsize=256)  # a dataset's files share a handful of tables
def _quality_of(table: tuple[int, ...]) -> int:
    q = np.asarray(table, dtype=np.float64)
    scale = float(np.mean(q / _STD_LUMA)) * 100.0
    quality = (200.0 - scale) / 2.0 if scale <= 100 else 5000.0 / scale
    return int(np.clip(round(quality), 1, 100))


def _info(img: Image.Image) -> ImageInfo:
    return ImageInfo(img.format or "PNG", img.mode, estimate_jpeg_quality(img) if img.format == "JPEG" else None)


def image_info(path: str | os.PathLike) -> ImageInfo:
    """Container format, mode and (for JPEG) the estimated quality, without decoding the pixels."""
    return _info(_open(path))


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """Scale any integer or float array to uint8 (16-bit by 257, floats in [0,1] by 255)."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        hi = 1.0 if arr.size and float(np.nanmax(arr)) <= 1.0 else 255.0
        return np.clip(np.nan_to_num(arr) * (255.0 / hi), 0, 255).round().astype(np.uint8)
    hi = 65535 if arr.size and int(arr.max()) > 255 else 255
    return (arr.astype(np.float64) * (255.0 / hi)).round().clip(0, 255).astype(np.uint8)


def _pil_to_array(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return to_uint8(np.asarray(img))
    if mode == "1":
        return np.asarray(img.convert("L"))
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("LA", "La", "PA", "RGBA", "RGBa"):
        # Composite transparency over white: a face cut out of its background reads as a face on paper.
        base = "L" if mode in ("LA", "La") else "RGB"
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, img.convert("RGBA")).convert(base)
        mode = base
    if mode not in ("L", "RGB"):
        img = img.convert("RGB")  # CMYK, YCbCr, LAB, HSV
    return np.asarray(img)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as uint8 (H,W) grayscale or (H,W,3) RGB, EXIF orientation applied."""
    data = read_bytes(path)
    if (fast := _fast_read(data)) is not None:
        return fast[0]
    return _decode(_open(path, data), path)


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """`read_image` of a file's bytes (from a shard, say); `name` is what errors call it."""
    return decode_image_with_info(data, name)[0]


def decode_image_with_info(data: bytes, name: str = "<bytes>") -> tuple[np.ndarray, ImageInfo]:
    """`decode_image` and the image's `image_info`."""
    if (fast := _fast_read(data)) is not None:
        return fast
    img = _open(name, data)
    return _decode(img, name), _info(img)


def read_image_with_info(path: str | os.PathLike) -> tuple[np.ndarray, ImageInfo, bytes]:
    """`read_image`, its `image_info` and the file's bytes (for hashing), from one read of the file."""
    data = read_bytes(path)
    return (*decode_image_with_info(data, os.fspath(path)), data)


# JPEG's zigzag scan: the natural (row-major) index of each coefficient in file order
_ZIGZAG = sorted(range(64), key=lambda k: (k // 8 + k % 8, k // 8 if (k // 8 + k % 8) % 2 else -(k // 8)))
_JPEG_SOF = (0xC0, 0xC1, 0xC2)  # baseline, extended, progressive (Huffman): what OpenCV's libjpeg decodes
# lossless and arithmetic-coded frames, the Adobe colour-transform segment: left to Pillow
_JPEG_REFUSED = frozenset(range(0xC3, 0xD0)) - {0xC4} | {0xEE}
_JPEG_BARE = frozenset(range(0xD0, 0xD9)) | {0x01}  # markers without a length


def _sniff(data: bytes) -> tuple[ImageInfo, int, int] | None:
    """(info, width, height) read from the headers of the files OpenCV may decode for Pillow: plain 8-bit
    gray or RGB JPEG (ending in its end marker, no EXIF, no Adobe colour transform) or PNG (no
    transparency, no EXIF). None for anything else, which Pillow reads (and rotates, or rejects). A test
    checks the answers against Pillow's on the real-face sets."""
    if data[:2] == b"\xff\xd8" and data.endswith(b"\xff\xd9"):
        return _sniff_jpeg(data)
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and data[24:26] in (b"\x08\x00", b"\x08\x02"):
        if b"tRNS" in data or b"eXIf" in data:
            return None
        w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        return (ImageInfo("PNG", "L" if data[25] == 0 else "RGB", None), w, h) if 0 < w * h <= MAX_PIXELS else None
    return None


def _sniff_jpeg(data: bytes) -> tuple[ImageInfo, int, int] | None:
    i, n, frame, luma = 2, len(data), None, None
    while i + 4 <= n and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF or marker in _JPEG_BARE:
            i += 1 if marker == 0xFF else 2
            continue
        size = int.from_bytes(data[i + 2 : i + 4], "big")
        seg = data[i + 4 : i + 2 + size]
        if marker == 0xDA:  # start of scan: every header has been seen
            return (ImageInfo("JPEG", frame[0], _dqt_quality(luma) if luma else None), *frame[1:]) if frame else None
        if marker in _JPEG_REFUSED or (marker == 0xE1 and seg[:4] == b"Exif"):  # EXIF: maybe a rotation
            return None
        if marker in _JPEG_SOF:
            if len(seg) < 6:
                return None
            h, w, comps = int.from_bytes(seg[1:3], "big"), int.from_bytes(seg[3:5], "big"), seg[5]
            if seg[0] != 8 or comps not in (1, 3) or not 0 < w * h <= MAX_PIXELS:
                return None
            frame = ("L" if comps == 1 else "RGB", w, h)
        elif marker == 0xDB:  # quantisation tables, one or more per segment
            j = 0
            while j < len(seg):
                step = 64 * (1 + (seg[j] >> 4))  # 8- or 16-bit entries
                if seg[j] & 15 == 0:
                    luma = seg[j : j + 1 + step]
                j += 1 + step
        i += 2 + size
    return None


@lru_cache(maxsize=256)
def _dqt_quality(table: bytes) -> int | None:
    """`_quality_of` a JPEG file's luminance table as stored: precision byte, then 64 entries in zigzag order."""
    wide = table[0] >> 4
    vals = [int.from_bytes(table[1 + 2 * k : 3 + 2 * k], "big") for k in range(64)] if wide else list(table[1:])
    if len(vals) != 64:
        return None
    natural = [0] * 64
    for pos, k in enumerate(_ZIGZAG):
        natural[k] = vals[pos]
    return _quality_of(tuple(natural))


def _fast_read(data: bytes) -> tuple[np.ndarray, ImageInfo] | None:
    """Plain 8-bit gray/RGB JPEG and PNG decoded by OpenCV, their info read from the headers: about 4x
    faster than opening with Pillow on small crops, and the same pixels (both use libjpeg-turbo and libpng;
    a test compares them on the real-face sets). None for anything Pillow must handle: EXIF rotation,
    transparency, other bit depths, a JPEG without its end marker (OpenCV would fill a truncated file
    with gray instead of failing)."""
    if (sniffed := _sniff(data)) is None:
        return None
    info, w, h = sniffed
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint8 or arr.shape != ((h, w) if info.mode == "L" else (h, w, 3)):
        return None
    return (arr if arr.ndim == 2 else cv2.cvtColor(arr, cv2.COLOR_BGR2RGB, dst=arr)), info  # in place: one copy


def _decode(img: Image.Image, path: str | os.PathLike) -> np.ndarray:
    try:
        img.load()
        img = ImageOps.exif_transpose(img)
        return np.ascontiguousarray(_pil_to_array(img))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise TooManyPixels(f"{path}: too many pixels to read safely (limit {MAX_PIXELS:,})") from None
    except (OSError, SyntaxError, ValueError) as e:
        msg = str(e).split("\n")[0]
        raise TruncatedImage(f"{path}: damaged or truncated image data ({msg})") from None


def name_suffix(name: str) -> str:
    """A file name's suffix as pathlib has it ("" for ".hidden" and "name."), without pathlib's cost."""
    i = name.rfind(".")
    return name[i:] if 0 < i < len(name) - 1 else ""


def format_for(path: str | os.PathLike) -> str:
    suffix = name_suffix(os.path.basename(os.fspath(path))).lower()
    if suffix not in _FORMATS:
        raise UnsupportedImage(
            f"{path}: cannot write {suffix or 'files without a suffix'}; use one of {IMAGE_SUFFIXES}"
        )
    return _FORMATS[suffix]


def encode_image(img: np.ndarray, fmt: str, quality: int | None = None) -> bytes:
    """Encode a gray/RGB(A) or gray+alpha array to bytes in the given Pillow format (JPEG quality default 95,
    4:4:4 chroma from quality 90 up). 16-bit arrays stay 16-bit in PNG and TIFF; other formats and
    dtypes get uint8. Gray and RGB JPEG/PNG go through OpenCV, the rest through Pillow."""
    arr = np.asarray(img)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if not (arr.ndim == 2 or arr.ndim == 3 and arr.shape[2] in (2, 3, 4)):
        raise UnsupportedImage(f"cannot write an array of shape {arr.shape}; expected (H,W) or (H,W,2|3|4)")
    if arr.dtype == np.uint16 and fmt in _CV2_16BIT and (arr.ndim == 2 or arr.shape[2] != 2):  # 16-bit kept
        if arr.ndim == 3:
            arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR if arr.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
        ok, buf = cv2.imencode(_CV2_16BIT[fmt], arr)
        if ok:
            return buf.tobytes()
    arr = to_uint8(arr)
    q = int(quality or 95)
    if fmt in _CV2_ENCODE and (arr.ndim == 2 or arr.shape[2] == 3):
        ok, buf = cv2.imencode(_CV2_ENCODE[fmt], arr if arr.ndim == 2 else arr[..., ::-1], _cv2_params(fmt, q))
        if ok:
            return buf.tobytes()
    if arr.ndim == 3 and arr.shape[2] in (2, 4):
        pil = Image.fromarray(arr, "LA" if arr.shape[2] == 2 else "RGBA")
    else:
        pil = Image.fromarray(arr)
    if pil.mode in ("RGBA", "LA") and fmt in ("JPEG", "BMP"):
        pil = pil.convert("RGB" if pil.mode == "RGBA" else "L")
    opts: dict = {}
    if fmt == "JPEG":
        opts = {"quality": q, "subsampling": 0 if q >= 90 else 2}
    elif fmt == "WEBP":
        opts = {"quality": q}
    buf = io.BytesIO()
    pil.save(buf, format=fmt, **opts)
    return buf.getvalue()


_CV2_ENCODE = {"JPEG": ".jpg", "PNG": ".png"}
_CV2_16BIT = {"PNG": ".png", "TIFF": ".tiff"}


def _cv2_params(fmt: str, quality: int) -> list[int]:
    if fmt == "PNG":
        return [cv2.IMWRITE_PNG_COMPRESSION, 6]  # zlib's default level, as Pillow
    sampling = cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444 if quality >= 90 else cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420
    return [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, sampling]


_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0) | _CLOEXEC
_NO_UNNAMED: set[str] = set()  # folders whose file system has no O_TMPFILE


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


@lru_cache(maxsize=1)
def _proc_dir() -> int | None:
    """A directory fd of /proc for linkat (opened once per process), or None where there is none."""
    try:
        return os.open("/proc", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
    except OSError:
        return None


def _write_unnamed(folder: str, path: str, data: bytes) -> bool:
    """Linux: write `data` to an unnamed file in `folder` (O_TMPFILE), then give it its name (linkat).

    Readers never see half a file, a killed process leaves nothing behind, and the costly part (making
    the inode) happens outside the folder's lock: two workers writing into one folder of an ext4 disk
    whose file creation is slow then run side by side instead of in turn (`bench/convert.py`). False
    where this cannot be done (another OS or file system, no /proc, `path` already exists): the caller
    then writes a temp file and renames it.
    """
    proc = _proc_dir()
    if proc is None or not hasattr(os, "O_TMPFILE") or folder in _NO_UNNAMED:
        return False
    try:
        fd = os.open(folder or ".", os.O_TMPFILE | os.O_WRONLY | _CLOEXEC, 0o666)
    except FileNotFoundError:
        raise
    except OSError:  # EOPNOTSUPP, EISDIR (kernel without O_TMPFILE), EINVAL
        _NO_UNNAMED.add(folder)
        return False
    try:
        _write_all(fd, data)  # a failure here (disk full) is the caller's, as with a named file
        try:
            os.link(f"self/fd/{fd}", path, src_dir_fd=proc, follow_symlinks=True)
        except FileExistsError:
            return False  # replacing a file takes a rename
        except OSError:  # /proc is not what linkat needs here
            _NO_UNNAMED.add(folder)
            return False
    finally:
        os.close(fd)
    return True


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write atomically: readers never see half a file.

    On Linux an unnamed file is written and then linked under its name (`_write_unnamed`); elsewhere,
    and to replace an existing file, a temp file beside `path` is written and renamed. The file gets the
    usual permissions (0666 less the umask; `mkstemp` would leave it 0600, unreadable to a lab's other
    users); the temp name is unique per process and thread.
    """
    folder, name = os.path.split(os.fspath(path))
    try:
        if _write_unnamed(folder, os.fspath(path), data):
            return
    except FileNotFoundError:  # the folder does not exist yet: make it (once per folder, not per file)
        os.makedirs(folder or ".", exist_ok=True)
        if _write_unnamed(folder, os.fspath(path), data):
            return
    tmp = os.path.join(folder, f".{name}.{os.getpid()}-{threading.get_ident()}.part")
    try:
        fd = os.open(tmp, _WRITE_FLAGS, 0o666)
    except FileNotFoundError:
        os.makedirs(folder or ".", exist_ok=True)
        fd = os.open(tmp, _WRITE_FLAGS, 0o666)
    try:
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_image(path: str | os.PathLike, img: np.ndarray, quality: int | None = None) -> Path:
    """Atomically write a uint8 image; format from the suffix, grayscale kept grayscale."""
    fmt = format_for(path)
    try:
        data = encode_image(img, fmt, quality)
    except OSError as e:
        raise MaskgenError(f"{path}: cannot encode as {fmt} ({e})") from None
    write_bytes_atomic(path, data)
    return Path(path)


def as_rgb(image: np.ndarray) -> np.ndarray:
    """Any supported array (gray, gray+channel, RGB, RGBA, 16-bit, float) as uint8 (H,W,3) RGB."""
    arr = to_uint8(np.asarray(image))
    if arr.ndim == 2:
        return np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim == 3 and arr.shape[2] == 1:
        return np.repeat(arr, 3, axis=2)
    if arr.ndim == 3 and arr.shape[2] == 4:
        return np.ascontiguousarray(arr[..., :3])
    if arr.ndim == 3 and arr.shape[2] == 3:
        return arr
    raise UnsupportedImage(f"expected an (H,W), (H,W,3) or (H,W,4) image, got shape {arr.shape}")
