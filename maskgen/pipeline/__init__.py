"""Bulk conversion of datasets: sources, per-item work, journals and manifests, splits and stats."""

from .convert import Summary, convert
from .items import ConvertConfig
from .sources import Record, iter_records

__all__ = ["ConvertConfig", "Record", "Summary", "convert", "iter_records"]
