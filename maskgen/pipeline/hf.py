"""A `convert` output as a Hugging Face `DatasetDict`: labels as a `ClassLabel`, every metadata column
typed, and one split per value of the `split` column (as `maskgen split` or the source set it).

`datasets.load_dataset("imagefolder", data_dir=DST)` also reads DST (labels and metadata, as text);
this adds what imagefolder cannot know from files alone: the class list and splits kept in a column.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import BadParameter, MissingExtra
from . import manifest as mf
from .shards import shard_files

INT_COLUMNS = ("seed", "variant")


def load_hf(dst: str | Path, labels: list[str] | None = None) -> Any:
    """DST's outputs as a `datasets.DatasetDict` (splits from the `split` column; "train" where empty).

    `labels` fixes the ClassLabel names and their order (default: the sorted labels found)."""
    try:
        import datasets
    except ImportError:
        raise MissingExtra("load_hf needs the hf extra: pip install 'maskgen[hf]'") from None
    dst = Path(dst)
    if any(
        p.suffix == ".parquet" for p in shard_files(dst)
    ):  # a sharded output (--output-format parquet) is a Parquet dataset
        ds = datasets.load_dataset("parquet", data_dir=str(dst))
        found = {lab for split in ds.values() for lab in split["label"]}
        if labels and found - set(labels):
            raise BadParameter(f"labels {sorted(found - set(labels))} are not in the given label list")
        return ds.cast_column("label", datasets.ClassLabel(names=labels or sorted(found)))
    if not (dst / mf.METADATA).exists():
        raise BadParameter(f"{dst} has no {mf.METADATA}; run `maskgen convert` first")
    rows = mf.read_metadata(dst)
    names = labels or sorted({r["label"] for r in rows})
    unknown = {r["label"] for r in rows} - set(names)
    if unknown:
        raise BadParameter(f"labels {sorted(unknown)} are not in the given label list")
    columns = [c for c in mf.METADATA_COLUMNS if c != "file_name"]
    features = datasets.Features(
        {
            "image": datasets.Image(),
            **{c: datasets.Value("int64") if c in INT_COLUMNS else datasets.Value("string") for c in columns},
            "label": datasets.ClassLabel(names=names),
        }
    )
    by_split: dict[str, dict[str, list]] = {}
    for r in rows:
        split = by_split.setdefault(r["split"] or "train", {k: [] for k in features})
        split["image"].append(str(dst / r["file_name"]))
        for c in columns:
            split[c].append(int(r[c]) if c in INT_COLUMNS else r[c])
        split["label"][-1] = names.index(r["label"])
    return datasets.DatasetDict(
        {name: datasets.Dataset.from_dict(data, features=features) for name, data in sorted(by_split.items())}
    )
