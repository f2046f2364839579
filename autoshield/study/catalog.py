"""The studies in a storage: create or check one, find one, its completed trials, its queue.

Every study has two objectives, (model accuracy ↑, attack accuracy or identified share ↓),
and remembers what it was created with (`records.StudyInfo`): a worker whose
space, profile, data or utility differ is refused, so results never mix.
"""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState

from autoshield.core.choices import Kind
from autoshield.core.errors import AutoshieldError
from autoshield.study.records import StudyInfo
from autoshield.study.storage import study_name

DIRECTIONS = ("maximize", "minimize")
METRIC_NAMES = {
    "recognition": ("model_accuracy", "attack_accuracy"),
    "identifiability": ("model_accuracy", "identified"),
}


def open_study(
    storage: optuna.storages.BaseStorage,
    *,
    name: str,
    info: StudyInfo,
    sampler: optuna.samplers.BaseSampler | None = None,
) -> optuna.Study:
    """Create or load `<name>-<kind>`; refuse to mix results of another space, profile, data, utility or judge."""
    full_name = study_name(name, info.kind)
    study = optuna.create_study(
        storage=storage, study_name=full_name, directions=list(DIRECTIONS), sampler=sampler, load_if_exists=True
    )
    wanted = [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    if study.directions != wanted:
        found = ", ".join(d.name.lower() for d in study.directions)
        raise AutoshieldError(f"study {full_name!r} exists with directions ({found}), not (maximize, minimize)")
    stored = StudyInfo.read(study)
    if stored is None:
        info.write(study)
        study.set_metric_names(list(METRIC_NAMES[info.privacy]))
        return study
    refuse_mixing(study, info)
    if info.judge and not stored.judge:  # scored by an unrecorded judge so far; by this one from now on
        info.write(study)
    return study


def refuse_mixing(study: optuna.Study, info: StudyInfo) -> None:
    """Refuse, in one line, a run whose space, profile, data, utility, attacker, privacy or judge differ from the
    ones `study` was created with."""
    if differences := info.differences(study):
        raise AutoshieldError(f"refusing to mix results in study {study.study_name!r}: {'; '.join(differences)}")


def find_study(storage: optuna.storages.BaseStorage, name: str, kind: Kind) -> optuna.Study | None:
    """`<name>-<kind>` when the storage holds it."""
    wanted = study_name(name, kind)
    if wanted not in {s.study_name for s in optuna.get_all_study_summaries(storage)}:
        return None
    return optuna.load_study(study_name=wanted, storage=storage)


def completed(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def enqueue_once(study: optuna.Study, params: dict[str, str] | dict[str, float]) -> bool:
    """Queue a trial unless one with these parameters is complete, queued or running."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING)):
        if trial.system_attrs.get("fixed_params", trial.params) == params:
            return False
    study.enqueue_trial(params)
    return True
