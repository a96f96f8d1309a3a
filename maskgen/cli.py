"""The `maskgen` command line: parses options and calls the library, nothing more."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np

from . import __version__
from .detectors import DETECTORS, detect
from .draw import draw_faces
from .errors import BadParameter, MaskgenError
from .io import IMAGE_SUFFIXES, read_image, write_image
from .seeds import item_seed
from .strategies import STRATEGIES, mask
from .templates import MASK_TYPES


class MaskgenGroup(click.Group):
    """Turns MaskgenError into one line on stderr and exit code 1 (a traceback only with --debug)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MaskgenError as e:
            if ctx.params.get("debug"):
                raise
            click.echo(f"Error: {e}", err=True)
            sys.exit(1)


@click.group(cls=MaskgenGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="maskgen")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
def main(debug: bool) -> None:
    """Turn face-image datasets into masked-face datasets for facial-expression research."""


def registries() -> dict[str, object]:
    regs: dict[str, object] = {"detectors": DETECTORS, "strategies": STRATEGIES, "mask types": MASK_TYPES}
    try:
        from .train import MODELS

        regs["models (maskgen[train])"] = MODELS
    except ImportError:
        pass
    return regs


@main.command("list")
def list_cmd() -> None:
    """List the registered detectors, strategies and mask types."""
    for title, reg in registries().items():
        click.echo(f"{title}:")
        for name, doc in reg.describe().items():
            click.echo(f"  {name:<14} {doc}")


detector_option = click.option(
    "--detector",
    default="mtcnn",
    show_default=True,
    help="Face detector (see `maskgen list`).",
)
fallback_option = click.option(
    "--fallback",
    type=click.Choice(["aligned"]),
    default=None,
    help="When no face is found, use the aligned-crop prior (recorded as landmark_source=prior).",
)


@main.command("detect")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@detector_option
@fallback_option
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON object per image (with all 68 points).",
)
@click.option(
    "--draw",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder to write each image with boxes and points.",
)
def detect_cmd(
    images: tuple[Path, ...],
    detector: str,
    fallback: str | None,
    as_json: bool,
    draw: Path | None,
) -> None:
    """Find faces and 68 landmarks in IMAGES; print box, score and landmark source per face."""
    DETECTORS.get(detector)
    failed = 0
    for path in images:
        try:
            img = read_image(path)
        except MaskgenError as e:
            click.echo(f"Error: {e}", err=True)
            failed += 1
            continue
        faces = detect(img, detector=detector, fallback=fallback)
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "path": str(path),
                        "width": img.shape[1],
                        "height": img.shape[0],
                        "faces": faces.to_records(),
                    }
                )
            )
        else:
            click.echo(f"{path}: {len(faces)} face(s)")
            for rec in faces.to_records():
                box = ", ".join(f"{v:.1f}" for v in rec["box"])
                click.echo(
                    f"  box [{box}]  score {rec['score']:.3f}  landmarks {rec['landmark_source']} ({rec['detector']})"
                )
        if draw is not None:
            write_image(draw / f"{path.stem}_faces.png", draw_faces(img, faces))
    if failed:
        raise MaskgenError(f"{failed} of {len(images)} input(s) could not be read")


