"""On-the-fly masking for training loops: torch DataLoaders and Hugging Face datasets.

    from maskgen.transforms import MaskFaces
    tf = MaskFaces(types="random", p=0.8, seed=0)          # picklable; detector loads once per worker
    masked = tf(pil_image)                                 # same kind back: PIL, numpy or CHW tensor

Seeding: with `seed=None` every call draws fresh randomness. With a seed, call k in a worker uses
(seed, the worker's torch seed, epoch, k): torch gives each worker a new seed every epoch (drawn from
the main process's generator), so epochs differ and `torch.manual_seed` reproduces a whole run.
Outside a DataLoader, `set_epoch(e)` plays that role.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from .detectors import detect
from .errors import BadParameter, MaskgenError
from .facecache import FaceCache
from .seeds import CounterRng, item_seed, splitmix_number, splitmix_stream, unit_draws, unit_draws_array
from .strategies import STRATEGIES, check_image, get_strategy, resolve_many
from .strategies.batch import apply_batch, apply_grouped, batchable_image, batchable_job
from .templates import MASK_TYPES
from .types import Faces


def _torch_worker_seed() -> int | None:
    """The DataLoader worker's seed; None outside workers."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    info = torch.utils.data.get_worker_info()
    return None if info is None else int(info.seed)


_SERIAL_PID: int | None = None  # the process whose OpenCV threading `_serial_opencv_in_worker` has settled


def _serial_opencv_in_worker() -> None:
    """In a DataLoader worker, run OpenCV on the worker's own thread, as PyTorch runs torch there: the
    workers already fill the cores, and OpenCV's pool threads only contend with them (a batch's blend
    took 1.7x as long with two OpenCV threads as with one on a loaded two-core machine). Once per process;
    `setNumThreads(0)`, since setting 1 in a forked worker hangs."""
    global _SERIAL_PID
    if (pid := os.getpid()) == _SERIAL_PID:
        return
    _SERIAL_PID = pid
    if _torch_worker_seed() is not None:
        import cv2

        cv2.setNumThreads(0)


def _to_array(image: Any) -> tuple[np.ndarray, Any]:
    """(HWC or HW array, a function turning an array of that layout back into the input's kind)."""
    if isinstance(image, np.ndarray):
        return image, lambda a: a
    if type(image).__module__.startswith("PIL"):
        from PIL import Image

        mode = image.mode
        if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):  # 16-bit gray (and 32-bit): masked as such
            arr = np.asarray(image)
            lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
            top = 255 if mode == "F" else 65535
            if lo < 0 or hi > top:
                raise BadParameter(f"a PIL {mode!r} image must hold values in 0-{top}, got {lo:g} to {hi:g}")
            kind = np.float32 if mode == "F" else np.uint16
            return arr.astype(kind), lambda a: Image.fromarray(np.ascontiguousarray(a).astype(kind)).convert(mode)
        if mode in ("P", "1", "CMYK", "YCbCr", "LAB", "HSV", "PA"):  # masked and returned as RGB(A)
            rgb = image.convert("RGBA" if mode == "PA" or "transparency" in image.info else "RGB")
            return np.asarray(rgb), lambda a: Image.fromarray(np.ascontiguousarray(a), rgb.mode)
        return np.asarray(image), lambda a: Image.fromarray(np.ascontiguousarray(a), mode=mode)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] not in (1, 2, 3, 4):
            hint = "; for HWC use tensor.permute(2, 0, 1)" if image.ndim == 3 and image.shape[2] in (1, 3, 4) else ""
            raise BadParameter(f"expected a CHW tensor (C in 1-4), got shape {tuple(image.shape)}{hint}")
        dtype, device = image.dtype, image.device
        arr = image.detach().cpu().permute(1, 2, 0).numpy()

        def back(a: np.ndarray) -> Any:
            return torch.from_numpy(np.ascontiguousarray(a.reshape(arr.shape))).permute(2, 0, 1).to(device, dtype)

        return arr, back
    raise BadParameter(f"MaskFaces takes a PIL image, a numpy array or a CHW torch tensor, not {type(image).__name__}")


