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
        click.option(
            "--time-limit",
            type=float,
            default=None,
            help="Minutes of training: a one-cycle schedule (adamw) anneals to its floor by then, so --epochs is "
            "only an upper bound; with a constant rate (adam) training stops after the epoch that crosses it.",
        ),
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


def data_argument(ctx: click.Context, param: click.Parameter, value: str) -> str | Path:
    """DATA: a local path that must exist, or a URL of a sharded maskgen output (checked when read)."""
    from ..pipeline.remote import is_url

    if is_url(value):
        return value
    if not Path(value).exists():
        raise click.BadParameter(f"{value!r} does not exist", ctx, param)
    return Path(value)


@main.command("train")
@click.argument("data", callback=data_argument)
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
@click.argument("data", callback=data_argument)
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
    from ..train.run import default_eval_dir

    click.echo(f"report: {(out or default_eval_dir(run, data)) / 'report.html'}")


GRID_KEYS = {"clean", "masked", "out", "models", "model", "folds", "split", "train"}
TRAIN_KEYS = {
    "epochs", "batch_size", "lr", "seed", "class_weights", "augment", "optimizer", "l1", "stn_lr_scale",
    "patience", "time_limit",
}  # fmt: skip


def read_grid(path: Path) -> dict:
    """A grid file (TOML): clean, masked (a path, a list, or a table name = path), out, models, folds, split
    and a [train] table of training options; relative paths are relative to the file."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            raise MaskgenError("grid files need Python 3.11 or the tomli package") from None
    try:
        spec = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise BadParameter(f"{path}: not a readable TOML grid file ({e})") from None
    unknown = set(spec) - GRID_KEYS | set(spec.get("train", {})) - TRAIN_KEYS
    if unknown:
        raise BadParameter(
            f"{path}: unknown keys {sorted(unknown)}; use {sorted(GRID_KEYS)} and in [train] {sorted(TRAIN_KEYS)}"
        )

    def here(p: str) -> str:
        return str((path.parent / p) if not Path(p).is_absolute() else Path(p))

    if "clean" in spec:
        spec["clean"] = here(spec["clean"])
    if "out" in spec:
        spec["out"] = here(spec["out"])
    masked = spec.get("masked")
    if isinstance(masked, str):
        spec["masked"] = [here(masked)]
    elif isinstance(masked, list):
        spec["masked"] = [here(m) for m in masked]
    elif isinstance(masked, dict):
        spec["masked"] = [f"{k}={here(v)}" for k, v in masked.items()]
    models = spec.pop("models", spec.pop("model", None))
    if models is not None:
        spec["model"] = ",".join(models) if isinstance(models, list) else str(models)
    return spec


def masked_sets(specs: tuple[str, ...]) -> list[Path] | dict[str, Path]:
    """--masked PATH (repeatable) or NAME=PATH."""
    is_named = [("=" in s and not Path(s).exists()) for s in specs]
    named = dict(s.split("=", 1) for s, n in zip(specs, is_named, strict=True) if n)
    plain = [s for s, n in zip(specs, is_named, strict=True) if not n]
    if named and plain:
        raise BadParameter("name every --masked set (NAME=PATH) or none")
    for p in (*named.values(), *plain):
        if not Path(p).exists():
            raise BadParameter(f"--masked {p}: no such folder")
    return {k: Path(v) for k, v in named.items()} if named else [Path(p) for p in plain]


@main.command("experiment")
@click.option("--clean", type=click.Path(exists=True, path_type=Path), help="The unmasked SRC.")
@click.option(
    "--masked",
    multiple=True,
    help="A `maskgen convert` output made from SRC; repeat for several (zero, overlay, bands...), as "
    "NAME=PATH to name them.",
)
@click.option("--out", "-o", type=click.Path(path_type=Path))
@click.option("--folds", type=click.IntRange(min=2), default=None, help="k-fold cross-validation for every cell.")
@click.option(
    "--grid",
    "grid_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A TOML file with the grid (clean, masked, out, models, folds, split, [train]); options given on "
    "the command line win.",
)
@train_options
@click.pass_context
def experiment_cmd(ctx, clean, masked, out, folds, split, quiet, grid_file, **kw) -> None:
    """Train on clean and on masked data, test each on every set: the clean-vs-masked matrix.

    One model, one masked set, one split: a report per cell. Several models (`--model deep-emotion,
    deep-emotion-nostn,deep-emotion:l1=0.001`), several `--masked` sets or `--folds K`: a grid, mean +- std
    over folds, resumed cell by cell. `--time-limit` applies to each cell's training."""
    from click.core import ParameterSource

    if grid_file is not None:
        spec = read_grid(grid_file)
        given = {k for k in ctx.params if ctx.get_parameter_source(k) != ParameterSource.DEFAULT}
        top = {"clean": clean, "masked": masked, "out": out, "folds": folds, "split": split}
        for key in top:
            if key in spec and key not in given:
                top[key] = tuple(spec[key]) if key == "masked" else spec[key]
        clean, masked, out, folds, split = (top[k] for k in ("clean", "masked", "out", "folds", "split"))
        clean, out = Path(clean) if clean else None, Path(out) if out else None
        if "model" in spec and "model" not in given:
            kw["model"] = spec["model"]
        for key, value in spec.get("train", {}).items():
            if key not in given:
                kw[key] = value
    for name, value in (("--clean", clean), ("--masked", masked), ("--out", out)):
        if not value:
            raise BadParameter(f"experiment needs {name} (on the command line or in --grid)")
    sets = masked_sets(tuple(masked))
    models = [m for m in kw.pop("model").split(",") if m.strip()]
    if len(models) == 1 and not folds and isinstance(sets, list) and len(sets) == 1:
        require_train().experiment(
            clean, sets[0], out, make_train_args(model=models[0], **kw), split=split, progress=not quiet
        )
    else:
        from ..train.grid import grid

        base = make_train_args(model=models[0].split(":")[0], **kw)
        grid(clean, sets, out, base, models, split, folds, progress=False, echo=None if quiet else click.echo)
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
