"""The studies a report reads: a name's grid, search and DP-SGD studies, and the trials it singles out."""

from __future__ import annotations

import math
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial

from autoshield.core.choices import KINDS
from autoshield.core.errors import AutoshieldError
from autoshield.data.policy import IDENTITY, Policy
from autoshield.study.catalog import completed, find_study
from autoshield.study.dp_records import DPRecord
from autoshield.study.params import cell_of, policy_of, sigma_of
from autoshield.study.records import AttackRecord, EvaluationRecord, StudyInfo
from autoshield.study.storage import study_name

COMPARE_SIGMA = 0.5  # the DP-SGD noise multiplier the per-label comparison and the sheets use (the poster's)


@dataclass(frozen=True)
class Studies:
    grid: optuna.Study | None
    search: optuna.Study | None
    dpsgd: optuna.Study | None

    def present(self) -> list[optuna.Study]:
        return [s for s in (self.grid, self.search, self.dpsgd) if s]


def load_studies(storage: optuna.storages.BaseStorage, name: str) -> Studies:
    found = {kind: find_study(storage, name, kind) for kind in KINDS}
    if not any(found.values()):
        names = ", ".join(study_name(name, kind) for kind in KINDS[:-1]) + f" or {study_name(name, KINDS[-1])}"
        raise AutoshieldError(f"no study named {names} in this storage")
    if not any(study and completed(study) for study in found.values()):
        raise AutoshieldError(f"the studies of {name!r} have no completed trials yet")
    return Studies(**found)


def utility(study: optuna.Study) -> str:
    """What a study's model accuracy means: `trained` (clean accuracy) or `recognizability`."""
    found = StudyInfo.read(study)
    return found.utility if found else "trained"


def network(study: optuna.Study) -> str:
    """The normalisation of the network a study's numbers come from (learn/models.py)."""
    found = StudyInfo.read(study)
    return found.norm if found else "batch"


def incomparable(dpsgd: optuna.Study, other: optuna.Study) -> str | None:
    """Why DP-SGD's numbers cannot be set against another study's, or None when they compare like with like: the
    same network, utility definition, data and profile (hence victims and attack)."""
    mine, theirs = StudyInfo.read(dpsgd), StudyInfo.read(other)
    if mine is None or theirs is None:
        return "not comparable: a study was not created by autoshield"
    if mine.norm != theirs.norm:
        return f"not comparable: different networks (DP-SGD norm {mine.norm}, {other.study_name} norm {theirs.norm})"
    if mine.utility != theirs.utility:
        return f"not comparable: {other.study_name}'s model accuracy is {theirs.utility}, DP-SGD's is {mine.utility}"
    if (mine.profile_fingerprint, mine.data) != (theirs.profile_fingerprint, theirs.data):
        return f"not comparable: {other.study_name} ran under another profile or data set"
    if mine.privacy != theirs.privacy:
        return f"not comparable: {other.study_name}'s privacy objective is {theirs.privacy}, DP-SGD's {mine.privacy}"
    return None


def dp_at(studies: Studies, sigma: float) -> FrozenTrial | None:
    if studies.dpsgd is None:
        return None
    matches = [t for t in completed(studies.dpsgd) if math.isclose(sigma_of(t), sigma)]
    return matches[0] if matches else None


def grid_identity(grid: optuna.Study) -> FrozenTrial | None:
    """The grid's completed Identity cell: the no-defence point every defence is read against."""
    return next((t for t in completed(grid) if cell_of(t) == IDENTITY), None)


def search_identity(search: optuna.Study) -> FrozenTrial | None:
    """The search's completed Identity policy (queued first): the baseline of its paired tests."""
    return next((t for t in completed(search) if policy_of(t) == Policy.identity()), None)


def identities(studies: Studies) -> list[tuple[optuna.Study, FrozenTrial]]:
    """Each policy study's completed Identity (no-defence) trial: the grid's cell, the search's queued policy."""
    found = []
    for study, find in ((studies.grid, grid_identity), (studies.search, search_identity)):
        if study and completed(study) and (identity := find(study)):
            found.append((study, identity))
    return found


def _attack_records(study: optuna.Study, trial: FrozenTrial) -> list[AttackRecord]:
    info = StudyInfo.read(study)
    if info and info.kind == "dpsgd":
        dp = DPRecord.read(trial)
        return [a for a in (dp.noised, dp.weights, dp.control, dp.identity) if a is not None]
    record = EvaluationRecord.read(trial)
    return [record.attack, *record.attacks.values()]


def judge_line(studies: Studies) -> str:
    """Which judge scored the studies (its digest) and how many trials another one, or an unrecorded one, scored:
    attack accuracies of two judges do not compare."""
    infos = [info for study in studies.present() if (info := StudyInfo.read(study))]
    stored = sorted({info.judge for info in infos if info.judge})
    if not stored:
        return (
            "No judge is stored with these studies (they predate it): each trial was scored by the judge of the "
            "machine that ran it, so counts from two machines may differ by the judge alone."
        )
    others = sum(
        any(a.judge not in stored for a in _attack_records(study, trial))
        for study in studies.present()
        for trial in completed(study)
    )
    text = f"Judge `{'`, `'.join(d[:12] for d in stored)}` (SHA-256 of its weights, stored with the studies)."
    if len(stored) > 1:
        text += " **The studies were scored by different judges: their attack accuracies do not compare.**"
    if others:
        text += (
            f" **{others} trials were scored by another or an unrecorded judge** (before the judge was stored): "
            "their attack accuracies do not compare with the others'."
        )
    return text
