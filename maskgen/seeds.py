"""Per-item seeds: derived from the run seed and a stable item key, so results ignore order and worker count."""

from __future__ import annotations

import hashlib
import threading

import numpy as np


def item_seed(run_seed: int, key: str, variant: int = 0) -> int:
    """A 63-bit seed from (run seed, item key, variant index); stable across processes and Python versions."""
    digest = hashlib.blake2b(f"{run_seed}\x00{key}\x00{variant}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


_MASK64 = (1 << 64) - 1
_local = threading.local()


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def generator(seed: int) -> np.random.Generator:
    """This thread's NumPy Generator, reset to a state derived from `seed`: valid until the next call.

    `np.random.default_rng` spends ~25 us hashing its seed; per-image masking draws a handful of numbers,
    so that setup dominated. Here the 128-bit PCG64 state and stream come from splitmix64 of the seed.
    """
    gen = getattr(_local, "gen", None)
    if gen is None:
        gen = _local.gen = np.random.Generator(np.random.PCG64(0))
    a = _splitmix64(int(seed) & _MASK64)
    b, c = _splitmix64(a), _splitmix64(a ^ 0x5851F42D4C957F2D)
    d = _splitmix64(c)
    gen.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": (a << 64) | b, "inc": ((c << 64) | d) | 1},
        "has_uint32": 0,
        "uinteger": 0,
    }
    return gen


def unit_draws(seed: int, n: int) -> list[int]:
    """`n` 64-bit numbers derived from `seed` (a splitmix64 stream): for the few decisions made per item
    before any strategy runs, without resetting a NumPy generator (~2 vs ~10 us)."""
    out, x = [], int(seed) & _MASK64
    for _ in range(n):
        x = _splitmix64(x)
        out.append(x)
    return out


def splitmix_number(seed: int, k: int) -> int:
    """Number `k` (counting from 1) of the splitmix64 sequence started at `seed`: `splitmix_stream`'s, alone."""
    return _splitmix64((int(seed) + (k - 1) * 0x9E3779B97F4A7C15) & _MASK64)


def splitmix_stream(seed: int, first: int, n: int) -> np.ndarray:
    """Numbers `first` to `first + n - 1` (counting from 1) of the splitmix64 sequence started at `seed`
    (its state steps by a constant, each number is the state mixed): any run of them at once, as uint64."""
    x = np.arange(first, first + n, dtype=np.uint64)
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps, as splitmix64 means it to
        x *= np.uint64(0x9E3779B97F4A7C15)
        x += np.uint64(int(seed) & _MASK64)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def unit_draws_array(seeds: np.ndarray, n: int) -> np.ndarray:
    """`unit_draws` for many seeds at once: an (n, len(seeds)) uint64 array, the same numbers."""
    x = np.asarray(seeds, np.uint64).copy()
    out = np.empty((n, len(x)), np.uint64)
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps, as splitmix64 means it to
        for i in range(n):
            x += np.uint64(0x9E3779B97F4A7C15)
            z = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            out[i] = z ^ (z >> np.uint64(31))
            x = out[i].copy()
    return out


class CounterRng:
    """The few draws a strategy's `resolve` makes (`random`, `integers`, `uniform`, `bit_generator.random_raw`)
    from a splitmix64 stream: ~1 us per item where resetting a NumPy generator costs ~8. For on-the-fly
    masking, where every image draws a handful of numbers; `convert` and `mg.mask` keep NumPy's."""

    __slots__ = ("_x",)

    def __init__(self, seed: int) -> None:
        self._x = int(seed) & _MASK64

    def random_raw(self) -> int:
        self._x = _splitmix64(self._x)
        return self._x

    @property
    def bit_generator(self) -> CounterRng:
        return self

    def random(self) -> float:
        return (self.random_raw() >> 11) * 2.0**-53

    def integers(self, low: int, high: int | None = None) -> int:
        low, high = (0, low) if high is None else (low, high)
        return low + min(int(self.random() * (high - low)), high - low - 1)

    def uniform(self, low: float = 0.0, high: float = 1.0) -> float:
        return low + (high - low) * self.random()
