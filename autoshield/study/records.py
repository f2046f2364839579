"""The stored-results schema: what a study and its trials keep, as typed records.

Optuna keeps results as loose JSON user attributes. Every record here (and
DP-SGD's, in `study.dp_records`, and the worker's notes, in `study.marks`) has
one writer to those attributes and one reader back, and no code outside these
modules spells an attribute or parameter
name, so the schema can be read in one place and old studies stay readable
(fields added later read as None or as what older studies did).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import BaseTrial, FrozenTrial, Trial

from autoshield.core.errors import AutoshieldError
from autoshield.data.cifar import CLASSES
from autoshield.data.policy import Cell
from autoshield.evaluation.evaluate import Evaluation
from autoshield.evaluation.judge import AttackResult
from autoshield.privacy.paired import Outcomes
from autoshield.study.params import cell_of

INFO_ATTR = "autoshield"  # study user attr holding the StudyInfo it was created with
_CONFIRMATIONS = "confirmations"  # study user attr: the ConfirmationRecords of `autoshield confirm`


DIGITS = 4  # stored fractions and dB keep 0.01 % and 1e-4 dB, far below any interval, and lose float32 noise


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _tupled(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def meaningful(value: Any) -> Any:
    """A float (or a tuple of them) rounded to `DIGITS`: `0.8999999761581421` is stored and shown as `0.9`."""
    if isinstance(value, float):
        return round(value, DIGITS) if math.isfinite(value) else value
    if isinstance(value, tuple) and value and all(isinstance(v, float) for v in value):
        return tuple(meaningful(v) for v in value)
    return value


def labelled(values: tuple[float, ...] | None) -> dict[str, float] | None:
    """Per-label figures as stored: keyed by label name, so a trial page says whose figure each is."""
    return None if values is None else dict(zip(CLASSES, values, strict=True))


def unlabelled(value: dict[str, float] | list[float] | None) -> tuple[float, ...] | None:
    """Per-label figures read back in `CLASSES` order; studies older than the names stored plain lists."""
    if value is None:
        return None
    return tuple(value[label] for label in CLASSES) if isinstance(value, dict) else tuple(value)


@dataclass(frozen=True)
class StudyInfo:
    """What a study's numbers depend on; a study refuses a worker whose info differs."""

    kind: str  # grid | search | dpsgd
    space: str
    cells: tuple[str, ...]
    profile: str
    profile_fingerprint: str
    utility: str
    data: str  # data fingerprint
    merged: tuple[str, ...] = ()  # cells left out because they leave every probed image unchanged (= Identity)
    norm: str = ""  # the network's normalisation (learn/models.py): DP and augmentation compare only on one
    attacker: str = "naive"  # whose attack accuracy is the privacy objective (evaluation.attackers)
    judge: str = ""  # SHA-256 of the weights every trial is judged with (`study.judges`); "" before it was stored
    privacy: str = "recognition"  # what the privacy objective counts (`core.choices.PRIVACY_CHOICES`)

    def write(self, study: optuna.Study) -> None:
        study.set_user_attr(INFO_ATTR, self.as_attrs())

    def as_attrs(self) -> dict[str, Any]:
        return {field.name: _jsonable(getattr(self, field.name)) for field in dataclasses.fields(self)}

    def differences(self, study: optuna.Study) -> list[str]:
        """The fields whose stored value differs from this info's, in words; a field the study lacks has the
        value studies had before it existed (`read`)."""
        info = StudyInfo.read(study)
        stored, current = (info.as_attrs() if info else {}), self.as_attrs()
        if not stored.get("judge"):  # a study from before judges were stored adopts this run's (`catalog`)
            current.pop("judge")
        return [f"{k}: study has {stored.get(k)!r}, this run {v!r}" for k, v in current.items() if stored.get(k) != v]

    @classmethod
    def read(cls, study: optuna.Study) -> StudyInfo | None:
        """The info a study was created with; None for a study autoshield did not create. Studies older than
        the `utility` field measured trained accuracy; older than `norm`, DP-SGD ran on GroupNorm and policies
        on BatchNorm; older than `attacker`, the attacker was naive."""
        stored = study.user_attrs.get(INFO_ATTR)
        if stored is None:
            return None
        old_norm = "group" if stored.get("kind") == "dpsgd" else "batch"  # before studies stored it
        defaults = {
            "utility": "trained",
            "cells": [],
            "merged": [],
            "norm": old_norm,
            "attacker": "naive",
            "privacy": "recognition",
        }
        return cls(**{f.name: _tupled(stored.get(f.name, defaults.get(f.name, ""))) for f in dataclasses.fields(cls)})


