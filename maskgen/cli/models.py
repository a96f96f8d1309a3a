"""Model commands: train, evaluate, experiment, predict (the `train` extra)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import BadParameter, MaskgenError
from ..io import IMAGE_SUFFIXES, read_image, write_image
from . import detector_option, fallback_option, main
from .outputs import plan_outputs, walk_inputs


def train_options(f):
    """Options shared by `train` and `experiment`."""
    opts = [
        click.option(
            "--model",
            "model",
            default="compact-cnn",
            show_default=True,
            help="Model (see `maskgen list`): deep-emotion[-nostn|-c50], compact-cnn, mini-xception, "
            "resnet18, logreg, svm, random-forest.",
        ),
        click.option("--epochs", default=30, show_default=True),
        click.option("--batch-size", type=int, default=None, help="Default: the model's (deep-emotion: 64)."),
        click.option("--lr", type=float, default=None, help="Default: the model's (deep-emotion: 0.004)."),
        click.option("--seed", default=0, show_default=True),
        click.option(
            "--split",
            default="subject",
            show_default=True,
            type=click.Choice(["subject", "random", "given"]),
            help="subject: no person in two splits (default when ids exist); random: by source image; "
            "given: the data's own split column.",
        ),
        click.option("--class-weights", is_flag=True, help="Weight the loss by inverse class frequency."),
        click.option("--augment/--no-augment", default=None, help="Flips, shifts, rotations (default: per model)."),
        click.option(
            "--optimizer",
            type=click.Choice(["adam", "adamw"]),
            default=None,
            help="adam: constant rate, as Deep-Emotion was published; adamw: AdamW with a one-cycle schedule "
            "(default: per model; deep-emotion: adam).",
        ),
        click.option(
            "--l1", type=float, default=0.0, show_default=True, help="L1 weight penalty (Deep-Emotion: 0.001)."
        ),
        click.option(
            "--stn-lr-scale",
            type=click.FloatRange(0, 10, min_open=True),
            default=0.1,
            show_default=True,
            help="Learning rate of Deep-Emotion's spatial transformer, as a fraction of --lr (1: one rate for all).",
        ),
        click.option("--patience", default=6, show_default=True, help="Early stopping: epochs without improvement."),
        click.option("--time-limit", type=float, default=None, help="Stop training after this many minutes."),
        click.option("-q", "--quiet", is_flag=True, help="No progress bar."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def require_train():
    """The trainer package, or a one-line error naming the extra to install."""
    try:
        from .. import train
    except ImportError as e:
        from ..errors import MissingExtra

        raise MissingExtra(
            f"this command needs the train extra ({e.name} is missing): pip install torch==2.13.0 'maskgen[train]'"
        ) from None
    return train


def make_train_args(
    model, epochs, batch_size, lr, seed, class_weights, augment, optimizer, l1, stn_lr_scale, patience, time_limit
):
    MODELS, TrainArgs = require_train().MODELS, require_train().TrainArgs  # noqa: N806

    MODELS.get(model)
    return TrainArgs(
        model=model,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        class_weights=class_weights,
        augment=augment,
        optimizer=optimizer,
        l1=l1,
        stn_lr_scale=stn_lr_scale,
        patience=patience,
        time_limit=time_limit * 60 if time_limit else None,
    )


def echo_metrics(m: dict) -> None:
    for w in m.get("warnings", []):
        click.secho(f"warning: {w}", fg="yellow", err=True)
    lo, hi = m.get("accuracy_ci95", (0.0, 1.0))
    click.echo(f"accuracy {m['accuracy']:.3f} (95% CI {lo:.3f}-{hi:.3f})  macro-F1 {m['macro_f1']:.3f}  (n = {m['n']})")
    for label, v in m["per_class"].items():
        click.echo(f"  {label:<12} P {v['precision']:.2f}  R {v['recall']:.2f}  F1 {v['f1']:.2f}  n {v['support']}")


@main.command("train")
@click.argument("data", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Run folder to write.")
@click.option(
    "--folds",
    type=click.IntRange(min=2),
    default=None,
    help="k-fold cross-validation instead of one split: folds by subject (--split subject, when ids exist) "
    "or source image, stratified by label; OUT/fold-NN per fold, mean and std in OUT/metrics.json.",
)
@click.option(
    "--val",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="A separate validation set for early stopping (e.g. FER2013's PublicTest folder); DATA is then all "
    "training data, and the report is on DATA's test split if it has one, else on VAL.",
)
@train_options
def train_cmd(data, out, folds, val, split, quiet, **kw) -> None:
    """Train a FER model on DATA (a maskgen output or a labelled folder); write model, metrics, report."""
    m = require_train().train(data, out, make_train_args(**kw), split=split, progress=not quiet, folds=folds, val=val)
    click.echo(m["note"])
    if folds:
        click.echo(
            f"{folds}-fold: accuracy {m['accuracy_mean']:.3f} +- {m['accuracy_std']:.3f}, "
            f"macro-F1 {m['macro_f1_mean']:.3f} +- {m['macro_f1_std']:.3f} (mean +- std over folds)"
        )
        for r in m["per_fold"]:
            click.echo(f"  fold {r['fold']:>2}  accuracy {r['accuracy']:.3f}  macro-F1 {r['macro_f1']:.3f}  n {r['n']}")
        click.echo("all folds pooled:")
    echo_metrics(m)
    click.echo(f"report: {out / 'report.html'}")


@main.command("evaluate")
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("data", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "-o", type=click.Path(path_type=Path), default=None, help="Default: RUN/eval-<data name>.")
@click.option("--split", default=None, help="Only the items of this split (e.g. test).")
@click.option(
    "--label-map",
    default=None,
    help="Rename DATA's labels to the model's: 'auto' (known synonyms: anger=angry, sadness=sad, ...) or "
    "pairs like anger=angry,contempt= (mapped to nothing: left out).",
)
def evaluate_cmd(run, data, out, split, label_map) -> None:
    """Evaluate a trained RUN on DATA: metrics, confusion matrix, saliency maps, report."""
    m = require_train().evaluate(run, data, out, split, label_map)
    echo_metrics(m)
    click.echo(f"report: {(out or run / f'eval-{data.name}') / 'report.html'}")


@main.command("experiment")
@click.option("--clean", required=True, type=click.Path(exists=True, path_type=Path), help="The unmasked SRC.")
@click.option(
    "--masked",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="A `maskgen convert` output made from SRC.",
)
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path))
@click.option("--folds", type=click.IntRange(min=2), default=None, help="k-fold cross-validation for every cell.")
@train_options
def experiment_cmd(clean, masked, out, folds, split, quiet, **kw) -> None:
    """Train on clean and on masked data, test each on both: the clean-vs-masked matrix.

    One model on one split: a report per cell. Several models (`--model deep-emotion,deep-emotion-nostn,
    deep-emotion:l1=0.001`) or `--folds K`: a grid, mean +- std over folds, resumed cell by cell."""
    models = [m for m in kw.pop("model").split(",") if m.strip()]
    if len(models) == 1 and not folds:
        require_train().experiment(
            clean, masked, out, make_train_args(model=models[0], **kw), split=split, progress=not quiet
        )
    else:
        from ..train.grid import grid

        base = make_train_args(model=models[0].split(":")[0], **kw)
        grid(clean, masked, out, base, models, split, folds, progress=False, echo=None if quiet else click.echo)
    click.echo((out / "matrix.md").read_text())
    click.echo(f"report: {out / 'report.html'}")


@main.command("predict")
@click.argument("run", type=click.Path(path_type=Path))
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder for images and videos with boxes and labels drawn.",
)
@click.option(
    "--mask-mode",
    type=click.Choice(["none", "zero"]),
    default="none",
    show_default=True,
    help="zero: blank the lower face before classifying (for models trained on zeroed faces).",
)
@detector_option
@fallback_option
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON record per face (frame, box, label, probabilities)."
)
@click.option("--every", default=1, show_default=True, help="Videos: detect every N frames.")
@click.option("--track", "tracking", is_flag=True, help="Videos: follow boxes between detections (template matching).")
@click.option("--overwrite", is_flag=True, help="Replace outputs that exist already (inputs are never replaced).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def predict_cmd(run, inputs, out, mask_mode, detector, fallback, as_json, every, tracking, overwrite, quiet) -> None:
    """Classify the expression of every face in INPUTS (images, folders or videos) with a trained RUN.

    With -o, each input's drawing goes to OUT/<its path in the input folder>/NAME_pred.png (videos:
    NAME_pred.mp4); with one input, -o may also name the file to write (e.g. -o result.mp4)."""
    require_train()
    from ..predict import VIDEO_SUFFIXES, Predictor, draw, predict_video

    predictor = Predictor(run, detector=detector, mask_mode=mask_mode, fallback=fallback)
    paths = walk_inputs(inputs, IMAGE_SUFFIXES + VIDEO_SUFFIXES)
    if not paths:
        raise MaskgenError(f"no images or videos found in {', '.join(map(str, inputs))}")

    def is_video(p: Path) -> bool:
        return p.suffix.lower() in VIDEO_SUFFIXES

    def names(rel: Path) -> list[str]:
        suffix = (rel.suffix if rel.suffix.lower() in (".avi", ".mp4") else ".mp4") if is_video(rel) else ".png"
        return [f"{rel.stem}_pred{suffix}"]

    targets: list[Path | None] = [None] * len(paths)
    if out is not None:
        single = len(paths) == 1 and not out.is_dir() and out.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES
        if single:  # -o names the file
            if is_video(paths[0][0]) != is_video(out):
                raise BadParameter(f"-o {out}: give a {'video' if is_video(paths[0][0]) else 'image'} file name")
            targets = [
                f[0]
                for f in plan_outputs([(paths[0][0], Path(out.name), None)], out.parent, lambda r: [r.name], overwrite)
            ]
        else:
            targets = [f[0] for f in plan_outputs(paths, out, names, overwrite)]
    failed = 0
    for (path, _, _), dst in zip(paths, targets, strict=True):
        if not path.exists():
            click.echo(f"Error: {path}: no such file", err=True)
            failed += 1
            continue
        if is_video(path):

            def emit(n, preds, path=path):
                if as_json:
                    for p in preds:
                        click.echo(json.dumps({"source": str(path), "frame": n, **p.to_json()}))

            try:
                s = predict_video(predictor, path, dst, every, tracking, emit, progress=not quiet and not as_json)
            except MaskgenError as e:
                click.echo(f"Error: {e}", err=True)
                failed += 1
                continue
            if not as_json:
                click.echo(
                    f"{path}: {s.frames} frames at {s.fps:.1f} fps, faces in {s.frames_with_faces}"
                    + (f" -> {dst}" if dst else "")
                )
            if s.frames_with_faces == 0:
                click.echo(f"Note: no face found in any frame of {path}", err=True)
            continue
        try:
            img = read_image(path)
        except MaskgenError as e:
            click.echo(f"Error: {e} (not an image or a video with a known suffix)", err=True)
            failed += 1
            continue
        preds = predictor.predict(img)
        if as_json:
            for p in preds:
                click.echo(json.dumps({"source": str(path), "frame": None, **p.to_json()}))
        else:
            faces = ", ".join(f"{p.label} {p.confidence:.0%}" for p in preds) or "no face found"
            click.echo(f"{path}: {faces}" + (f" -> {dst}" if dst else ""))
        if dst is not None:
            write_image(dst, draw(img, preds))
    if failed:
        raise MaskgenError(f"{failed} input(s) could not be processed")
