"""Per-item seeds: derived from the run seed and a stable item key, so results ignore order and worker count."""

from __future__ import annotations

import hashlib


def item_seed(run_seed: int, key: str, variant: int = 0) -> int:
    """A 63-bit seed from (run seed, item key, variant index); stable across processes and Python versions."""
    digest = hashlib.blake2b(f"{run_seed}\x00{key}\x00{variant}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1
