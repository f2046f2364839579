"""Device choice, progress bars and phases, shared by every long-running step."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from autoshield.core.errors import AutoshieldError


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


_INTERRUPTED = threading.Event()
EXIT_TERMINATED = 143  # 128 + SIGTERM, what a shell and a scheduler read as "terminated"


class Terminated(KeyboardInterrupt):
    """SIGTERM (Slurm, Kubernetes, systemd stopping a job): handled as Ctrl-C is, with its own exit status."""


_STOPPED_BY: list[type[KeyboardInterrupt]] = [KeyboardInterrupt]  # which signal `checkpoint` raises again


def _remember_interrupt(signum: int, frame: FrameType | None) -> None:
    _STOPPED_BY[0] = Terminated if signum == signal.SIGTERM else KeyboardInterrupt
    _INTERRUPTED.set()
    raise _STOPPED_BY[0]


def on_sigterm() -> None:
    """SIGTERM raises `Terminated` in this process (a worker process, where `interruptible` is not entered)."""
    signal.signal(signal.SIGTERM, _remember_interrupt)


@contextmanager
def interruptible() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt as usual (SIGTERM its subclass `Terminated`) and is also remembered, so that
    `checkpoint` raises it again: Python drops an exception raised while a weakref callback or finaliser runs
    ("Exception ignored in ..."), and CI saw an interrupted search run on to the end that way. An ignored SIGINT (a
    background job) stays ignored; SIGTERM is always handled."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    terminate = signal.signal(signal.SIGTERM, _remember_interrupt)
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, terminate)
            _INTERRUPTED.clear()
        return
    previous, report = signal.signal(signal.SIGINT, _remember_interrupt), sys.unraisablehook

    def quiet(unraisable: Any) -> None:  # the dropped interrupt is remembered: no "Exception ignored" traceback
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            report(unraisable)

    sys.unraisablehook = quiet
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, terminate)
        sys.unraisablehook = report
        _INTERRUPTED.clear()


def checkpoint() -> None:
    """Raise a remembered Ctrl-C that an earlier KeyboardInterrupt failed to deliver (`interruptible`)."""
    if _INTERRUPTED.is_set():
        raise _STOPPED_BY[0]


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
