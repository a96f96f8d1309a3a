"""Data commands: detect, mask, preview, convert, split, stats."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import click
import numpy as np

from ..detectors import DETECTORS, detect
from ..draw import draw_faces
from ..errors import BadParameter, MaskgenError
from ..io import WRITABLE_SUFFIXES, read_image, write_image
from ..seeds import item_seed
from ..strategies import STRATEGIES, check_params, mask
from ..templates import MASK_TYPES
from . import (
    detector_option,
    expand_images,
    fallback_option,
    main,
    param_option,
    parse_params,
    strategy_option,
)
from .outputs import plan_outputs, walk_inputs


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


@main.command("mask")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o", "--out", "outdir", required=True, type=click.Path(path_type=Path), help="Output folder (input tree mirrored)."
)
@strategy_option
@click.option("--type", "mask_type", default=None, help="Mask type for overlay (see `maskgen list`), or 'random'.")
@click.option("--color", default=None, help="Mask colour: a name, #rrggbb, or 'random'.")
@click.option("--seed", default=0, show_default=True, help="Run seed; each image's seed derives from it and its name.")
@click.option("--occlusion", is_flag=True, help="Also write each occlusion map as NAME_occlusion.png.")
@click.option("--overwrite", is_flag=True, help="Replace outputs that exist already (inputs are never replaced).")
@detector_option
@fallback_option
@param_option
def mask_cmd(
    images, outdir, strategy, mask_type, color, seed, occlusion, overwrite, detector, fallback, params
) -> None:
    """Mask the faces in IMAGES (files or folders) and write the results to OUTDIR.

    Folders are walked and their tree mirrored under OUTDIR; nothing is written into an input folder
    or over a file that exists (unless --overwrite)."""
    kwargs = parse_params(params)
    if mask_type is not None:
        kwargs["type"] = mask_type
    if color is not None:
        kwargs["color"] = color
    STRATEGIES.get(strategy)
    check_params(strategy, kwargs)

    def names(rel: Path) -> list[str]:
        out = rel.name if rel.suffix.lower() in WRITABLE_SUFFIXES else f"{rel.stem}.png"
        return [out] + ([f"{Path(out).stem}_occlusion.png"] if occlusion else [])

    inputs = walk_inputs(images)
    planned = plan_outputs(inputs, outdir, names, overwrite)
    failed = 0
    for (path, _, _), files in zip(inputs, planned, strict=True):
        try:
            img = read_image(path)
            res = mask(img, strategy, detector=detector, fallback=fallback, seed=item_seed(seed, path.name), **kwargs)
        except MaskgenError as e:
            if e.code == "bad_argument":
                raise
            click.echo(f"skipped {path}: {e}", err=True)
            failed += 1
            continue
        out = write_image(files[0], res.image)
        if occlusion:
            write_image(files[1], res.occlusion)
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
    from ..preview import columns_for, contact_sheet

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
@click.argument("src", type=click.Path(path_type=str))
@click.argument("dst", type=click.Path(path_type=str))
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
    type=click.Choice(["folder", "fer2013-csv", "csv", "parquet", "webdataset", "arrow"]),
    default=None,
    help="How to read SRC (default: detected): parquet, webdataset and arrow (a Hugging Face save_to_disk "
    "folder) read shards (a file or a folder of them).",
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
@click.option(
    "--dedup",
    is_flag=True,
    help="Skip exact and near duplicates with the same label (reason: duplicate); near-identical inputs with "
    "different labels are kept and listed in label_conflicts.jsonl.",
)
@click.option(
    "--dedup-threshold",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Near duplicate: mean absolute difference (0-255) of 32x32 gray thumbnails at most this.",
)
@click.option("--min-size", default=16, show_default=True, help="Skip inputs smaller than this (reason: too_small).")
@click.option("--seed", default=0, show_default=True, help="Run seed; each item's seed derives from it and its path.")
@click.option(
    "--output-format",
    type=click.Choice(["folder", "parquet", "webdataset"]),
    default="folder",
    show_default=True,
    help="One file per image, or shards under DST/data: Parquet (Hugging Face layout) or WebDataset tars.",
)
@click.option(
    "--shard-size",
    "shard_mb",
    type=click.FloatRange(min=0, min_open=True),
    default=256.0,
    show_default=True,
    help="About this many MB per shard (parquet, webdataset).",
)
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
    dedup_threshold,
    min_size,
    seed,
    output_format,
    shard_mb,
    jobs,
    executor,
    scheduler,
    overwrite,
    quiet,
    params,
) -> None:
    """Mask every image of SRC (a labelled folder, FER2013's CSV or a path,label CSV) into DST.

    DST mirrors SRC's tree and gets metadata.csv (Hugging Face imagefolder), manifest.jsonl (one row
    per output) and skips.jsonl (every input without output, with a reason); with --output-format
    parquet or webdataset the images go into shards under DST/data instead, and DST may be an fsspec
    URL (s3://bucket/masked, gs://..., memory://...). Interrupted runs resume when the same command is
    run again.
    """
    from tqdm import tqdm

    from ..pipeline import ConvertConfig, convert

    STRATEGIES.get(strategy)
    kwargs = parse_params(params)
    if color is not None:
        kwargs["color"] = color
    type_list = MASK_TYPES.names() if types == "all" else [t.strip() for t in types.split(",") if t.strip()]
    for t in type_list:
        if t != "random":
            MASK_TYPES.get(t)
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
        dedup_threshold=dedup_threshold,
        naming=naming,
        format=source_format,
        output_format=output_format,
        shard_mb=shard_mb,
    )
    DETECTORS.get(detector)
    bar = tqdm(unit="img", disable=True if quiet else None, dynamic_ncols=True, desc="convert")
    stopped = {"by": signal.SIGINT}

    def on_term(signum, frame):  # SIGTERM (kill, a cluster's scheduler) ends the run as Ctrl-C does
        stopped["by"] = signum
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
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
        sys.exit(128 + stopped["by"])
    finally:
        signal.signal(signal.SIGTERM, previous)
    bar.close()
    click.echo(
        f"{summary.inputs} inputs -> {summary.outputs} outputs in {dst}"
        + (f" ({summary.resumed} inputs already done)" if summary.resumed else "")
    )
    for reason, n in sorted(summary.skipped.items(), key=lambda x: -x[1]):
        click.echo(f"  skipped {n:>6}  {reason}")
    if summary.skipped:
        click.echo(f"  reasons per input: {dst.rstrip('/')}/skips.jsonl")
    if summary.conflicts:
        click.secho(
            f"warning: {summary.conflicts} near-identical input(s) carry different labels; both kept, "
            f"listed in {dst.rstrip('/')}/label_conflicts.jsonl",
            fg="yellow",
            err=True,
        )


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
    from ..pipeline.splits import split_dataset

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
    from ..pipeline.stats import chart as draw_chart
    from ..pipeline.stats import dataset_stats

    stats = dataset_stats(dst)
    for title, counts in stats.items():
        click.echo(f"{title}:")
        for name, n in counts.most_common():
            click.echo(f"  {name:<20} {n:>7}")
    out = write_image(chart or dst / "stats.png", draw_chart(stats))
    click.echo(f"wrote {out}")
