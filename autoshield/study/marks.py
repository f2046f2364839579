"""What the worker loop notes on trials it fails or skips: one writer and one reader per note, as the records
in `study.records` have, kept apart from them because they describe a trial's fate, not its results."""

from __future__ import annotations

from optuna.trial import FrozenTrial, Trial

_FAIL_REASON = "fail_reason"
_SURPLUS = "surplus"
_DUPLICATE = "duplicate_of"


def mark_failed(trial: Trial, reason: str) -> None:
    trial.set_user_attr(_FAIL_REASON, reason)


def fail_reason(trial: FrozenTrial) -> str | None:
    return trial.user_attrs.get(_FAIL_REASON)


def mark_surplus(trial: Trial) -> None:
    trial.set_user_attr(_SURPLUS, True)


def mark_duplicate(trial: Trial, of: int) -> None:
    trial.set_user_attr(_DUPLICATE, of)


def duplicate_of(trial: FrozenTrial) -> int | None:
    """The trial whose policy this pruned trial repeated (None: not a duplicate)."""
    return trial.user_attrs.get(_DUPLICATE)
