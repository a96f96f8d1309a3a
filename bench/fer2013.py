"""FER2013's official protocol with the default recipe: train on the whole training split, choose on PublicTest.

Two models, each with a fixed training time (default 30 minutes on this machine): one trained on clean faces,
one on masked faces (random overlays; faces MTCNN cannot find masked from the aligned-crop prior, recorded as
such). Each is tested on clean and on masked PublicTest (3,589 images), with 95% Wilson intervals, beside the
targets (>= 68% clean, >= 57% masked). PublicTest also chooses the epoch, as the protocol allows; PrivateTest,
the figure papers report, is not on this machine.

Needs ../shared/data/fer2013-train and fer2013-publictest. The masked copies are made once into --work
(`maskgen convert` resumes) and reused.
Usage: python bench/fer2013.py [--minutes 30] [--model compact-cnn] [--work /tmp/maskgen-fer2013] [--reuse]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from maskgen.train.loop import TrainArgs
from maskgen.train.run import evaluate, train

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TARGETS = {"clean": 0.68, "masked": 0.57}


def masked_copy(src: Path, dst: Path) -> Path:
    cmd = [sys.executable, "-m", "maskgen", "convert", str(src), str(dst), "--types", "random", "--color", "random"]
    subprocess.run([*cmd, "--fallback", "aligned", "--quiet"], check=True)
    return dst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="training time per model")
    ap.add_argument("--model", default="compact-cnn")
    ap.add_argument("--epochs", type=int, default=60, help="upper bound; the time limit usually ends training")
    ap.add_argument("--work", type=Path, default=Path("/tmp/maskgen-fer2013"))
    ap.add_argument("--reuse", action="store_true", help="evaluate runs already in --work trained with these settings")
    a = ap.parse_args()
    train_dir, val_dir = SHARED / "fer2013-train", SHARED / "fer2013-publictest"
    if not (train_dir.is_dir() and val_dir.is_dir()):
        sys.exit(f"needs {train_dir} and {val_dir}")
    t = time.perf_counter()
    data = {
        "clean": (train_dir, val_dir),
        "masked": (masked_copy(train_dir, a.work / "train-masked"), masked_copy(val_dir, a.work / "val-masked")),
    }
    print(f"masked copies ready in {time.perf_counter() - t:.0f} s ({a.work})")
    rows = []
    for cond, (tr, va) in data.items():
        out = a.work / f"run-{a.model}-{cond}"
        args = TrainArgs(model=a.model, epochs=a.epochs, time_limit=a.minutes * 60)
        done = out / "run.json"
        if not (a.reuse and done.exists() and json.loads(done.read_text())["train_args"] == args.resolved()):
            train(tr, out, args, val=va, progress=False)
        run = json.loads(done.read_text())
        hist = run["history"]
        for test_cond, (_, test_dir) in data.items():
            m = evaluate(out, test_dir, out / f"eval-{test_cond}")
            lo, hi = m["accuracy_ci95"]
            rows.append((cond, test_cond, m, lo, hi, len(hist["epochs"]), hist["best_epoch"], hist["seconds"]))
    print(
        f"\nmodel {a.model}, {a.minutes:g} min per model; PublicTest ({rows[0][2]['n']} images); "
        f"test-time views: {rows[0][2]['tta']}"
    )
    print(
        f"{'train':<8} {'test':<8} {'accuracy':>9} {'95% interval':>15} {'macro-F1':>9} {'epochs':>7} "
        f"{'best':>5} {'minutes':>8}  target"
    )
    for cond, test_cond, m, lo, hi, epochs, best, secs in rows:
        target = TARGETS[cond] if cond == test_cond else None
        verdict = "" if target is None else f">= {target:.0%}: {'met' if m['accuracy'] >= target else 'NOT met'}"
        print(
            f"{cond:<8} {test_cond:<8} {m['accuracy']:>9.1%} {f'{lo:.1%}-{hi:.1%}':>15} {m['macro_f1']:>9.3f} "
            f"{epochs:>7} {best:>5} {secs / 60:>8.1f}  {verdict}"
        )


if __name__ == "__main__":
    main()