def parse_params(items: tuple[str, ...]) -> dict[str, object]:
    """`--param key=value` pairs; values are read as JSON when they parse (numbers, lists), else as text."""
    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BadParameter(f"--param takes key=value, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def expand_images(sources: tuple[Path, ...]) -> list[Path]:
    """Files as given, folders walked recursively for image files (sorted)."""
    paths: list[Path] = []
    for src in sources:
        if src.is_dir():
            paths += sorted(p for p in src.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        else:
            paths.append(src)
    return paths


strategy_option = click.option(
    "--strategy", default="overlay", show_default=True, help="Masking strategy: overlay, zero or bands."
)
param_option = click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="Any other strategy parameter, e.g. ratio=0.8, fill=noise, region=eyes, pattern=dots, jitter=0.5.",
)


@main.command("mask")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--out", "outdir", required=True, type=click.Path(path_type=Path), help="Output folder.")
@strategy_option
@click.option("--type", "mask_type", default=None, help="Mask type for overlay (see `maskgen list`), or 'random'.")
@click.option("--color", default=None, help="Mask colour: a name, #rrggbb, or 'random'.")
@click.option("--seed", default=0, show_default=True, help="Run seed; each image's seed derives from it and its name.")
@click.option("--occlusion", is_flag=True, help="Also write each occlusion map as NAME_occlusion.png.")
@detector_option
@fallback_option
@param_option
def mask_cmd(images, outdir, strategy, mask_type, color, seed, occlusion, detector, fallback, params) -> None:
    """Mask the faces in IMAGES (files or folders) and write the results to OUTDIR."""
    kwargs = parse_params(params)
    if mask_type is not None:
        kwargs["type"] = mask_type
    if color is not None:
        kwargs["color"] = color
    STRATEGIES.get(strategy)
    failed = 0
    for path in expand_images(images):
        try:
            img = read_image(path)
            res = mask(img, strategy, detector=detector, fallback=fallback, seed=item_seed(seed, path.name), **kwargs)
        except MaskgenError as e:
            if e.code == "bad_argument":
                raise
            click.echo(f"skipped {path}: {e}", err=True)
            failed += 1
            continue
        out = write_image(outdir / path.name, res.image)
        if occlusion:
            write_image(outdir / f"{path.stem}_occlusion.png", res.occlusion)
        detail = ", ".join(f"{k}={v}" for k, v in res.params.items() if k in ("type", "color", "ratio", "region"))
        click.echo(f"{out}  ({len(res.faces)} face(s), {strategy}{': ' + detail if detail else ''})")
    if failed:
        raise MaskgenError(f"{failed} image(s) were skipped (see messages above)")


@main.command("preview")
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="Sheet to write (.png or .jpg).")
@click.option(
    "--strategy",
    "strategies",
    default="overlay",
    show_default=True,
    help="Comma-separated strategies to show, or 'all'.",
)
@click.option("--types", default="all", show_default=True, help="Comma-separated mask types for overlay, or 'all'.")
@click.option("-n", "count", default=8, show_default=True, help="Number of images (rows), spread over the sources.")
@click.option("--cell", default=128, show_default=True, help="Cell size in pixels.")
@click.option("--seed", default=0, show_default=True)
@detector_option
@fallback_option
def preview_cmd(sources, out, strategies, types, count, cell, seed, detector, fallback) -> None:
    """Write a contact sheet: rows are images, columns the original then each type or strategy."""
    from .preview import columns_for, contact_sheet

    names = STRATEGIES.names() if strategies == "all" else [s.strip() for s in strategies.split(",")]
    kinds = MASK_TYPES.names() if types == "all" else [t.strip() for t in types.split(",")]
    for s in names:
        STRATEGIES.get(s)
    for t in kinds:
        MASK_TYPES.get(t)
    paths = expand_images(sources)
    if not paths:
        raise MaskgenError(f"no images found in {', '.join(map(str, sources))}")
    picks = [paths[int(i)] for i in np.unique(np.linspace(0, len(paths) - 1, min(count, len(paths))).round())]
    images = []
    for p in picks:
        try:
            images.append((p, read_image(p)))
        except MaskgenError as e:
            click.echo(f"skipped {p}: {e}", err=True)
    sheet = contact_sheet(
        [im for _, im in images],
        columns_for(names, kinds),
        cell=cell,
        detector=detector,
        fallback=fallback,
        seed=seed,
        names=[p.name for p, _ in images],
    )
    write_image(out, sheet)
    click.echo(f"wrote {out} ({len(images)} rows x {1 + len(columns_for(names, kinds))} columns)")


def parse_size(value: str | None) -> tuple[int, int] | None:
    if not value:
        return None
    w, _, h = value.lower().partition("x")
    try:
        size = (int(w), int(h or w))
    except ValueError:
        raise BadParameter(f"--size takes W or WxH in pixels, e.g. 48 or 64x64; got {value!r}") from None
    if min(size) < 8:
        raise BadParameter(f"--size must be at least 8 pixels, got {value!r}")
    return size


