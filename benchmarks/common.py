"""Shared helpers for the benchmark scripts (not part of the package or the tests)."""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data-root", type=Path, default=DEFAULT_DATA, help="CIFAR-10 folder")
    return p


def machine() -> str:
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"{torch.get_num_threads()} CPU threads"
    return f"{platform.node()} ({device}, torch {torch.__version__})"


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    """Fastest wall time of `repeats` calls: the least disturbed by other work on the machine."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)
