"""Where `mask` and `predict` write: the input tree mirrored under -o, never into or over an input,
never two inputs onto one name, and no existing file replaced unless asked (`--overwrite`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import BadParameter
from ..io import IMAGE_SUFFIXES
from ..pipeline.sources import all_files, linked_folders

Input = tuple[Path, Path, Path | None]  # (file, its path relative to its input folder, that folder or None)


def walk_inputs(sources: tuple[Path, ...], suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> list[Input]:
    """Files as given (relative path: the name), folders walked as `convert` walks SRC (sorted, hidden files
    left out, symlinked folders read through; path relative to the folder)."""
    out: list[Input] = []
    for src in sources:
        if src.is_dir():
            found = sorted(p for p in all_files(src) if p.suffix.lower() in suffixes and p.is_file())
            out += [(p, p.relative_to(src), src.resolve()) for p in found]
        else:
            out.append((src, Path(src.name), None))
    return out


def plan_outputs(
    inputs: list[Input],
    outdir: Path,
    names: Callable[[Path], list[str]],
    overwrite: bool = False,
) -> list[list[Path]]:
    """For each input, the files it writes under `outdir` (`names(rel)` gives their names beside `rel`).

    Raises a one-line error before anything is written when -o is a file, an output would land on an
    input (or inside an input folder), two inputs cannot be told apart, or an output exists already and
    `overwrite` is not set. Inputs that differ only by suffix (`x.jpg`, `x.png`) keep the suffix in
    their names (`x_png_pred.png`).
    """
    if outdir.exists() and not outdir.is_dir():
        raise BadParameter(f"-o {outdir} is a file; give a folder (it is made if missing)")
    inputs_at = {p.resolve(): p for p, _, _ in inputs}
    out_res = outdir.resolve()
    for root in {root for _, _, root in inputs if root is not None}:
        if out_res == root or root in out_res.parents:
            raise BadParameter(f"-o {outdir} is inside the input folder {root}; choose a folder beside it")
        for link, target in linked_folders(root):
            if out_res == Path(target) or Path(target) in out_res.parents:
                raise BadParameter(f"-o {outdir} is inside {target}, an input folder ({link}); choose another")
    planned: list[list[Path]] = [[] for _ in inputs]
    owner: dict[Path, Path] = {}
    # inputs whose output keeps their own name claim it first (x.png before x.gif, written as PNG)
    order = sorted(range(len(inputs)), key=lambda i: names(inputs[i][1])[0] != inputs[i][1].name)
    for i in order:
        p, rel, _ = inputs[i]
        files = [outdir / rel.parent / n for n in names(rel)]
        if any(f.resolve() in owner for f in files):  # x.jpg beside x.png: keep the suffix in the name
            tagged = rel.with_name(f"{rel.stem}_{rel.suffix.lstrip('.').lower()}{rel.suffix}")
            files = [outdir / rel.parent / n for n in names(tagged)]
        for f in files:
            r = f.resolve()
            if r in inputs_at:
                raise BadParameter(f"{f} is an input; maskgen never writes over its input (choose another -o)")
            if r in owner:
                raise BadParameter(f"{owner[r]} and {p} would both write {f}; give them separate -o folders")
            if f.exists() and not overwrite:
                raise BadParameter(f"{f} exists; use --overwrite to replace it (inputs are never replaced)")
            owner[r] = p
        planned[i] = files
    return planned