@main.command("convert")
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@strategy_option
@click.option(
    "--types",
    default="random",
    show_default=True,
    help="Overlay mask types: comma-separated, 'all' (one output per type) or 'random' (one drawn per image).",
)
@click.option(
    "--variants-per-image",
    "variants",
    default=1,
    show_default=True,
    help="Outputs per input (per listed type); each has its own seed.",
)
@click.option("--color", default=None, help="Overlay colour: a name, #rrggbb or 'random' (default: the template's).")
@click.option("--sample", type=int, default=None, help="Keep N outputs, balanced across labels.")
@click.option(
    "--faces",
    "faces_mode",
    type=click.Choice(["largest", "all", "single"]),
    default="largest",
    show_default=True,
    help="Mask the largest face, all faces, or skip images with several (extra_faces).",
)
@detector_option
@fallback_option
@click.option(
    "--source-format",
    type=click.Choice(["folder", "fer2013-csv", "csv"]),
    default=None,
    help="How to read SRC (default: detected).",
)
@click.option(
    "--naming",
    type=click.Choice(["ckplus", "jaffe", "kdef"]),
    default=None,
    help="File-name scheme carrying subject (and label) ids (default: detected when every name fits one).",
)
@click.option("--format", "out_format", default=None, help="Output image format, e.g. png (default: the source's).")
@click.option("--size", default=None, help="Resize outputs to W or WxH pixels (default: the source's size).")
@click.option("--occlusion", is_flag=True, help="Write each occlusion map beside its image (NAME_occlusion.png).")
@click.option("--keep-original", is_flag=True, help="Write the unmasked copy beside each output (NAME_original).")
@click.option("--dedup", is_flag=True, help="Skip exact and perceptual-hash near duplicates (reason: duplicate).")
@click.option("--min-size", default=16, show_default=True, help="Skip inputs smaller than this (reason: too_small).")
@click.option("--seed", default=0, show_default=True, help="Run seed; each item's seed derives from it and its path.")
@click.option(
    "-j",
    "--jobs",
    default=0,
    show_default=True,
    help="Cores to use, one worker process each; 0 = all (results do not depend on it).",
)
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local", show_default=True)
@click.option("--scheduler", default=None, help="Dask scheduler address (with --executor dask; default: in-process).")
@click.option("--overwrite", is_flag=True, help="Replace a DST made with another configuration.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@param_option
def convert_cmd(
    src,
    dst,
    strategy,
    types,
    variants,
    color,
    sample,
    faces_mode,
    detector,
    fallback,
    source_format,
    naming,
    out_format,
    size,
    occlusion,
    keep_original,
    dedup,
    min_size,
    seed,
    jobs,
    executor,
    scheduler,
    overwrite,
    quiet,
    params,
) -> None:
    """Mask every image of SRC (a labelled folder, FER2013's CSV or a path,label CSV) into DST.

    DST mirrors SRC's tree and gets metadata.csv (Hugging Face imagefolder), manifest.jsonl (one row
    per output) and skips.jsonl (every input without output, with a reason). Interrupted runs resume
    when the same command is run again.
    """
    from tqdm import tqdm

    from .pipeline import ConvertConfig, convert

    STRATEGIES.get(strategy)
    kwargs = parse_params(params)
    if color is not None:
        kwargs["color"] = color
    type_list = MASK_TYPES.names() if types == "all" else [t.strip() for t in types.split(",") if t.strip()]
    for t in type_list:
        if t != "random":
            MASK_TYPES.get(t)
    if variants < 1:
        raise BadParameter("--variants-per-image must be at least 1")
    cfg = ConvertConfig(
        strategy=strategy,
        types=tuple(type_list),
        variants=variants,
        seed=seed,
        params=kwargs,
        detector=detector,
        fallback=fallback,
        faces=faces_mode,
        out_format=("." + out_format.lstrip(".").lower()) if out_format else None,
        size=parse_size(size),
        occlusion=occlusion,
        keep_original=keep_original,
        min_size=min_size,
        sample=sample,
        dedup=dedup,
        naming=naming,
        format=source_format,
    )
    DETECTORS.get(detector)
    bar = tqdm(unit="img", disable=True if quiet else None, dynamic_ncols=True, desc="convert")
    try:
        summary = convert(
            src,
            dst,
            cfg,
            jobs=jobs,
            overwrite=overwrite,
            executor=executor,
            scheduler=scheduler,
            progress=bar.update,
            total_callback=lambda n: setattr(bar, "total", n),
        )
    except KeyboardInterrupt:
        bar.close()
        click.echo(f"\nInterrupted. Finished work is saved in {dst}; run the same command again to resume.", err=True)
        sys.exit(130)
    bar.close()
    click.echo(
        f"{summary.inputs} inputs -> {summary.outputs} outputs in {dst}"
        + (f" ({summary.resumed} inputs already done)" if summary.resumed else "")
    )
    for reason, n in sorted(summary.skipped.items(), key=lambda x: -x[1]):
        click.echo(f"  skipped {n:>6}  {reason}")
    if summary.skipped:
        click.echo(f"  reasons per input: {dst / 'skips.jsonl'}")


@main.command("split")
@click.argument("dst", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--by",
    type=click.Choice(["subject", "source"]),
    default="subject",
    show_default=True,
    help="Keep each subject (or each source image) in one split.",
)
@click.option("--ratios", default="0.8,0.1,0.1", show_default=True, help="train,val[,test] fractions.")
@click.option("--seed", default=0, show_default=True)
def split_cmd(dst, by, ratios, seed) -> None:
    """Write a leak-free train/val/test split into DST's metadata.csv (stratified by label)."""
    from .pipeline.splits import split_dataset

    try:
        r = tuple(float(x) for x in ratios.split(","))
    except ValueError:
        raise BadParameter(f"--ratios takes numbers like 0.8,0.1,0.1; got {ratios!r}") from None
    rep = split_dataset(dst, by, r, seed)
    if rep.note:
        click.echo(f"Note: {rep.note}")
    click.echo(
        f"split by {rep.by}: {rep.groups} groups; " + ", ".join(f"{k} {v}" for k, v in sorted(rep.counts.items()))
    )


@main.command("stats")
@click.argument("dst", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--chart", type=click.Path(path_type=Path), default=None, help="PNG chart path (default: DST/stats.png).")
def stats_cmd(dst, chart) -> None:
    """Counts per label, split, mask type and landmark source, and skips per reason; writes a chart."""
    from .pipeline.stats import chart as draw_chart
    from .pipeline.stats import dataset_stats

    stats = dataset_stats(dst)
    for title, counts in stats.items():
        click.echo(f"{title}:")
        for name, n in counts.most_common():
            click.echo(f"  {name:<20} {n:>7}")
    out = write_image(chart or dst / "stats.png", draw_chart(stats))
    click.echo(f"wrote {out}")


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
            "--l1", type=float, default=0.0, show_default=True, help="L1 weight penalty (Deep-Emotion: 0.001)."
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
        from . import train
    except ImportError as e:
        from .errors import MissingExtra

        raise MissingExtra(
            f"this command needs the train extra ({e.name} is missing): pip install torch==2.13.0 'maskgen[train]'"
        ) from None
    return train


def make_train_args(model, epochs, batch_size, lr, seed, class_weights, augment, l1, patience, time_limit):
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
        l1=l1,
        patience=patience,
        time_limit=time_limit * 60 if time_limit else None,
    )


def echo_metrics(m: dict) -> None:
    click.echo(f"accuracy {m['accuracy']:.3f}  macro-F1 {m['macro_f1']:.3f}  (n = {m['n']})")
    for label, v in m["per_class"].items():
        click.echo(f"  {label:<12} P {v['precision']:.2f}  R {v['recall']:.2f}  F1 {v['f1']:.2f}  n {v['support']}")


@main.command("train")
@click.argument("data", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Run folder to write.")
@train_options
def train_cmd(data, out, split, quiet, **kw) -> None:
    """Train a FER model on DATA (a maskgen output or a labelled folder); write model, metrics, report."""
    m = require_train().train(data, out, make_train_args(**kw), split=split, progress=not quiet)
    click.echo(m["note"])
    echo_metrics(m)
    click.echo(f"report: {out / 'report.html'}")


@main.command("evaluate")
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("data", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "-o", type=click.Path(path_type=Path), default=None, help="Default: RUN/eval-<data name>.")
@click.option("--split", default=None, help="Only the items of this split (e.g. test).")
def evaluate_cmd(run, data, out, split) -> None:
    """Evaluate a trained RUN on DATA: metrics, confusion matrix, saliency maps, report."""
    m = require_train().evaluate(run, data, out, split)
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
@train_options
def experiment_cmd(clean, masked, out, split, quiet, **kw) -> None:
    """Train on clean and on masked data, test each on both, on one split: the clean-vs-masked matrix."""
    require_train().experiment(clean, masked, out, make_train_args(**kw), split=split, progress=not quiet)
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
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def predict_cmd(run, inputs, out, mask_mode, detector, fallback, as_json, every, tracking, quiet) -> None:
    """Classify the expression of every face in INPUTS (images, folders or videos) with a trained RUN."""
    require_train()
    from .predict import VIDEO_SUFFIXES, Predictor, draw, predict_video

    predictor = Predictor(run, detector=detector, mask_mode=mask_mode, fallback=fallback)
    paths = [
        p
        for src in inputs
        for p in (
            expand_images((src,)) + sorted(q for q in src.rglob("*") if q.suffix.lower() in VIDEO_SUFFIXES)
            if src.is_dir()
            else [src]
        )
    ]
    if not paths:
        raise MaskgenError(f"no images or videos found in {', '.join(map(str, inputs))}")
    failed = 0
    for path in paths:
        if not path.exists():
            click.echo(f"Error: {path}: no such file", err=True)
            failed += 1
            continue
        if path.suffix.lower() in VIDEO_SUFFIXES:

            def emit(n, preds, path=path):
                if as_json:
                    for p in preds:
                        click.echo(json.dumps({"source": str(path), "frame": n, **p.to_json()}))

            dst = (
                out / f"{path.stem}_pred{path.suffix if path.suffix.lower() in ('.avi', '.mp4') else '.mp4'}"
                if out
                else None
            )
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
            click.echo(f"{path}: {faces}")
        if out is not None:
            write_image(out / f"{path.stem}_pred.png", draw(img, preds))
    if failed:
        raise MaskgenError(f"{failed} input(s) could not be processed")
