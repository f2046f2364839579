"""Ctrl-C and SIGTERM: stop long work at once, but never in the middle of bookkeeping.

Python raises a signal's exception wherever the main thread happens to be. Inside a trial's training or attack that
is what a user wants; inside Optuna's telling of a result, or a database commit, it tears the bookkeeping in half:
a worker printed Optuna's `UnboundLocalError` traceback, and a commit cut short can leave SQLite's lock held. So
an interrupt that lands in a `deferred` block is only remembered, and raised where the block ends (or at the next
`checkpoint`).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

EXIT_TERMINATED = 143  # 128 + SIGTERM, what a shell and a scheduler read as "terminated"
EXIT_INTERRUPTED = 130  # 128 + SIGINT: Ctrl-C


class Terminated(KeyboardInterrupt):
    """SIGTERM (Slurm, Kubernetes, systemd stopping a job): handled as Ctrl-C is, with its own exit status."""


def stop_reason(stop: KeyboardInterrupt) -> str:
    """Who stopped the work, in the words of a failed trial's reason and of the program's last line: a reader can
    tell a scheduler's stop from a user's."""
    return "terminated (SIGTERM)" if isinstance(stop, Terminated) else "interrupted (Ctrl-C)"


def exit_status(stop: KeyboardInterrupt) -> int:
    """The exit status a shell and a scheduler read for this stop: 128 + the signal's number."""
    return EXIT_TERMINATED if isinstance(stop, Terminated) else EXIT_INTERRUPTED


_INTERRUPTED = threading.Event()
_STOPPED_BY: list[type[KeyboardInterrupt]] = [KeyboardInterrupt]  # which signal `checkpoint` raises again
_DEFERRED = [0]  # how deep the main thread is in `deferred` blocks


def _remember_interrupt(signum: int, frame: FrameType | None) -> None:
    _STOPPED_BY[0] = Terminated if signum == signal.SIGTERM else KeyboardInterrupt
    _INTERRUPTED.set()
    if not _DEFERRED[0]:
        raise _STOPPED_BY[0]


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def checkpoint() -> None:
    """Raise a remembered interrupt: one that landed in a `deferred` block, or one that Python dropped because it
    was raised in a weakref callback or finaliser ("Exception ignored in ..."; CI saw an interrupted search run on
    to the end that way)."""
    if _INTERRUPTED.is_set() and not _DEFERRED[0] and _in_main_thread():
        raise _STOPPED_BY[0]


@contextmanager
def deferred() -> Iterator[None]:
    """An interrupt arriving in the block is raised when the block ends, not inside it: a commit, or Optuna's
    bookkeeping around a trial, finishes whole. Other threads (a heartbeat) never receive signals: for them it is
    a plain block."""
    if not _in_main_thread():
        yield
        return
    _DEFERRED[0] += 1
    try:
        yield
    finally:
        _DEFERRED[0] -= 1
    checkpoint()


@contextmanager
def undeferred() -> Iterator[None]:
    """Inside a `deferred` block, long work that an interrupt may stop at once (a trial's training and attack);
    one remembered before the block starts is raised first."""
    if not _in_main_thread():
        yield
        return
    held, _DEFERRED[0] = _DEFERRED[0], 0
    try:
        checkpoint()
        yield
    finally:
        _DEFERRED[0] = held


def _quiet(report: Any) -> Any:
    def hook(unraisable: Any) -> None:  # the dropped interrupt is remembered: no "Exception ignored" traceback
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            report(unraisable)

    return hook


def on_sigterm() -> None:
    """SIGTERM raises `Terminated` in this process (a worker process, where `interruptible` is not entered), and
    one dropped in a finaliser prints nothing."""
    signal.signal(signal.SIGTERM, _remember_interrupt)
    sys.unraisablehook = _quiet(sys.unraisablehook)


@contextmanager
def interruptible() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt as usual (SIGTERM its subclass `Terminated`), except in `deferred` blocks,
    and is also remembered, so that `checkpoint` raises it again. An ignored SIGINT (a background job) stays
    ignored; SIGTERM is always handled."""
    if not _in_main_thread():
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
    sys.unraisablehook = _quiet(report)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, terminate)
        sys.unraisablehook = report
        _INTERRUPTED.clear()