@dataclass(frozen=True)
class AttackRecord:
    """One attack's stored summary: overall and per-label figures in `CLASSES` order."""

    attack_accuracy: float
    attack_accuracy_per_label: tuple[float, ...]
    attack_accuracy_ci: tuple[float, float]
    psnr_original: float
    psnr_original_per_label: tuple[float, ...]
    psnr_transformed: float
    ssim_original: float
    ssim_transformed: float
    recognisability: float
    recognisability_per_label: tuple[float, ...]
    label_recovery: float
    failed_reconstructions: int
    attacks_from_cache: int
    chance_floor: float | None = None  # absent from studies older than the held-out pool
    chance_floor_per_label: tuple[float, ...] | None = None
    outcomes: Outcomes | None = None  # per victim, for paired tests
    seconds: float | None = None  # spent attacking (0 when every reconstruction came from the cache); absent before
    identified: float | None = None  # share of victims singled out of the line-up; absent before it, or without one
    identified_per_label: tuple[float, ...] | None = None
    median_rank: float | None = None  # the victims' median rank in the line-up
    lineup: int | None = None  # candidates in the line-up: identification's null is 1 / lineup
    judge: str | None = None  # SHA-256 of the judge's weights; absent before studies stored their judge

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            object.__setattr__(self, field.name, meaningful(getattr(self, field.name)))

    def figure(self, privacy: str, label: int | None = None) -> float:
        """What a privacy objective scores this attack by, overall or on one label: attack accuracy
        (recognition), or the share of victims singled out of the line-up (identifiability; 0 without one)."""
        if privacy == "recognition":
            return self.attack_accuracy if label is None else self.attack_accuracy_per_label[label]
        if label is None:
            return self.identified or 0.0
        return self.identified_per_label[label] if self.identified_per_label else 0.0

    @classmethod
    def of(cls, attack: AttackResult) -> AttackRecord:
        overall, per_label = attack.overall, attack.per_label
        return cls(
            attack_accuracy=overall.attack_accuracy.mean,
            attack_accuracy_per_label=tuple(s.attack_accuracy.mean for s in per_label),
            attack_accuracy_ci=(overall.attack_accuracy.low, overall.attack_accuracy.high),
            psnr_original=overall.psnr_original.mean,
            psnr_original_per_label=tuple(s.psnr_original.mean for s in per_label),
            psnr_transformed=overall.psnr_transformed.mean,
            ssim_original=overall.ssim_original.mean,
            ssim_transformed=overall.ssim_transformed.mean,
            recognisability=overall.recognisability.mean,
            recognisability_per_label=tuple(s.recognisability.mean for s in per_label),
            label_recovery=overall.label_recovery.mean,
            failed_reconstructions=overall.failed,
            attacks_from_cache=attack.cached,
            chance_floor=overall.chance_floor.mean,
            chance_floor_per_label=tuple(s.chance_floor.mean for s in per_label),
            outcomes=attack.outcomes,
            seconds=attack.seconds,
            identified=overall.identified.mean if overall.identified else None,
            identified_per_label=tuple(s.identified.mean for s in per_label if s.identified) or None,
            median_rank=overall.median_rank,
            lineup=overall.lineup or None,
            judge=attack.judge,
        )

    def as_attrs(self, prefix: str = "") -> dict[str, Any]:
        attrs = {
            prefix + f.name: (labelled if f.name.endswith("_per_label") else _jsonable)(getattr(self, f.name))
            for f in dataclasses.fields(self)
        }
        attrs[prefix + "outcomes"] = None if self.outcomes is None else _outcomes_json(self.outcomes)
        return attrs

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any], prefix: str = "") -> AttackRecord | None:
        """None when the attack was not stored (e.g. the DP control of studies older than it)."""
        if prefix + "attack_accuracy" not in attrs:
            return None
        values = {
            f.name: (unlabelled if f.name.endswith("_per_label") else _tupled)(attrs.get(prefix + f.name))
            for f in dataclasses.fields(cls)
        }
        values["outcomes"] = None if values["outcomes"] is None else _outcomes_of(attrs[prefix + "outcomes"])
        return cls(**values)