class MaskFaces:
    """Mask the faces of one image per call; returns the same kind (and the occlusion if asked).

    In a DataLoader worker, the first call sets OpenCV to run on the worker's own thread
    (`cv2.setNumThreads(0)`), as PyTorch does for torch in its workers.
    """

    def __init__(
        self,
        strategy: str = "overlay",
        types: str | Sequence[str] = "random",
        p: float = 1.0,
        detector: str = "mtcnn",
        fallback: str | None = "aligned",
        seed: int | None = None,
        return_occlusion: bool = False,
        faces: FaceCache | str | os.PathLike | None = None,
        **params: Any,
    ) -> None:
        STRATEGIES.get(strategy)
        if not 0.0 <= p <= 1.0:
            raise BadParameter(f"p must be between 0 and 1, got {p}")
        self.types = [types] if isinstance(types, str) else list(types)
        for t in self.types:
            if t != "random":
                MASK_TYPES.get(t)
        self.strategy, self.p, self.detector, self.fallback = strategy, p, detector, fallback
        self.seed, self.return_occlusion, self.params = seed, return_occlusion, params
        self.faces = FaceCache.load(faces) if isinstance(faces, (str, os.PathLike)) else faces
        self.epoch = 0
        self._calls = 0
        self._start: tuple[str | None, int] = (None, 0)  # (worker seed and epoch, where their seeds start)
        self.unmasked = 0  # calls where no face was found (image returned as it was)

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self._calls = epoch, 0

    def _next_seed(self) -> int:
        """The next call's seed: `_next_seeds(1)`, without arrays."""
        self._calls += 1
        if self.seed is None:
            return int.from_bytes(os.urandom(8), "big") >> 1
        return splitmix_number(self._sequence_start(), self._calls) >> 1

    def _next_seeds(self, n: int) -> np.ndarray:
        """The seeds of the next `n` calls (63-bit, uint64): with a seed, call k's is number k of a splitmix64
        sequence started from (seed, the worker's torch seed, epoch)."""
        first, self._calls = self._calls + 1, self._calls + n
        if self.seed is None:
            return np.frombuffer(os.urandom(8 * n), np.uint64) >> np.uint64(1)
        return splitmix_stream(self._sequence_start(), first, n) >> np.uint64(1)

    def _sequence_start(self) -> int:
        key = f"{_torch_worker_seed()}:{self.epoch}"
        if key != self._start[0]:  # a new worker seed or epoch
            self._start = (key, item_seed(self.seed, key))
        return self._start[1]

    def __call__(self, image: Any) -> Any:
        _serial_opencv_in_worker()
        return self.apply(image, self._next_seed())

    def _draw(self, arr: np.ndarray, seed: int) -> tuple[Faces, dict[str, Any]] | None:
        """Whether and how to mask this image: (faces, resolved params), or None to leave it."""
        a, k, sub = unit_draws(seed, 3)  # whether, which type, and the strategy's own seed
        if not (a >> 11) * 2.0**-53 < self.p:
            return None
        kind = min((k >> 11) * len(self.types) >> 53, len(self.types) - 1)
        return self._resolve(arr, self.faces.get(arr) if self.faces is not None else None, kind, sub >> 1)

    def _draw_many(self, images: np.ndarray, seeds: np.ndarray) -> list[tuple[Faces, dict[str, Any]] | None]:
        """`_draw` for a stack of images: the seeds' draws and the cache's keys computed at once."""
        a, k, sub = unit_draws_array(seeds, 3)
        apply = ((a >> np.uint64(11)).astype(np.float64) * 2.0**-53 < self.p).tolist()
        n = np.uint64(len(self.types))
        kinds = np.minimum(((k >> np.uint64(11)) * n) >> np.uint64(53), n - np.uint64(1)).tolist()
        chosen = [i for i, yes in enumerate(apply) if yes]
        found: dict[int, Faces | None] = dict.fromkeys(chosen)
        if self.faces is not None and chosen:
            looked_up = self.faces.get_many(images if len(chosen) == len(images) else images[chosen])
            found.update(zip(chosen, looked_up, strict=True))
        by_kind: dict[int, list[int]] = {}
        for i in chosen:
            faces = found[i]
            if faces is None or not len(faces):  # detected here, or counted as faceless
                found[i] = faces = self._faces_of(images[i], faces)
            if faces is not None:
                by_kind.setdefault(kinds[i], []).append(i)
        out: list[tuple[Faces, dict[str, Any]] | None] = [None] * len(images)
        for kind, idx in by_kind.items():  # the parameters of one kind drawn at once
            drawn = resolve_many(self.strategy, sub[idx] >> np.uint64(1), **self._params(kind))
            for i, params in zip(idx, drawn, strict=True):
                out[i] = (found[i], params)
        return out

    def _params(self, kind: int) -> dict[str, Any]:
        params = dict(self.params)
        if self.strategy == "overlay":
            params["type"] = self.types[kind]
        return params

    def _faces_of(self, arr: np.ndarray, faces: Faces | None) -> Faces | None:
        """The image's faces (detected unless given), or None (counted in `unmasked`) if it has none."""
        if faces is None:
            faces = detect(arr, detector=self.detector, fallback=self.fallback)
        if not len(faces):
            self.unmasked += 1
            return None
        return faces

    def _resolve(
        self, arr: np.ndarray, faces: Faces | None, kind: int, sub_seed: int
    ) -> tuple[Faces, dict[str, Any]] | None:
        """The faces (detected unless given) and the strategy's parameters drawn from `sub_seed`."""
        faces = self._faces_of(arr, faces)
        if faces is None:
            return None
        return faces, get_strategy(self.strategy).resolve(CounterRng(sub_seed), **self._params(kind))

    def apply(self, image: Any, seed: int) -> Any:
        """Mask with an explicit seed (the same image and seed give the same result)."""
        arr, back = _to_array(image)
        arr = check_image(arr)
        drawn = self._draw(arr, seed)
        if drawn is None:
            occlusion = np.zeros(arr.shape[:2], np.uint8)
        elif (done := apply_grouped(self.strategy, [(arr, *drawn)])[0]) is not None:  # a small crop: lean path
            arr, occlusion = done[0], done[1].astype(np.uint8) * 255
        else:
            arr, occlusion = get_strategy(self.strategy).apply(arr, drawn[0], **drawn[1])
        out = back(arr)
        return (out, occlusion) if self.return_occlusion else out

    def batch(self, images: np.ndarray, inplace: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Mask a (B,H,W) or (B,H,W,3|4) uint8 batch; returns a new array, or with `inplace` the batch itself
        masked (and (B,H,W) occlusions if asked).

        The same bytes as calling the transform on each image in turn (same seeds, same draws), but the
        per-pixel work runs once for the whole batch: several times cheaper for small crops. Images with
        more than one face or over 160x160 pixels, `zero` with extent='face' or a mean/noise fill take
        the one-image path.
        `MaskCollate` calls this from a DataLoader's collate_fn.
        """
        x = np.asarray(images)
        if x.dtype != np.uint8 or x.ndim not in (3, 4) or x.ndim == 4 and x.shape[3] not in (3, 4):
            raise BadParameter(f"batch() takes a (B,H,W) or (B,H,W,3|4) uint8 array, got {x.dtype} {x.shape}")
        if inplace and not x.flags.writeable:
            raise BadParameter("batch(inplace=True) needs a writable array")
        _serial_opencv_in_worker()
        occ = np.zeros(x.shape[:3], bool) if self.return_occlusion else None
        strat = get_strategy(self.strategy)
        drawn = self._draw_many(x, self._next_seeds(len(x)))  # every draw and cache key before any pixel changes
        out = x if inplace else x.copy()
        todo = [i for i, d in enumerate(drawn) if d is not None]
        together = []  # one shape, so one batch
        if batchable_image(x.shape[1:], x.dtype):
            together = [i for i in todo if batchable_job(self.strategy, *drawn[i])]
        if together:
            stack = out if len(together) == len(x) else out[together]
            try:
                occ_together = apply_batch(self.strategy, stack, [drawn[i] for i in together])
            except MaskgenError:  # each one alone below, where its own error shows
                together = []
            else:
                if stack is not out:
                    out[together] = stack
                if occ is not None:
                    occ[together] = occ_together
        for i in sorted(set(todo) - set(together)):
            faces, p = drawn[i]
            out[i], occ_i = strat.apply(x[i], faces, **p)
            if occ is not None:
                occ[i] = occ_i > 0
        return (out, occ.astype(np.uint8) * 255) if occ is not None else out

    def __repr__(self) -> str:
        return (
            f"MaskFaces(strategy={self.strategy!r}, types={self.types!r}, p={self.p}, detector={self.detector!r}, "
            f"fallback={self.fallback!r}, seed={self.seed})"
        )


class HFMask:
    """Masking for Hugging Face datasets, batched.

    `ds.with_transform(HFMask(...))` masks on access (new masks each time, seeded like MaskFaces);
    `ds.map(HFMask(seed=0), batched=True, with_indices=True)` writes masks fixed per example index.
    """

    def __init__(self, image_column: str = "image", occlusion_column: str | None = None, **kwargs: Any) -> None:
        self.image_column, self.occlusion_column = image_column, occlusion_column
        self.transform = MaskFaces(return_occlusion=True, **kwargs)

    def __call__(self, batch: dict[str, Any], indices: list[int] | int | None = None) -> dict[str, Any]:
        if self.image_column not in batch:
            raise BadParameter(f"no column {self.image_column!r} in the batch (columns: {', '.join(batch)})")
        if not isinstance(batch[self.image_column], list):  # one example: ds.map(HFMask(...)) without batched=True
            one = self({k: [v] for k, v in batch.items()}, [indices] if isinstance(indices, int) else None)
            return {k: v[0] for k, v in one.items()}
        images, occlusions = [], []
        tf = self.transform
        for i, img in enumerate(batch[self.image_column]):
            if indices is not None and tf.seed is not None:  # map(): fixed per example index
                out, occ = tf.apply(img, item_seed(tf.seed, "example", indices[i]))
            else:
                out, occ = tf(img)
            images.append(out)
            occlusions.append(occ)
        batch = dict(batch)
        batch[self.image_column] = images
        if self.occlusion_column:
            from PIL import Image

            batch[self.occlusion_column] = [Image.fromarray(o) for o in occlusions]
        return batch


class MaskCollate:
    """A DataLoader `collate_fn` that masks each batch at once with `MaskFaces.batch`.

        loader = DataLoader(ds, batch_size=64, num_workers=2,
                            collate_fn=MaskCollate(MaskFaces(types="random", faces=cache, seed=0)))

    The dataset returns uint8 images (H,W), (H,W,3) or (C,H,W) (as `torchvision.io.read_image` gives) as
    numpy arrays or tensors, alone or first in a tuple (image, label, ...), or under `key` in a dict. The
    batch's images come back as a uint8 tensor in the layout they came in; convert to float in the
    training step. Runs in the workers; seeds and OpenCV threads as in MaskFaces.
    """

    def __init__(self, transform: MaskFaces, key: int | str = 0, collate: Any = None) -> None:
        self.transform, self.key, self.collate = transform, key, collate

    def __call__(self, items: list[Any]) -> Any:
        import torch
        from torch.utils.data import default_collate

        batch = (self.collate or default_collate)(items)
        single = isinstance(batch, torch.Tensor)
        images = batch if single else batch[self.key]
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
            raise BadParameter("MaskCollate needs uint8 images from the dataset (convert to float after masking)")
        # (B,C,H,W), as torchvision.io.read_image gives: masked as (B,H,W,C) and returned as it came
        chw = images.ndim == 4 and images.shape[1] in (1, 3, 4) and images.shape[3] not in (3, 4)
        x = images.permute(0, 2, 3, 1) if chw else images
        if x.ndim == 4 and x.shape[3] == 1:
            x = x[..., 0]
        # masked where default_collate put it (in a worker: shared memory, so the batch is not copied again
        # to reach the main process); a (B,C,H,W) batch is masked as a (B,H,W,C) copy
        arr = x.numpy()
        inplace = self.collate is None and arr.flags.c_contiguous and arr.flags.writeable  # a batch of its own
        masked = self.transform.batch(arr if inplace else np.ascontiguousarray(arr), inplace=inplace)
        occlusion = None
        if self.transform.return_occlusion:
            masked, occlusion = masked
        if inplace:
            masked = images  # its own storage (shared memory in a worker), masked through `arr`
        else:
            masked = torch.from_numpy(masked).reshape(x.shape)
            if chw:
                masked = masked.reshape(images.permute(0, 2, 3, 1).shape).permute(0, 3, 1, 2).contiguous()
        if occlusion is not None:
            masked = (masked, torch.from_numpy(occlusion))
        if single:
            return masked
        if isinstance(batch, dict):
            return {**batch, self.key: masked}
        return type(batch)([masked if i == self.key else v for i, v in enumerate(batch)])
