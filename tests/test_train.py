"""The reference trainer on real faces: every model beats chance, reports are valid, splits are honest."""

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("torch")
pytest.importorskip("sklearn")

import maskgen as mg  # noqa: E402
from maskgen.cli import main  # noqa: E402
from maskgen.pipeline import ConvertConfig, convert  # noqa: E402
from maskgen.train import MODELS, Run, TrainArgs  # noqa: E402
from maskgen.train.data import label_set, load_images, load_items, make_split  # noqa: E402
from maskgen.train.run import train_on  # noqa: E402

from .conftest import SHARED, shared_set  # noqa: E402


def assert_balanced_html(text: str) -> None:
    """Every container tag of a report is closed, in order (a missing </table> swallows what follows)."""
    from html.parser import HTMLParser

    stack: list[str] = []
    void = {"img", "br", "meta", "hr", "link", "input"}

    class Check(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag not in void:
                stack.append(tag)

        def handle_endtag(self, tag):
            assert stack and stack[-1] == tag, f"</{tag}> closes <{stack[-1] if stack else None}>"
            stack.pop()

    Check().feed(text)
    assert not stack, f"unclosed: {stack}"


@pytest.fixture(scope="module")
def ckplus():
    shared_set("ckplus48-dev")
    items = load_items(SHARED / "ckplus48-dev")
    return items, load_images(items)


def test_subject_split_shares_no_subject(ckplus):
    items, _ = ckplus
    sp = make_split(items, "subject", seed=0)
    subjects = {k: {items[i].subject for i in v} for k, v in sp.index.items()}
    assert all(subjects[k] for k in ("train", "val", "test"))
    assert not (
        subjects["train"] & subjects["val"]
        or subjects["train"] & subjects["test"]
        or subjects["val"] & subjects["test"]
    )
    assert sum(len(v) for v in sp.index.values()) == len(items)


@pytest.mark.parametrize("model", MODELS.names())
def test_each_model_beats_chance(tmp_path, ckplus, model):
    items, x = ckplus
    labels = label_set(items)
    sp = make_split(items, "random", seed=0, ratios=(0.6, 0.1, 0.3))
    epochs = 15
    run, m = train_on(
        items,
        labels,
        sp,
        tmp_path / "run",
        TrainArgs(model=model, epochs=epochs, patience=20),
        "ck",
        progress=False,
        x=x,
    )
    chance = max(np.bincount([labels.index(items[i].label) for i in sp.index["test"]])) / len(sp.index["test"])
    assert m["n"] == len(sp.index["test"]) >= 40
    assert m["accuracy"] >= chance + 0.15, f"{model}: {m['accuracy']:.2f} vs majority class {chance:.2f}"
    loaded = Run.load(tmp_path / "run")  # the saved model predicts as the trained one did
    test = x[np.array(sp.index["test"])]
    assert np.allclose(loaded.predict_proba(test), run.predict_proba(test), atol=1e-5)


def test_test_time_views():
    """`flip` averages the image and its mirror; `zoom` adds each enlarged and reduced: on a flat image all
    views are the same image, on a real one they differ; probabilities sum to one."""
    import torch

    from maskgen.errors import BadParameter
    from maskgen.train.loop import predict_proba_torch, to_tensor

    torch.manual_seed(0)
    model = MODELS.create("deep-emotion-nostn", classes=7)  # no batch norm: an untrained net still varies
    flat = to_tensor(np.full((2, 48, 48), 90, np.uint8))
    assert np.allclose(
        predict_proba_torch(model, flat, tta="zoom"), predict_proba_torch(model, flat, tta="none"), atol=1e-6
    )
    img = to_tensor(np.random.default_rng(0).integers(0, 256, (4, 48, 48), dtype=np.uint8))
    zoomed, flipped = predict_proba_torch(model, img, tta="zoom"), predict_proba_torch(model, img, tta="flip")
    assert np.allclose(zoomed.sum(1), 1, atol=1e-5) and not np.allclose(zoomed, flipped, atol=1e-5)
    with pytest.raises(BadParameter, match="tta must be"):
        predict_proba_torch(model, img, tta="crops")


def test_run_outputs_are_valid(tmp_path, ckplus):
    items, x = ckplus
    sp = make_split(items, "subject", seed=0)
    train_on(items, label_set(items), sp, tmp_path, TrainArgs(model="deep-emotion", epochs=3), "ck", False, x)
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert {"accuracy", "macro_f1", "per_class"} <= set(m) and "subject split" in m["note"]
    assert m["tta"] == "zoom"  # the reported figures say which test-time views they average
    assert set(m["per_class"]) == set(label_set(items))
    run, test = Run.load(tmp_path), x[np.array(sp.index["test"])]
    hits = run.predict_proba(test, tta="zoom").argmax(1) == [
        label_set(items).index(items[i].label) for i in sp.index["test"]
    ]
    assert hits.mean() == pytest.approx(m["accuracy"])
    for png in ("confusion.png", "saliency.png", "curves.png"):
        assert mg.read_image(tmp_path / png).shape[0] > 100
    html = (tmp_path / "report.html").read_text()
    assert len(re.findall(r'src="data:image/png;base64,', html)) == 3 and "macro-F1" in html
    assert_balanced_html(html)
    meta = json.loads((tmp_path / "run.json").read_text())
    assert meta["split"]["mode"] == "subject" and meta["preprocess"]["size"] == 48


def test_unknown_optimizer_is_a_one_line_error():
    from maskgen.errors import BadParameter
    from maskgen.train.loop import fit_torch

    x, y = np.zeros((16, 48, 48), np.uint8), np.arange(16) % 2
    with pytest.raises(BadParameter, match="optimizer must be"):
        fit_torch(TrainArgs(model="deep-emotion", optimizer="sgd", epochs=1), 2, x, y, x, y, progress=False)


def test_spatial_transformer_learns_at_its_own_rate():
    import torch

    from maskgen.train.loop import param_groups

    torch.manual_seed(0)
    model = MODELS.create("deep-emotion", classes=7)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    groups, rates = param_groups(model, 0.004, 0.1)
    assert rates == [0.004, pytest.approx(0.0004)]
    opt = torch.optim.Adam(groups)
    x = torch.randn(8, 1, 48, 48)
    torch.nn.functional.cross_entropy(model(x), torch.arange(8) % 7).backward()
    opt.step()  # Adam's first step moves every parameter with a gradient by about its rate
    step = {n: float((p.detach() - before[n]).abs().max()) for n, p in model.named_parameters()}
    assert step["fc_loc.2.bias"] == pytest.approx(0.0004, rel=0.05)
    assert step["conv1.weight"] == pytest.approx(0.004, rel=0.05)
    assert len(param_groups(MODELS.create("deep-emotion-nostn", classes=7), 0.004, 0.1)[0]) == 1


def test_one_cycle_shape_matches_torch():
    import torch

    from maskgen.train.loop import one_cycle

    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=0.004)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.004, total_steps=1001, pct_start=0.15)
    for step in range(1001):
        if step % 10 == 0:
            assert one_cycle(step / 1000, 0.004) == pytest.approx(opt.param_groups[0]["lr"], rel=0.02, abs=1e-8)
        opt.step()
        if step < 1000:
            sched.step()


