"""The optimize loop: one worker takes one trial at a time until its study is done.

Workers on one or many machines share a study through its storage. Because
each takes a single trial at a time and checks the count before running it,
the number of completed trials is exactly the target however many workers
there are; a killed worker's trial is failed by the heartbeat and retried by a
survivor (`heartbeat`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import optuna
from optuna.trial import FrozenTrial, Trial, TrialState

from autoshield.core.errors import AutoshieldError
from autoshield.core.interrupts import deferred, stop_reason, undeferred
from autoshield.study.heartbeat import recover_dead_workers
from autoshield.study.marks import duplicate_of, mark_failed, mark_surplus

MAX_CONSECUTIVE_FAILURES = 3
MAX_CONSECUTIVE_DUPLICATES = 100  # proposals of already evaluated policies in a row: the space is exhausted
Objective = Callable[[Trial], tuple[float, float]]


def _surplus(trials: list[FrozenTrial], trial: FrozenTrial, target: int) -> bool:
    """More trials complete or started before this one than the target: this one must not run."""
    ahead = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE or (t.state == TrialState.RUNNING and t.number < trial.number)
    ]
    return len(ahead) >= target


def _queued_twice(trials: list[FrozenTrial], trial: FrozenTrial) -> bool:
    """Workers starting together may queue the same parameters twice; the lower-numbered copy wins."""
    live = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
    params = trial.system_attrs["fixed_params"]
    return any(
        t.number < trial.number and t.state in live and t.system_attrs.get("fixed_params") == params for t in trials
    )


def run_worker(
    study: optuna.Study,
    objective: Objective,
    *,
    storage: optuna.storages.BaseStorage,
    target: int | None,
    on_trial: Callable[[optuna.Study], None] | None = None,
    poll_seconds: float = 2.0,
) -> None:
    """Run trials one at a time until `target` trials are complete, or, with no target, until no
    queued or running trial is left (grid cells, σ values). A trial that fails (NaN, bad numbers)
    is recorded as failed with its reason and the loop goes on, unless `MAX_CONSECUTIVE_FAILURES`
    fail in a row: then the settings themselves are broken and the worker stops with the reason."""
    queue_only = target is None
    failures: list[str] = []
    duplicates = 0

    def guarded(trial: Trial) -> tuple[float, float]:
        trials = study.get_trials(deepcopy=False)
        frozen = next(t for t in trials if t.number == trial.number)
        fixed = "fixed_params" in frozen.system_attrs
        if (not fixed and (queue_only or _surplus(trials, frozen, target))) or (
            fixed and _queued_twice(trials, frozen)
        ):
            mark_surplus(trial)
            raise optuna.TrialPruned("surplus trial: the study already has its trials")
        try:
            with undeferred():  # the trial's own work stops at once; Optuna's bookkeeping around it does not
                values = objective(trial)
        except AutoshieldError as error:
            mark_failed(trial, str(error))
            failures.append(str(error))
            raise
        except KeyboardInterrupt as stop:  # Optuna fails the trial and re-raises; the reason says who stopped it
            mark_failed(trial, stop_reason(stop))
            raise
        failures.clear()
        return values

    while True:
        trials = study.get_trials(deepcopy=False)
        done = sum(t.state == TrialState.COMPLETE for t in trials)
        waiting = sum(t.state == TrialState.WAITING for t in trials)
        running = sum(t.state == TrialState.RUNNING for t in trials)
        if (queue_only and waiting == 0 and running == 0) or (not queue_only and done >= target):
            return
        if waiting == 0 and (queue_only or done + running >= target):
            with deferred():
                recover_dead_workers(study, storage)  # a dead worker's trial comes back as WAITING
            time.sleep(poll_seconds)
            continue
        with deferred():  # an interrupt outside the objective lands after Optuna has recorded the trial
            study.optimize(guarded, n_trials=1, catch=(AutoshieldError,))
        if len(failures) >= MAX_CONSECUTIVE_FAILURES:
            raise AutoshieldError(f"{len(failures)} trials in a row failed, stopping; last: {failures[-1]}")
        last = study.get_trials(deepcopy=False)[-1]
        duplicates = duplicates + 1 if duplicate_of(last) is not None else 0
        if duplicates >= MAX_CONSECUTIVE_DUPLICATES:
            done = sum(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False))
            raise AutoshieldError(
                f"the sampler proposed {duplicates} already evaluated policies in a row: the space looks exhausted "
                f"after {done} distinct policies"
            )
        if on_trial:
            on_trial(study)
