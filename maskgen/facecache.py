"""A face cache for training-time masking: detect once, store boxes and landmarks keyed by image content.

`precompute_faces(paths_or_dataset, "faces.npz")` runs the detector over a dataset (in batches) and
writes a compressed .npz; `FaceCache.load` reads it and `MaskFaces(faces=cache)` then skips detection.
Keys are a hash of the image's RGB uint8 content, so a path, an array, a PIL image or a ToTensor()
tensor of the same picture all find the same entry.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .detectors import detect_batch
from .errors import BadParameter
from .io import IMAGE_SUFFIXES, read_image, to_uint8, write_bytes_atomic
from .types import Faces


def content_key(image: np.ndarray) -> str:
    """Hash of the picture as uint8 pixels, so gray and gray-as-RGB, float [0,1] and uint8 copies agree.

    A gray picture (2-D, one channel, or RGB with equal channels) is hashed as its single channel: the
    common case of 48x48 crops then costs one small hash. Alpha is ignored.
    """
    arr = to_uint8(np.asarray(image))
    if arr.ndim == 3:
        if arr.shape[2] == 4:
            arr = arr[..., :3]
        if arr.shape[2] == 3 and np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 1], arr[..., 2]):
            arr = arr[..., :1]
        if arr.shape[2] == 1:
            arr = arr[..., 0]
    arr = np.ascontiguousarray(arr)
    return hashlib.blake2b(arr.tobytes() + str(arr.shape).encode(), digest_size=16).hexdigest()


def content_keys(images: np.ndarray) -> list[str]:
    """`content_key` of each image of a (B,H,W) or (B,H,W,C) uint8 stack, without per-image conversions."""
    x = np.asarray(images)
    if x.dtype != np.uint8 or x.ndim not in (3, 4):
        return [content_key(im) for im in x]
    if x.ndim == 4:
        if x.shape[3] == 4:
            x = x[..., :3]
        if x.shape[3] == 1:
            x = x[..., 0]
    if x.ndim == 3:
        gray = np.ones(len(x), bool)
    elif x.shape[3] == 3:
        gray = ((x[..., 0] == x[..., 1]) & (x[..., 1] == x[..., 2])).reshape(len(x), -1).all(1)
    else:
        return [content_key(im) for im in x]
    keys = []
    for im, g in zip(x, gray.tolist(), strict=True):
        arr = np.ascontiguousarray(im[..., 0] if g and im.ndim == 3 else im)
        h = hashlib.blake2b(memoryview(arr).cast("B"), digest_size=16)
        h.update(str(arr.shape).encode())
        keys.append(h.hexdigest())
    return keys


MEMO_BYTES = 64 << 20  # pixels `get_many` keeps to find images it has seen before without hashing them


class FaceCache:
    """Faces per image content key; `get` returns None for an image that is not in the cache."""

    def __init__(self, entries: dict[str, Faces], paths: dict[str, str] | None = None) -> None:
        self._entries = entries
        self.paths = paths or {}
        self.hits = 0
        self.misses = 0
        # images looked up before: a few sampled pixels -> [(all the pixels, faces or None)], up to MEMO_BYTES
        self._seen: dict[bytes, list[tuple[bytes, Faces | None]]] = {}
        self._seen_bytes = 0

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers get the entries, not this process's memo
        return {**self.__dict__, "_seen": {}, "_seen_bytes": 0}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, image: np.ndarray) -> Faces | None:
        arr = np.asarray(image)
        if arr.dtype == np.uint8 and arr.ndim in (2, 3):  # remembered if seen before: see `get_many`
            return self.get_many(arr[None])[0]
        return self.get_key(content_key(image))

    def get_key(self, key: str) -> Faces | None:
        """The faces stored under a `content_key` (None if absent); counts hits and misses like `get`."""
        faces = self._entries.get(key)
        if faces is None:
            self.misses += 1
        else:
            self.hits += 1
        return faces

    def get_many(self, images: np.ndarray) -> list[Faces | None]:
        """`get` for each image of a (B,H,W) or (B,H,W,C) uint8 stack (the same answers and counts).

        Training looks up the same images every epoch: an image seen before is found by comparing its
        pixels with the remembered ones (a few sampled pixels pick the candidates), not by hashing it.
        """
        x = np.asarray(images)
        if x.dtype != np.uint8 or x.ndim not in (3, 4) or not len(x):
            return [self.get(im) for im in x]
        flat = x.reshape(len(x), -1)
        tag = str(x.shape[1:]).encode()
        samples = np.ascontiguousarray(flat[:, :: max(1, flat.shape[1] // 61)])
        out: list[Faces | None] = []
        todo: list[tuple[int, bytes, bytes]] = []
        for i, (row, sample) in enumerate(zip(flat, samples, strict=True)):
            probe, pixels = tag + sample.tobytes(), row.tobytes()
            for seen, faces in self._seen.get(probe, ()):
                if seen == pixels:
                    out.append(faces)
                    break
            else:
                out.append(None)
                todo.append((i, probe, pixels))
        if todo:
            keys = content_keys(x[[i for i, _, _ in todo]])
            for (i, probe, pixels), key in zip(todo, keys, strict=True):
                out[i] = self._entries.get(key)
                known = self._seen.setdefault(probe, [])
                if self._seen_bytes + len(pixels) <= MEMO_BYTES and all(seen != pixels for seen, _ in known):
                    known.append((pixels, out[i]))
                    self._seen_bytes += len(pixels)
        found = sum(f is not None for f in out)
        self.hits += found
        self.misses += len(out) - found
        return out

    def save(self, path: str | os.PathLike) -> Path:
        keys = sorted(self._entries)
        faces = [self._entries[k] for k in keys]
        counts = np.array([len(f) for f in faces], np.int32)
        cat = Faces.concat([f for f in faces if len(f)]) if counts.sum() else Faces.empty()
        import io

        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            keys=np.array(keys),
            paths=np.array([self.paths.get(k, "") for k in keys]),
            counts=counts,
            xyxy=cat.xyxy,
            score=cat.score,
            landmarks=cat.landmarks,
            landmark_source=np.array(cat.landmark_source, dtype=str),
            detector=np.array([f.detector for f in faces]),
        )
        write_bytes_atomic(path, buf.getvalue())
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> FaceCache:
        if not Path(path).exists():
            raise BadParameter(f"{path}: no face cache there; make one with maskgen.precompute_faces")
        z = np.load(path, allow_pickle=False)
        ends = np.cumsum(z["counts"])
        starts = ends - z["counts"]
        entries = {}
        for k, a, b, det in zip(z["keys"], starts, ends, z["detector"], strict=True):
            entries[str(k)] = Faces(
                z["xyxy"][a:b], z["score"][a:b], z["landmarks"][a:b], z["landmark_source"][a:b].astype(object), str(det)
            )
        return cls(entries, {str(k): str(p) for k, p in zip(z["keys"], z["paths"], strict=True) if p})


def _iter_images(source: Any) -> Iterator[tuple[str, np.ndarray]]:
    """(name, image) from a folder, a list of paths or arrays, or a Hugging Face dataset with an image column."""
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        from .pipeline.sources import all_files  # walked as convert walks SRC (symlinked folders read through)

        source = sorted(p for p in all_files(Path(source)) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if hasattr(source, "column_names") and "image" in getattr(source, "column_names", []):
        for i, row in enumerate(source):
            yield f"#{i}", np.asarray(row["image"])
        return
    for i, item in enumerate(source):
        if isinstance(item, (str, os.PathLike)):
            yield str(item), read_image(item)
        else:
            yield f"#{i}", np.asarray(item)


def precompute_faces(
    source: Iterable[Any] | str | os.PathLike,
    out: str | os.PathLike | None = None,
    detector: str = "mtcnn",
    fallback: str | None = "aligned",
    batch: int = 64,
    progress: bool = False,
) -> FaceCache:
    """Detect faces once for a dataset (folder, paths, arrays or an HF dataset); save to `out` if given."""
    from tqdm import tqdm

    entries: dict[str, Faces] = {}
    paths: dict[str, str] = {}
    items = _iter_images(source)
    bar = tqdm(unit="img", disable=not progress, desc="faces")
    while chunk := [x for _, x in zip(range(batch), items, strict=False)]:
        faces = detect_batch([img for _, img in chunk], detector=detector, fallback=fallback)
        for (name, img), f in zip(chunk, faces, strict=True):
            key = content_key(img)
            entries[key] = f
            if not name.startswith("#"):
                paths[key] = name
        bar.update(len(chunk))
    bar.close()
    cache = FaceCache(entries, paths)
    if out is not None:
        cache.save(out)
    return cache