def test_time_limit_anneals_the_rate_to_its_floor_by_the_deadline(monkeypatch):
    import torch

    from maskgen.train import loop

    clock = [0.0]
    monkeypatch.setattr(loop.time, "perf_counter", lambda: clock[0])
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=0.004)
    sched = loop.TimedOneCycle(opt, [0.004], total_steps=1000, seconds=60.0)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.004 / 25)
    clock[0] = 9.0  # 15% of the time: the peak, although only one step of 1000 was taken
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.004) and not sched.done
    clock[0] = 60.0
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.004 / 25 / 1e4) and sched.done

    # a run cut by the clock stops mid-epoch, within its limit, with the rate at its floor
    x, y = np.random.default_rng(0).integers(0, 255, (256, 48, 48), dtype=np.uint8), np.arange(256) % 2
    ticks = iter(range(10_000))
    monkeypatch.setattr(loop.time, "perf_counter", lambda: float(next(ticks)))
    args = TrainArgs(model="deep-emotion-nostn", optimizer="adamw", batch_size=16, epochs=50, time_limit=30)
    _, hist = loop.fit_torch(args, 2, x, y, x[:32], y[:32], progress=False)
    assert len(hist.epochs) <= 2 and hist.seconds <= 32

    # the cut epoch's loss is the mean over the batches it ran, not their sum over the whole epoch
    calls = iter(range(10_000))
    monkeypatch.setattr(loop.time, "perf_counter", lambda: 0.0 if next(calls) < 21 else 1e9)
    _, hist = loop.fit_torch(args, 2, x, y, x[:32], y[:32], progress=False)
    assert len(hist.epochs) == 2 and hist.epochs[1]["loss"] > 0.5  # about ln 2 on two random classes