def _outcomes_json(outcomes: Outcomes) -> dict[str, list[Any]]:
    """Column lists; NaN (a failed reconstruction's metrics) is stored as null, which every storage accepts."""
    return {
        f.name: [None if isinstance(v, float) and math.isnan(v) else v for v in getattr(outcomes, f.name)]
        for f in dataclasses.fields(outcomes)
    }


def _outcomes_of(columns: dict[str, list[Any]]) -> Outcomes:
    """Columns added since a study was stored (`sign_right`) take their default."""
    return Outcomes(
        **{
            f.name: tuple(math.nan if v is None else v for v in columns[f.name])
            for f in dataclasses.fields(Outcomes)
            if f.name in columns
        }
    )


def store_attrs(trial: BaseTrial, attrs: dict[str, Any]) -> None:
    for key, value in attrs.items():
        trial.set_user_attr(key, value)


@dataclass(frozen=True)
class EvaluationRecord:
    """A policy's evaluation as stored on its grid or search trial; the trial's values are the objectives."""

    policy: str
    policy_json: str
    utility: str
    model_accuracy: float
    model_accuracy_per_label: tuple[float, ...]
    attack: AttackRecord  # the objective's: the strongest attacker run
    train_seconds: float
    attack_seconds: float
    attacker: str = "naive"  # whose attack `attack` is
    attacks: dict[str, AttackRecord] = dataclasses.field(default_factory=dict)  # every attacker run, `attack` too
    privacy: str = "recognition"  # what the privacy objective counts (recognition before issue #34)
    choice: tuple[str, ...] = ()  # calibrated: the attacker each label faced, in `CLASSES` order
    calibration: dict[str, tuple[float, ...]] = dataclasses.field(default_factory=dict)  # per attacker, per label:
    # the privacy figure on the calibration victims that `choice` was made on

    def __post_init__(self) -> None:
        object.__setattr__(self, "model_accuracy", meaningful(float(self.model_accuracy)))
        object.__setattr__(self, "model_accuracy_per_label", meaningful(tuple(self.model_accuracy_per_label)))
        object.__setattr__(self, "calibration", {k: meaningful(tuple(v)) for k, v in self.calibration.items()})

    @classmethod
    def of(cls, evaluation: Evaluation) -> EvaluationRecord:
        return cls(
            policy=str(evaluation.policy),
            policy_json=json.dumps(evaluation.policy.as_mapping()),
            utility=evaluation.utility,
            model_accuracy=evaluation.model_accuracy,
            model_accuracy_per_label=evaluation.model_accuracy_per_label,
            attack=AttackRecord.of(evaluation.attack),
            train_seconds=evaluation.train_seconds,
            attack_seconds=evaluation.attack_seconds,
            attacker=evaluation.attacker,
            attacks={name: AttackRecord.of(attack) for name, attack in evaluation.attacks.items()},
            privacy=evaluation.privacy,
            choice=evaluation.choice,
            calibration={
                name: _per_label(AttackRecord.of(attack), evaluation.privacy)
                for name, attack in evaluation.calibration.items()
            },
        )

    def objectives(self) -> tuple[float, float]:
        return self.model_accuracy, self.attack.figure(self.privacy)

    def write(self, trial: Trial) -> None:
        store_attrs(trial, self.as_attrs())

    def as_attrs(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "policy_json": self.policy_json,
            "utility": self.utility,
            "model_accuracy_per_label": labelled(self.model_accuracy_per_label),
            **self.attack.as_attrs(),
            "train_seconds": self.train_seconds,
            "attack_seconds": self.attack_seconds,
            "attacker": self.attacker,
            "attackers": list(self.attacks),
            "privacy": self.privacy,
            **({"choice": dict(zip(CLASSES, self.choice, strict=True))} if self.choice else {}),
            **({"calibration": {k: labelled(v) for k, v in self.calibration.items()}} if self.calibration else {}),
            **{
                k: v
                for name in self.attacks
                if name != self.attacker
                for k, v in self.attacks[name].as_attrs(f"{name}_").items()
            },
        }

    @classmethod
    def read(cls, trial: FrozenTrial) -> EvaluationRecord:
        attrs = trial.user_attrs
        attack = AttackRecord.from_attrs(attrs)
        if attack is None:
            raise AutoshieldError(f"trial {trial.number} holds no policy evaluation")
        return cls(
            policy=attrs["policy"],
            policy_json=attrs["policy_json"],
            utility=attrs.get("utility", "trained"),
            model_accuracy=trial.values[0],
            model_accuracy_per_label=unlabelled(attrs["model_accuracy_per_label"]),
            attack=attack,
            train_seconds=attrs["train_seconds"],
            attack_seconds=attrs["attack_seconds"],
            attacker=attrs.get("attacker", "naive"),
            attacks={
                name: attack if name == attrs.get("attacker", "naive") else AttackRecord.from_attrs(attrs, f"{name}_")
                for name in attrs.get("attackers", ["naive"])  # before issue #15 every study was naive
            },
            privacy=attrs.get("privacy", "recognition"),
            choice=tuple(attrs["choice"][label] for label in CLASSES) if "choice" in attrs else (),
            calibration={k: unlabelled(v) or () for k, v in attrs.get("calibration", {}).items()},
        )


