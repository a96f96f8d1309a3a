"""The `maskgen` command line: parses options and calls the library, nothing more.

The group, shared options and `list` live here; commands live in `data.py` (detect, mask, preview,
convert, split, stats) and `models.py` (train, evaluate, experiment, predict)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .. import __version__
from ..detectors import DETECTORS
from ..errors import BadParameter, MaskgenError
from ..io import IMAGE_SUFFIXES
from ..pipeline.sources import all_files
from ..strategies import STRATEGIES
from ..templates import MASK_TYPES


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
    if not debug:  # OpenCV's decoder warnings on damaged files: maskgen reports each file itself
        import cv2

        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def registries() -> dict[str, dict[str, str]]:
    """What `maskgen list` shows: name -> one line, per registry (the trainer's models without importing torch)."""
    from importlib.util import find_spec

    from ..catalog import MODEL_DOCS

    regs = {"detectors": DETECTORS, "strategies": STRATEGIES, "mask types": MASK_TYPES}
    out = {title: reg.describe() for title, reg in regs.items()}
    installed = find_spec("torch") is not None
    out["models" + ("" if installed else " (not installed: pip install 'maskgen[train]')")] = MODEL_DOCS
    return out


@main.command("list")
def list_cmd() -> None:
    """List the detectors, strategies, mask types and trainer models."""
    for title, docs in registries().items():
        click.echo(f"{title}:")
        for name, doc in docs.items():
            click.echo(f"  {name:<18} {doc}")


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
            paths += sorted(p for p in all_files(src) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
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


from . import data, models  # noqa: E402,F401  (command registration)