def test_collapsed_model_is_flagged():
    from maskgen.train.evaluate import metrics

    labels = ["angry", "happy", "sad"]
    y = np.array([0, 1, 2, 1] * 25)
    assert metrics(y, np.ones(100, int), labels)["warnings"][0].startswith("collapsed: predicts 'happy' for 100%")
    never = metrics(y, np.where(y == 2, 1, y), labels)["warnings"]
    assert never == ["never predicts: sad (if rare in training, try --class-weights)"]
    assert metrics(y, y, labels)["warnings"] == []


def test_cli_train_evaluate_experiment(tmp_path):
    shared_set("ckplus48-dev")
    runner = CliRunner()
    res = runner.invoke(
        main,
        [
            "train",
            str(SHARED / "ckplus48-dev"),
            "-o",
            str(tmp_path / "run"),
            "--model",
            "deep-emotion",
            "--epochs",
            "3",
            "--optimizer",
            "adamw",
            "-q",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "subject split" in res.output and "accuracy" in res.output
    assert json.loads((tmp_path / "run" / "run.json").read_text())["train_args"]["optimizer"] == "adamw"
    res = runner.invoke(main, ["evaluate", str(tmp_path / "run"), str(SHARED / "ckplus48-dev")])
    assert res.exit_code == 0 and "accuracy" in res.output
    assert (tmp_path / "run" / "eval-ckplus48-dev" / "report.html").exists()
    if (SHARED / "jaffe-dev").is_dir():  # CK+ says anger/sadness, JAFFE angry/sad and has neutral
        res = runner.invoke(main, ["evaluate", str(tmp_path / "run"), str(SHARED / "jaffe-dev")])
        assert res.exit_code == 1 and "--label-map auto (angry=anger" in res.output and "Traceback" not in res.output
        res = runner.invoke(main, ["evaluate", str(tmp_path / "run"), str(SHARED / "jaffe-dev"), "--label-map", "auto"])
        assert res.exit_code == 1 and "neutral" in res.output  # CK+48 has no neutral: say so, do not guess
        res = runner.invoke(
            main,
            [
                "evaluate",
                str(tmp_path / "run"),
                str(SHARED / "jaffe-dev"),
                "--label-map",
                "angry=anger,sad=sadness,neutral=",
            ],
        )
        assert res.exit_code == 0, res.output
        assert "(n = 39)" in res.output  # 45 JAFFE images less the 6 neutral ones
    convert(SHARED / "ckplus48-dev", tmp_path / "masked", ConvertConfig(strategy="zero"))
    res = runner.invoke(
        main,
        [
            "experiment",
            "--clean",
            str(SHARED / "ckplus48-dev"),
            "--masked",
            str(tmp_path / "masked"),
            "-o",
            str(tmp_path / "exp"),
            "--model",
            "logreg",
            "-q",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "| clean |" in res.output and "| masked |" in res.output
    rows = (tmp_path / "exp" / "matrix.csv").read_text().splitlines()
    assert rows[0] == "train,test,accuracy,ci95_low,ci95_high,macro_f1,n" and len(rows) == 5
    assert "95% Wilson interval" in res.output and res.output.count("test set") == 2  # a noise verdict per column
    report = (tmp_path / "exp" / "report.html").read_text()
    assert_balanced_html(report)
    for cell in re.findall(r"href='([^']+)'", report):
        assert (tmp_path / "exp" / cell).is_file()
    assert len(re.findall(r"href='", report)) == 4
    res = runner.invoke(main, ["train", str(SHARED / "ckplus48-dev"), "-o", str(tmp_path / "r2"), "--model", "vit"])
    assert res.exit_code == 1 and "choose one of" in res.output and "Traceback" not in res.output
    res = runner.invoke(
        main, ["train", str(SHARED / "ckplus48-dev"), "-o", str(tmp_path / "r3"), "--stn-lr-scale", "0"]
    )
    assert res.exit_code == 2 and "--stn-lr-scale" in res.output and not (tmp_path / "r3").exists()


def test_wilson_interval():
    from maskgen.train.evaluate import wilson

    lo, hi = wilson(5, 10)
    assert abs(lo - 0.2366) < 1e-3 and abs(hi - 0.7634) < 1e-3
    assert wilson(0, 10)[0] == 0.0 and abs(wilson(0, 10)[1] - 0.2775) < 1e-3
    assert wilson(0, 0) == (0.0, 1.0)


def test_folds_keep_subjects_and_variants_together_and_stratify(tmp_path):
    from collections import Counter

    from maskgen.train.data import load_items, make_folds

    shared_set("ckplus48-dev")
    items = load_items(SHARED / "ckplus48-dev")
    folds = make_folds(items, 5, "subject", seed=0)
    tests = [set(f.index["test"]) for f in folds]
    assert sorted(i for t in tests for i in t) == list(range(len(items)))  # every item tested exactly once
    for f in folds:
        parts = {k: {items[i].subject for i in v} for k, v in f.index.items()}
        assert not parts["train"] & parts["test"] and not parts["val"] & parts["test"]
        assert not parts["train"] & parts["val"] and f.index["val"]
    overall = Counter(it.label for it in items)
    for t in tests:  # each fold holds roughly its share of every frequent label
        got = Counter(items[i].label for i in t)
        for label, n in overall.items():
            if n >= 30:
                assert abs(got[label] / len(t) - n / len(items)) < 0.15, (label, got)
    convert(SHARED / "ckplus48-dev", tmp_path / "m", ConvertConfig(types=("kn95", "surgical"), fallback="aligned"))
    masked = load_items(tmp_path / "m")
    for f in make_folds(masked, 4, "random", seed=1):  # no subject column in the split: by source image
        sources = {k: {masked[i].source for i in v} for k, v in f.index.items()}
        assert not sources["test"] & (sources["train"] | sources["val"])  # both variants in one part


def test_cli_train_folds_reports_mean_std_and_resumes(tmp_path):
    shared_set("ckplus48-dev")
    args = ["train", str(SHARED / "ckplus48-dev"), "-o", str(tmp_path / "cv"), "--model", "logreg", "--folds", "3"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "3-fold: accuracy" in res.output and "+-" in res.output and "95% CI" in res.output
    m = json.loads((tmp_path / "cv" / "metrics.json").read_text())
    assert m["folds"] == 3 and len(m["per_fold"]) == 3 and m["n"] == 183
    assert abs(m["accuracy_mean"] - np.mean([r["accuracy"] for r in m["per_fold"]])) < 1e-9
    assert m["accuracy_ci95"][0] <= m["accuracy"] <= m["accuracy_ci95"][1]
    assert (tmp_path / "cv" / "fold-02" / "report.html").exists() and (tmp_path / "cv" / "confusion.png").exists()
    stamp = (tmp_path / "cv" / "fold-01" / "model.pkl").stat().st_mtime_ns
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and (tmp_path / "cv" / "fold-01" / "model.pkl").stat().st_mtime_ns == stamp
    assert json.loads((tmp_path / "cv" / "metrics.json").read_text())["per_fold"] == m["per_fold"]


def test_noise_notes_say_when_cells_differ_by_less_than_the_noise():
    from maskgen.train.evaluate import wilson
    from maskgen.train.experiment import noise_notes

    def cell(tr, te, hits, n):
        return {"train": tr, "test": te, "accuracy": hits / n, "accuracy_ci95": wilson(hits, n), "n": n}

    small = [cell("clean", "clean", 70, 79), cell("masked", "clean", 66, 79)]
    small += [cell("clean", "masked", 30, 79), cell("masked", "masked", 70, 79)]
    notes = noise_notes(small)
    assert "less than the noise" in notes[0] and "trained masked is better" in notes[1]


def test_train_with_a_separate_validation_set(tmp_path):
    shared_set("fer2013-dev")
    val = tmp_path / "val"
    # the mechanics only: 50 of the 350 as the validation folder (a real run keeps the two apart)
    for p in sorted((SHARED / "fer2013-dev").glob("*/*.jpg"))[::7]:
        (val / p.parent.name).mkdir(parents=True, exist_ok=True)
        (val / p.parent.name / p.name).write_bytes(p.read_bytes())
    res = CliRunner().invoke(
        main,
        ["train", str(SHARED / "fer2013-dev"), "-o", str(tmp_path / "run"), "--model", "logreg", "--val", str(val)],
    )
    assert res.exit_code == 0, res.output
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["split"]["counts"] == {"train": 350, "val": 50, "test": 50}
    assert "no test split: reported on it" in meta["split"]["note"] and "(n = 50)" in res.output


def test_experiment_grid_with_folds_resumes_cell_by_cell(tmp_path):
    shared_set("ckplus48-dev")
    convert(SHARED / "ckplus48-dev", tmp_path / "zero", ConvertConfig(strategy="zero", fallback="aligned"))
    args = [
        "experiment",
        "--clean",
        str(SHARED / "ckplus48-dev"),
        "--masked",
        str(tmp_path / "zero"),
        "-o",
        str(tmp_path / "grid"),
        "--model",
        "logreg,logreg:seed=1",
        "--folds",
        "2",
    ]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "[8/8]" in res.output and "2-fold cross-validation" in res.output
    md = (tmp_path / "grid" / "matrix.md").read_text()
    assert "| train / test | logreg | logreg:seed=1 |" in md
    assert (
        sum(line.count("+-") for line in md.splitlines() if line.startswith("| clean") or line.startswith("| masked"))
        == 8
    )
    rows = (tmp_path / "grid" / "matrix.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 2 * 4
    summary = json.loads((tmp_path / "grid" / "grid.json").read_text())
    accs = [float(r.split(",")[4]) for r in rows[1:] if r.startswith("logreg,") and ",masked,masked," in r]
    assert abs(summary["logreg|masked|masked"]["mean"] - np.mean(accs)) < 1e-9
    assert (tmp_path / "grid" / "logreg_seed=1" / "fold-02" / "train-masked" / "report.html").exists()
    stamp = (tmp_path / "grid" / "logreg" / "fold-01" / "train-clean" / "model.pkl").stat().st_mtime_ns
    again = CliRunner().invoke(main, args)  # every cell is finished: reused, and the same table
    assert again.exit_code == 0 and (tmp_path / "grid" / "matrix.md").read_text() == md
    assert (tmp_path / "grid" / "logreg" / "fold-01" / "train-clean" / "model.pkl").stat().st_mtime_ns == stamp


def test_grid_file_with_several_masked_sets_and_command_line_overrides(tmp_path):
    shared_set("ckplus48-dev")
    src = SHARED / "ckplus48-dev"
    for strategy in ("zero", "bands"):
        convert(src, tmp_path / strategy, ConvertConfig(strategy=strategy, fallback="aligned"))
    spec = tmp_path / "grid.toml"
    spec.write_text(
        f'clean = "{src}"\nout = "runs/g"\nmodels = ["logreg"]\nfolds = 5\n'
        '[masked]\nzero = "zero"\nbands = "bands"\n[train]\nseed = 3\n'
    )
    res = CliRunner().invoke(main, ["experiment", "--grid", str(spec), "--folds", "2"])  # the command line wins
    assert res.exit_code == 0, res.output
    out = tmp_path / "runs" / "g"  # relative to the grid file
    md = (out / "matrix.md").read_text()
    assert "2-fold" in md
    pairs = [p for p in re.findall(r"^\| (\w+) / (\w+) \|", md, re.M) if p != ("train", "test")]
    assert sorted(pairs) == sorted((a, b) for a in ("clean", "zero", "bands") for b in ("clean", "zero", "bands"))
    rows = (out / "matrix.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 3 * 3
    assert json.loads((out / "logreg" / "fold-01" / "train-bands" / "run.json").read_text())["train_args"]["seed"] == 3
    spec.write_text('clean = "x"\n[train]\nepoch = 3\n')
    res = CliRunner().invoke(main, ["experiment", "--grid", str(spec)])
    assert res.exit_code != 0 and "epoch" in res.output and "Traceback" not in res.output


def test_the_kaist_recipe_runs_small(tmp_path):
    """examples/recipes/kaist-table2.toml on the CK+48 dev subset: the published random split, one epoch per
    cell (the docs' table comes from the full recipe)."""
    from .conftest import REPO

    shared_set("ckplus48-dev")
    convert(SHARED / "ckplus48-dev", tmp_path / "zero", ConvertConfig(strategy="zero", fallback="aligned"))
    recipe = REPO / "examples" / "recipes" / "kaist-table2.toml"
    args = ["experiment", "--grid", str(recipe), "--clean", str(SHARED / "ckplus48-dev")]
    args += ["--masked", f"zero={tmp_path / 'zero'}", "-o", str(tmp_path / "kaist"), "--split", "random"]
    args += ["--epochs", "1", "--model", "deep-emotion-c50,deep-emotion:l1=0.001"]  # two of its four, for time
    from maskgen.cli.models import read_grid

    assert read_grid(recipe)["model"] == "deep-emotion,deep-emotion-nostn,deep-emotion-c50,deep-emotion:l1=0.001"
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    md = (tmp_path / "kaist" / "matrix.md").read_text()
    assert "| train / test | deep-emotion-c50 | deep-emotion:l1=0.001 |" in md
    assert "random split" in md
    run = json.loads((tmp_path / "kaist" / "deep-emotion-c50" / "split" / "train-zero" / "run.json").read_text())
    assert run["train_args"]["lr"] == 0.004 and run["train_args"]["batch_size"] == 64
    assert run["train_args"]["epochs"] == 1 and run["train_args"]["patience"] == 20
