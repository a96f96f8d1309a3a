import numpy as np
import pytest

import maskgen as mg
from maskgen.detectors import get_detector
from maskgen.landmarks import (
    MOUTH,
    NOSE_TIP,
    fit_68_from_5,
    five_points,
    landmarks_are_sane,
    mean_shape,
    mtcnn_five,
)
from maskgen.types import Faces

from .conftest import shared_set


def test_faces_container():
    f = Faces(np.array([[0, 0, 10, 10], [0, 0, 30, 20]]), [0.9, 0.8], np.zeros((2, 68, 2)), ["fitted-5", "prior"])
    assert len(f) == 2 and len(Faces.empty()) == 0
    assert f.largest().xyxy.tolist() == [[0, 0, 30, 20]]
    assert len(f.filter(sources=("fitted-5",))) == 1 and len(f.filter(min_score=0.85)) == 1
    assert len(f[np.array([True, False])]) == 1
    with pytest.raises(ValueError):
        Faces(np.zeros((1, 4)), [1], np.zeros((1, 68, 2)), ["guessed"])


def test_mean_shape_is_a_face():
    s = mean_shape()
    assert s.shape == (68, 2)
    assert landmarks_are_sane(s - s.min(0) + 1, 10, 10)
    # MTCNN's learned five points fit back to the mean shape exactly, and lie near the iBUG equivalents
    assert np.allclose(fit_68_from_5(mtcnn_five()), s, atol=1e-6)
    assert np.abs(mtcnn_five() - five_points(s)).max() < 0.2


@pytest.mark.parametrize("name", ["512", "128", "48", "gray", "rot+20", "rot-20"])
def test_mtcnn_finds_the_astronaut_at_every_size(astronaut_sizes, name):
    img = astronaut_sizes[name]
    faces = mg.detect(img)
    assert len(faces) >= 1
    f = faces.largest()
    assert f.landmark_source[0] == "fitted-5" and f.detector == "mtcnn"
    lm = f.landmarks[0]
    assert landmarks_are_sane(lm, img.shape[1], img.shape[0])
    x0, y0, x1, y1 = f.xyxy[0]
    assert x0 <= lm[NOSE_TIP, 0] <= x1 and y0 <= lm[NOSE_TIP, 1] <= y1
    if name.startswith("rot"):  # the eye line follows the head's tilt
        d = lm[42:48].mean(0) - lm[36:42].mean(0)
        angle = np.degrees(np.arctan2(d[1], d[0]))
        assert (angle < -10) if name == "rot+20" else (angle > 10)


def test_rgba_and_16bit_inputs(astronaut):
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    assert len(mg.detect(rgba)) == 1
    assert len(mg.detect(astronaut.astype(np.uint16) * 257)) == 1


def test_dlib_gives_68_real_points(samples):
    pytest.importorskip("dlib")
    img = samples["grace_hopper"]
    f = mg.detect(img, detector="dlib").largest()
    assert f.landmark_source[0] == "detector-68"
    # the project's mtcnn fit agrees with dlib's real points to a fraction of the eye distance
    g = mg.detect(img).largest()
    iod = np.linalg.norm(f.landmarks[0, 36:42].mean(0) - f.landmarks[0, 42:48].mean(0))
    err = np.linalg.norm(f.landmarks[0, 27:] - g.landmarks[0, 27:], axis=1).mean()
    assert err < 0.15 * iod


