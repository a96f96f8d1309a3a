"""FER2013's official protocol: train on the whole training split, choose on PublicTest.

`--recipe default` (the default recipe, fixed training time, default 30 minutes per model): two models, one
trained on clean faces, one on masked faces (random overlays; faces MTCNN cannot find masked from the
aligned-crop prior, recorded as such), each tested on clean and on masked PublicTest (3,589 images), with
95% Wilson intervals, beside the targets (>= 68% clean, >= 57% masked).

`--recipe kaist`: the FER2013 row of the KAIST report's Table 2, from examples/recipes/kaist-table2.toml: the
four Deep-Emotion variants at the published settings (Adam, lr 0.004, batch 64), trained on clean and on
8:2-zeroed faces, each tested on both; `--epochs` caps each model (no time limit, so the figures do not
depend on what else the machine runs).

PublicTest also chooses the epoch, as the protocol allows; PrivateTest, the figure papers report, is not on
this machine. Needs ../shared/data/fer2013-train and fer2013-publictest. The masked copies are made once into
--work (`maskgen convert` resumes) and reused.
Usage: python bench/fer2013.py [--recipe default|kaist] [--minutes 30] [--model compact-cnn] [--epochs N]
                               [--work /tmp/maskgen-fer2013] [--reuse]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import tomllib

from maskgen.train.grid import parse_variant
from maskgen.train.loop import TrainArgs
from maskgen.train.run import evaluate, train

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
KAIST = ROOT / "examples" / "recipes" / "kaist-table2.toml"
TARGETS = {"clean": 0.68, "masked": 0.57}
# what each recipe masks with: `maskgen convert` options
MASKS = {
    "default": ("masked", ["--types", "random", "--color", "random"]),
    "kaist": ("zero", ["--strategy", "zero"]),
}


def masked_copy(src: Path, dst: Path, options: list[str]) -> Path:
    cmd = [sys.executable, "-m", "maskgen", "convert", str(src), str(dst), *options]
    subprocess.run([*cmd, "--fallback", "aligned", "--quiet"], check=True)
    return dst


def models(a: argparse.Namespace) -> list[tuple[str, TrainArgs]]:
    """(label, training arguments) per model of the recipe."""
    if a.recipe == "default":
        return [(a.model, TrainArgs(model=a.model, epochs=a.epochs or 60, time_limit=a.minutes * 60 or None))]
    grid = tomllib.loads(KAIST.read_text())
    base = replace(TrainArgs(), **grid["train"])
    base = replace(base, epochs=a.epochs or base.epochs, time_limit=a.minutes * 60 or None)
    return [parse_variant(spec, base) for spec in grid["models"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", choices=sorted(MASKS), default="default")
    ap.add_argument("--minutes", type=float, default=None, help="training time per model (default 30; kaist: none)")
    ap.add_argument("--model", default="compact-cnn", help="the default recipe's model")
    ap.add_argument("--epochs", type=int, default=None, help="upper bound (default 60; kaist: 10)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/maskgen-fer2013"))
    ap.add_argument("--reuse", action="store_true", help="evaluate runs already in --work trained with these settings")
    a = ap.parse_args()
    if a.minutes is None:
        a.minutes = 30.0 if a.recipe == "default" else 0.0
    if a.epochs is None and a.recipe == "kaist":
        a.epochs = 10
    train_dir, val_dir = SHARED / "fer2013-train", SHARED / "fer2013-publictest"
    if not (train_dir.is_dir() and val_dir.is_dir()):
        sys.exit(f"needs {train_dir} and {val_dir}")
    t = time.perf_counter()
    name, options = MASKS[a.recipe]
    data = {
        "clean": (train_dir, val_dir),
        name: (
            masked_copy(train_dir, a.work / f"train-{name}", options),
            masked_copy(val_dir, a.work / f"val-{name}", options),
        ),
    }
    print(f"masked copies ready in {time.perf_counter() - t:.0f} s ({a.work})")
    rows = []
    for label, args in models(a):
        for cond, (tr, va) in data.items():
            out = a.work / f"run-{label.replace(':', '-')}-{cond}"
            done = out / "run.json"
            if not (a.reuse and done.exists() and json.loads(done.read_text())["train_args"] == args.resolved()):
                train(tr, out, args, val=va, progress=False)
            run = json.loads(done.read_text())
            hist = run["history"]
            for test_cond, (_, test_dir) in data.items():
                m = evaluate(out, test_dir, out / f"eval-{test_cond}")
                lo, hi = m["accuracy_ci95"]
                rows.append(
                    (label, cond, test_cond, m, lo, hi, len(hist["epochs"]), hist["best_epoch"], hist["seconds"])
                )
    limit = f"{a.minutes:g} min per model" if a.minutes else f"up to {a.epochs} epochs per model"
    print(f"\nrecipe {a.recipe}, {limit}; PublicTest ({rows[0][3]['n']} images); test-time views: {rows[0][3]['tta']}")
    print(
        f"{'model':<22} {'train':<7} {'test':<7} {'accuracy':>9} {'95% interval':>15} {'macro-F1':>9} "
        f"{'epochs':>7} {'best':>5} {'minutes':>8}  target"
    )
    for label, cond, test_cond, m, lo, hi, epochs, best, secs in rows:
        target = TARGETS.get(cond) if cond == test_cond and a.recipe == "default" else None
        verdict = "" if target is None else f">= {target:.0%}: {'met' if m['accuracy'] >= target else 'NOT met'}"
        print(
            f"{label:<22} {cond:<7} {test_cond:<7} {m['accuracy']:>9.1%} {f'{lo:.1%}-{hi:.1%}':>15} "
            f"{m['macro_f1']:>9.3f} {epochs:>7} {best:>5} {secs / 60:>8.1f}  {verdict}"
        )


if __name__ == "__main__":
    main()
