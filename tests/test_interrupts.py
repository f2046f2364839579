"""Ctrl-C and SIGTERM stop long work at once and never tear bookkeeping in half (issues #18 and #32)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from autoshield.core.interrupts import (
    Terminated,
    checkpoint,
    deferred,
    exit_status,
    interruptible,
    stop_reason,
    undeferred,
)


def _sigterm() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.2)  # the handler runs here


def test_a_stop_says_who_stopped_it_in_its_reason_and_its_exit_status():
    """A failed trial's reason and the program's last line name the same stopper; 128 + the signal's number."""
    assert (stop_reason(Terminated()), exit_status(Terminated())) == ("terminated (SIGTERM)", 143)
    assert (stop_reason(KeyboardInterrupt()), exit_status(KeyboardInterrupt())) == ("interrupted (Ctrl-C)", 130)


def test_a_dropped_sigterm_is_raised_again_as_sigterm():
    """Issue #32: a signal Python dropped once (inside a finaliser) is raised again at the next checkpoint as the
    signal it was, so SIGTERM still exits 143 and fails the trial as terminated."""
    with interruptible():
        with pytest.raises(Terminated):
            _sigterm()
        with pytest.raises(Terminated):
            checkpoint()


def test_a_sigterm_in_a_deferred_block_lands_where_the_block_ends():
    """A commit, or Optuna telling a trial's result, finishes whole: CI saw a worker print Optuna's traceback and a
    main process hang on its own torn SQLite transaction. The trial's own work inside stops at once."""
    finished = []
    with interruptible():
        with pytest.raises(Terminated), deferred():
            _sigterm()
            with deferred():  # nested blocks hold it too, and checkpoints wait for the outermost
                checkpoint()
            finished.append("bookkeeping")
        assert finished == ["bookkeeping"]
    with interruptible(), pytest.raises(Terminated), deferred(), undeferred():
        _sigterm()
        finished.append("the rest of a trial")
    assert finished == ["bookkeeping"]
    # one remembered before an undeferred stretch is raised as it starts
    with interruptible(), pytest.raises(Terminated), deferred():
        _sigterm()
        with undeferred():
            finished.append("a trial")
    assert finished == ["bookkeeping"]
