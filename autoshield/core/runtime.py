"""Device choice, progress bars, phases and heartbeats, shared by every long-running step."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from autoshield.core.errors import AutoshieldError
from autoshield.core.interrupts import checkpoint


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise AutoshieldError(f"unknown device {name!r} (auto, cpu, cuda, cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AutoshieldError(f"device {name!r} requested but CUDA is not available")
    return device


def gpu_count() -> int:
    """CUDA GPUs this process may use (0 without CUDA)."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Progress | None]:
    """A rich progress bar, or None when disabled (library calls, tests, worker processes)."""
    if not enabled:
        yield None
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True) as progress:
        yield progress


_LISTENERS: list[Callable[[str], None]] = []  # who hears `phase`: a study's progress bar, while it runs


@contextmanager
def phases(listener: Callable[[str], None]) -> Iterator[None]:
    """While the block runs, long steps say what they are doing ("training epoch 3/10") to `listener`: a study's
    bar shows its in-process worker's phase, where a nested progress bar cannot be drawn."""
    _LISTENERS.append(listener)
    try:
        yield
    finally:
        _LISTENERS.remove(listener)


def phase(text: str) -> None:
    """Say what the current long step is doing (a safe point to stop at: `checkpoint`); nothing is shown unless
    someone listens (`phases`)."""
    checkpoint()
    for listener in _LISTENERS:
        listener(text)


@contextmanager
def beating(beat: Callable[[], None], *, every: float) -> Iterator[None]:
    """Call `beat` every `every` seconds from a daemon thread while the block runs: long work showing it is alive
    (a builder's claims, `study.claims`), kept apart from the work itself. A beat that fails is a beat missed."""
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(every):
            try:
                beat()
            except AutoshieldError:
                continue

    thread = threading.Thread(target=run, name="beating", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