def test_dlib_missing_extra_says_how_to_install(monkeypatch):
    import maskgen.detectors.dlib as mod

    monkeypatch.setattr(mod.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(mg.errors.MissingExtra, match=r"pip install 'maskgen\[dlib\]'"):
        mod.DlibDetector()(np.zeros((48, 48), np.uint8))


def test_aligned_prior_is_explicit():
    blank = np.full((48, 48), 128, np.uint8)
    assert len(mg.detect(blank)) == 0  # a flat grey square is not a face
    f = mg.detect(blank, fallback="aligned")
    assert len(f) == 1 and f.landmark_source[0] == "prior" and f.detector == "aligned"
    lm = f.landmarks[0]
    assert lm[36:48, 1].mean() < lm[NOSE_TIP, 1] < lm[MOUTH, 1].mean()


def test_unknown_detector_lists_choices():
    with pytest.raises(mg.errors.UnknownName, match="choose one of: .*mtcnn"):
        mg.detect(np.zeros((48, 48), np.uint8), detector="haar")


def test_detector_pickles_without_its_model(astronaut):
    import pickle

    det = get_detector("mtcnn")
    det(astronaut)
    clone = pickle.loads(pickle.dumps(det))
    assert clone._net is None and len(clone(astronaut)) == 1


@pytest.mark.parametrize("name", ["fer2013-dev", "ckplus48-dev", "jaffe-dev"])
def test_detection_rate_on_dev_sets(name):
    paths = shared_set(name)
    ok = 0
    for p in paths:
        img = mg.read_image(p)
        f = mg.detect(img).largest()
        ok += len(f) == 1 and landmarks_are_sane(f.landmarks[0], img.shape[1], img.shape[0])
    assert ok / len(paths) >= 0.97, f"{name}: {ok}/{len(paths)}"


def test_batch_equals_one_by_one_on_small_crops():
    paths = shared_set("fer2013-dev")[:128]
    imgs = [mg.read_image(p) for p in paths]
    det = get_detector("mtcnn")
    for one, many in zip([det(im) for im in imgs], det.batch(imgs), strict=True):
        assert len(one) == len(many)
        assert np.allclose(one.landmarks, many.landmarks, atol=1e-3)


def test_zoomed_onet_rescues_loose_crops_without_the_cascade(monkeypatch):
    from maskgen.detectors.mtcnn import ZOOM

    det = get_detector("mtcnn")
    imgs = [mg.read_image(p) for p in shared_set("fer2013-dev")]
    judged = det._judge(*det._onet_whole([np.dstack([im] * 3) for im in imgs]), 48, 48, det.onet_threshold)
    rejected = [im for im, face in zip(imgs, judged, strict=True) if face is None]
    assert 0 < len(rejected) < 0.1 * len(imgs)

    def no_cascade(*a, **k):
        raise AssertionError("cascade called")

    monkeypatch.setattr(det, "_cascade_padded", no_cascade)
    rescued = []
    for im in rejected:
        try:
            rescued.append(det(im))
        except AssertionError:
            continue
    assert len(rescued) >= len(rejected) // 3, f"zoom {ZOOM} rescued {len(rescued)}/{len(rejected)}"
    for f in rescued:
        assert len(f) == 1 and landmarks_are_sane(f.landmarks[0], 48, 48)
        assert f.landmarks[0][:, 0].min() >= -2 and f.landmarks[0][:, 0].max() <= 50  # mapped back to the crop


def _reference_onet():
    """O-Net as OpenCV's classic dnn engine runs it (OpenCV 4.x has only that engine)."""
    import cv2

    from maskgen.detectors.mtcnn import _onnx_path

    classic = getattr(cv2.dnn, "ENGINE_CLASSIC", None)
    if classic is None:
        return cv2.dnn.readNetFromONNX(_onnx_path("onet"))
    return cv2.dnn.readNetFromONNX(_onnx_path("onet"), engine=classic)


def test_mtcnn_nets_give_the_reference_numbers_on_one_thread(astronaut):
    """onnxruntime runs the same O-Net as OpenCV's classic engine, to float precision, on one thread.
    (OpenCV 5.0's default engine differs from both by up to 0.06 in the point outputs.)"""
    import cv2

    det = get_detector("mtcnn")
    onet = det.net._onet
    assert onet.session.get_session_options().intra_op_num_threads == 1
    x0, y0, x1, y1 = det(astronaut).xyxy[0]
    crops = []
    for m in (0.0, 0.1, 0.2):  # the face box, and looser crops around it
        dx, dy = m * (x1 - x0), m * (y1 - y0)
        face = astronaut[int(y0 - dy) : int(y1 + dy), int(x0 - dx) : int(x1 + dx)]
        crop = cv2.resize(face, (48, 48), interpolation=cv2.INTER_AREA)
        crops += [crop, np.dstack([crop @ np.array([0.299, 0.587, 0.114])] * 3)]
    x = (np.stack(crops).astype(np.float32) - 127.5) * 0.0078125
    x = np.ascontiguousarray(x.transpose(0, 2, 1, 3))
    names = ["dense_5", "dense_6", "softmax_2"]
    onet.setInput(x)
    ours = onet.forward(names)
    ref = _reference_onet()
    ref.setInput(x)
    for a, b in zip(ours, ref.forward(names), strict=True):
        assert np.abs(a - b).max() < 1e-4
    assert (ours[2][:, 1] > 0.9).all()  # every crop is a face


def test_mtcnn_without_onnxruntime_says_how_to_install(monkeypatch):
    import sys

    from maskgen.detectors.mtcnn import OnnxNet, _onnx_path

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(mg.errors.MissingExtra, match="pip install onnxruntime"):
        OnnxNet(_onnx_path("onet"))


def test_small_crop_cascade_honours_its_minimum_face(astronaut_sizes):
    from maskgen.io import as_rgb

    det = get_detector("mtcnn")
    crop = as_rgb(astronaut_sizes["48"])
    _, scores, _ = det._cascade_padded(crop, 0.5, det.crop_min_face)
    assert len(scores) >= 1 and scores.max() > 0.9  # the padded, upscaled 48 px crop: one clear face
    _, scores, _ = det._cascade_padded(crop, 0.5, 400)  # larger than the whole upscaled copy
    assert len(scores) == 0


def test_large_photos_are_searched_on_a_reduced_copy(monkeypatch, astronaut):
    import maskgen.detectors as det

    full = mg.detect(astronaut)
    seen = []
    real = det.get_detector("mtcnn")
    monkeypatch.setattr(det, "DETECT_MAX_SIDE", 256)
    monkeypatch.setattr(det, "get_detector", lambda name: lambda im: seen.append(im.shape) or real(im))
    small = mg.detect(astronaut)
    assert seen == [(256, 256, 3)]  # the detector saw the reduced copy
    assert len(small) == len(full) == 1
    iod = np.linalg.norm(full.landmarks[0, 36] - full.landmarks[0, 45])
    assert np.abs(small.xyxy - full.xyxy).max() < 0.1 * iod  # boxes and points in the photo's own pixels
    assert np.median(np.linalg.norm(small.landmarks[0] - full.landmarks[0], axis=1)) < 0.1 * iod