def _per_label(attack: AttackRecord, privacy: str) -> tuple[float, ...]:
    """An attack's privacy figure on each label, in `CLASSES` order."""
    return tuple(attack.figure(privacy, y) for y in range(len(CLASSES)))


@dataclass(frozen=True)
class GridCellRecord:
    """One grid cell: the cell applied to every label, and its evaluation."""

    cell: Cell
    evaluation: EvaluationRecord

    @classmethod
    def read(cls, trial: FrozenTrial) -> GridCellRecord:
        return cls(cell_of(trial), EvaluationRecord.read(trial))


@dataclass(frozen=True)
class ConfirmationRecord:
    """A policy re-attacked on fresh victims (pool slots the study never scored), kept on the study it came from
    so that `report` can put the found and the confirmed numbers side by side."""

    source: str  # "Identity", "grid best per label", "search trial 12", joined by "; " when they coincide
    policy: str
    first_slot: int  # fresh victims are pool slots [first_slot, first_slot + victims_per_label) of every label
    victims_per_label: int
    found_attack_accuracy: float | None  # on the study's own victims
    attack: AttackRecord
    seconds: float
    attacker: str = "naive"  # whose attack `attack` is: the strongest of the study's attacker choice
    privacy: str = "recognition"  # what the study's privacy objective counts, hence the paired endpoint

    def as_attrs(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "attack"}
        return {**values, "attack": self.attack.as_attrs()}

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> ConfirmationRecord:
        attack = AttackRecord.from_attrs(attrs["attack"])
        if attack is None:
            raise AutoshieldError(f"confirmation of {attrs.get('policy')!r} holds no attack result")
        return cls(**{**attrs, "attack": attack})

    @staticmethod
    def read_all(study: optuna.Study) -> list[ConfirmationRecord]:
        return [ConfirmationRecord.from_attrs(a) for a in study.user_attrs.get(_CONFIRMATIONS, [])]

    @staticmethod
    def write_all(study: optuna.Study, records: list[ConfirmationRecord]) -> None:
        """Store `records`, replacing earlier confirmations of the same policy on the same victims."""
        fresh = {(r.policy, r.first_slot, r.victims_per_label) for r in records}
        kept = [
            r for r in ConfirmationRecord.read_all(study) if (r.policy, r.first_slot, r.victims_per_label) not in fresh
        ]
        study.set_user_attr(_CONFIRMATIONS, [r.as_attrs() for r in [*kept, *records]])
