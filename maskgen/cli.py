"""The `maskgen` command line: parses options and calls the library, nothing more."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import __version__
from .detectors import DETECTORS, detect
from .draw import draw_faces
from .errors import MaskgenError
from .io import read_image, write_image


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
    return {"detectors": DETECTORS}


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
