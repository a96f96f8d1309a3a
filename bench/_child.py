"""Timing a command in a fresh Python process: its wall time and the peak RSS of its process tree."""

from __future__ import annotations

import subprocess
import sys


def seconds_and_peak(args: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS MiB) of `python ARGS...` run in a fresh process (its workers included)."""
    code = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        f"subprocess.run([sys.executable, *{args!r}], check=True, stdout=subprocess.DEVNULL); "
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1]) / 1024
