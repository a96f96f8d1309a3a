"""Inference on real faces: a model trained here predicts on the astronaut and on a short video."""

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("torch")

import maskgen as mg  # noqa: E402
from maskgen.cli import main  # noqa: E402
from maskgen.predict import Predictor  # noqa: E402
from maskgen.train import TrainArgs, train  # noqa: E402

from .conftest import SHARED, shared_set  # noqa: E402


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    shared_set("ckplus48-dev")
    out = tmp_path_factory.mktemp("run")
    train(SHARED / "ckplus48-dev", out, TrainArgs(model="deep-emotion", epochs=4), progress=False)
    return out


@pytest.fixture(scope="module")
def video(tmp_path_factory, astronaut):
    """20 frames of the astronaut panning across a 320x240 frame, written with VideoWriter."""
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (320, 240))
    face = cv2.resize(astronaut[0:300, 80:380], (200, 200))
    for i in range(20):
        frame = np.full((240, 320, 3), 90, np.uint8)
        x = 10 + 5 * i
        frame[20:220, x : x + 200] = face
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def test_predictor_api(run_dir, astronaut):
    p = Predictor(run_dir)
    preds = p.predict(astronaut)
    assert len(preds) == 1
    pred = preds[0]
    assert pred.label in p.run.labels and abs(sum(pred.probabilities.values()) - 1) < 1e-4
    assert pred.confidence == max(pred.probabilities.values())
    zeroed = Predictor(run_dir, mask_mode="zero")
    crop = zeroed.crops(astronaut, mg.detect(astronaut))[0]
    assert (crop[-8:] == 0).all() and crop[:16].std() > 5  # lower face blanked, eyes kept


def test_cli_predict_image_json_and_drawing(run_dir, astronaut, tmp_path):
    mg.write_image(tmp_path / "astronaut.png", astronaut)
    res = CliRunner().invoke(
        main, ["predict", str(run_dir), str(tmp_path / "astronaut.png"), "--json", "-o", str(tmp_path / "out")]
    )
    assert res.exit_code == 0, res.output
    rec = json.loads(res.output.strip().splitlines()[0])
    assert rec["frame"] is None and len(rec["box"]) == 4 and rec["label"] in rec["probabilities"]
    drawn = mg.read_image(tmp_path / "out" / "astronaut_pred.png")
    x0, y0, x1, y1 = (int(v) for v in rec["box"])
    ring = np.zeros(astronaut.shape[:2], bool)
    ring[max(y0 - 2, 0) : y1 + 3, max(x0 - 2, 0) : x1 + 3] = True
    ring[y0 + 3 : y1 - 2, x0 + 3 : x1 - 2] = False
    changed = (drawn != astronaut).any(2)
    assert changed[ring].mean() > 0.5 and changed[~ring].mean() < 0.05  # the box, and little else


def test_cli_predict_video(run_dir, video, tmp_path):
    res = CliRunner().invoke(
        main, ["predict", str(run_dir), str(video), "-o", str(tmp_path), "--json", "--every", "2", "--track"]
    )
    assert res.exit_code == 0, res.output
    recs = [json.loads(line) for line in res.output.strip().splitlines()]
    assert {r["frame"] for r in recs} == set(range(20))  # detected on even frames, tracked on odd ones
    cap = cv2.VideoCapture(str(tmp_path / "clip_pred.avi"))
    n, size = 0, None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        n, size = n + 1, frame.shape[:2]
    assert n == 20 and size == (240, 320) and abs(cap.get(cv2.CAP_PROP_FPS) - 10.0) < 0.01


def test_bad_inputs(run_dir, tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["predict", str(tmp_path / "no_run"), str(tmp_path)])
    assert res.exit_code == 1 and "not a maskgen run" in res.output
    (tmp_path / "notes.txt").write_text("hello")
    res = runner.invoke(main, ["predict", str(run_dir), str(tmp_path / "notes.txt")])
    assert res.exit_code == 1 and "not an image or a video" in res.output and "Traceback" not in res.output
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 1000)
    res = runner.invoke(main, ["predict", str(run_dir), str(tmp_path / "broken.mp4")])
    assert res.exit_code == 1 and "broken.mp4" in res.output and len(res.output.strip().splitlines()) <= 2
    blank = tmp_path / "blank.avi"
    w = cv2.VideoWriter(str(blank), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (64, 48))
    for _ in range(3):
        w.write(np.full((48, 64, 3), 128, np.uint8))
    w.release()
    res = runner.invoke(main, ["predict", str(run_dir), str(blank)])
    assert res.exit_code == 0 and "no face found in any frame" in res.output


def test_cli_predict_writes_one_named_file_and_keeps_inputs_apart(run_dir, video, astronaut, tmp_path):
    res = CliRunner().invoke(main, ["predict", str(run_dir), str(video), "-o", str(tmp_path / "result.mp4"), "-q"])
    assert res.exit_code == 0, res.output
    cap = cv2.VideoCapture(str(tmp_path / "result.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 20 and not list(tmp_path.glob(".*part*"))
    src = tmp_path / "src"
    for sub in ("a", "b"):
        (src / sub).mkdir(parents=True)
    mg.write_image(src / "a" / "x.jpg", astronaut)
    mg.write_image(src / "a" / "x.png", astronaut)
    mg.write_image(src / "b" / "x.jpg", astronaut[:, ::-1])
    res = CliRunner().invoke(main, ["predict", str(run_dir), str(src), "-o", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    made = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.png"))
    assert made == ["a/x_png_pred.png", "a/x_pred.png", "b/x_pred.png"]
    res = CliRunner().invoke(main, ["predict", str(run_dir), str(src), "-o", str(tmp_path / "out")])
    assert res.exit_code == 1 and "--overwrite" in res.output


def test_label_stays_inside_the_frame():
    from maskgen.predict import Prediction, draw

    img = np.full((120, 160, 3), 90, np.uint8)

    def text_pixels(box) -> int:  # the dark text on its green label
        drawn = draw(img, [Prediction(box, "surprise", 0.93, {"surprise": 0.93}, "detected")])
        return int((drawn.max(2) < 60).sum())

    whole = text_pixels((60.0, 50.0, 90.0, 80.0))  # well inside the frame: the whole label
    assert whole > 20
    for box in ((130.0, 0.0, 160.0, 30.0), (-10.0, 100.0, 20.0, 140.0), (140.0, 110.0, 170.0, 140.0)):
        assert text_pixels(box) >= 0.95 * whole, box  # at a border: still all of it
