"""The stored-results schema: what a study and its trials keep, as typed records.

Optuna keeps results as loose JSON user attributes. Every record here has one
writer to those attributes and one reader back, and no code outside this
module spells an attribute or parameter name, so the schema can be read in one
place and old studies stay readable (fields added later read as None).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import BaseTrial, FrozenTrial, Trial

from autoshield.core.errors import AutoshieldError
from autoshield.data.cifar import CLASSES
from autoshield.data.policy import Cell, Policy
from autoshield.evaluation.dpsgd import DPEvaluation
from autoshield.evaluation.evaluate import AttackResult, Evaluation

INFO_ATTR = "autoshield"  # study user attr holding the StudyInfo it was created with
GRID_PARAM = "cell"
SIGMA_PARAM = "sigma"
_FAIL_REASON = "fail_reason"
_SURPLUS = "surplus"


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _tupled(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


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

    def write(self, study: optuna.Study) -> None:
        study.set_user_attr(INFO_ATTR, self.as_attrs())

    def as_attrs(self) -> dict[str, Any]:
        return {field.name: _jsonable(getattr(self, field.name)) for field in dataclasses.fields(self)}

    def differences(self, study: optuna.Study) -> list[str]:
        """The fields whose stored value differs from this info's, in words; a field the study lacks differs."""
        stored, current = study.user_attrs.get(INFO_ATTR, {}), self.as_attrs()
        return [f"{k}: study has {stored.get(k)!r}, this run {v!r}" for k, v in current.items() if stored.get(k) != v]

    @classmethod
    def read(cls, study: optuna.Study) -> StudyInfo | None:
        """The info a study was created with; None for a study autoshield did not create. Studies older than
        the `utility` field measured trained accuracy."""
        stored = study.user_attrs.get(INFO_ATTR)
        if stored is None:
            return None
        defaults = {"utility": "trained", "cells": []}
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
        )

    def as_attrs(self, prefix: str = "") -> dict[str, Any]:
        return {prefix + field.name: _jsonable(getattr(self, field.name)) for field in dataclasses.fields(self)}

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any], prefix: str = "") -> AttackRecord | None:
        """None when the attack was not stored (e.g. the DP control of studies older than it)."""
        if prefix + "attack_accuracy" not in attrs:
            return None
        return cls(**{f.name: _tupled(attrs[prefix + f.name]) for f in dataclasses.fields(cls)})


def _store(trial: BaseTrial, attrs: dict[str, Any]) -> None:
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
    attack: AttackRecord
    train_seconds: float
    attack_seconds: float

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
        )

    def objectives(self) -> tuple[float, float]:
        return self.model_accuracy, self.attack.attack_accuracy

    def write(self, trial: Trial) -> None:
        _store(
            trial,
            {
                "policy": self.policy,
                "policy_json": self.policy_json,
                "utility": self.utility,
                "model_accuracy_per_label": list(self.model_accuracy_per_label),
                **self.attack.as_attrs(),
                "train_seconds": self.train_seconds,
                "attack_seconds": self.attack_seconds,
            },
        )

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
            model_accuracy_per_label=tuple(attrs["model_accuracy_per_label"]),
            attack=attack,
            train_seconds=attrs["train_seconds"],
            attack_seconds=attrs["attack_seconds"],
        )


@dataclass(frozen=True)
class GridCellRecord:
    """One grid cell: the cell applied to every label, and its evaluation."""

    cell: Cell
    evaluation: EvaluationRecord

    @classmethod
    def read(cls, trial: FrozenTrial) -> GridCellRecord:
        return cls(cell_of(trial), EvaluationRecord.read(trial))


@dataclass(frozen=True)
class DPRecord:
    """DP-SGD at one σ as stored on its trial: the attack objective is the `noised` setting (docs/design.md §4)."""

    sigma: float
    max_grad_norm: float
    delta: float
    epsilon: float
    epsilon_prv: float | None
    epochs: int
    model_accuracy: float
    model_accuracy_per_label: tuple[float, ...]
    noised: AttackRecord
    weights: AttackRecord
    control: AttackRecord | None  # None in studies older than the no-noise control
    train_seconds: float
    attack_seconds: float

    @classmethod
    def of(cls, evaluation: DPEvaluation) -> DPRecord:
        return cls(
            sigma=evaluation.sigma,
            max_grad_norm=evaluation.max_grad_norm,
            delta=evaluation.delta,
            epsilon=evaluation.epsilon,
            epsilon_prv=evaluation.epsilon_prv,
            epochs=evaluation.epochs,
            model_accuracy=evaluation.model_accuracy,
            model_accuracy_per_label=evaluation.model_accuracy_per_label,
            noised=AttackRecord.of(evaluation.noised),
            weights=AttackRecord.of(evaluation.weights),
            control=AttackRecord.of(evaluation.control),
            train_seconds=evaluation.train_seconds,
            attack_seconds=evaluation.attack_seconds,
        )

    def objectives(self) -> tuple[float, float]:
        return self.model_accuracy, self.noised.attack_accuracy

    def write(self, trial: Trial) -> None:
        _store(
            trial,
            {
                "sigma": self.sigma,
                "max_grad_norm": self.max_grad_norm,
                "delta": self.delta,
                "epsilon": self.epsilon,
                "epsilon_prv": self.epsilon_prv,
                "epochs": self.epochs,
                "setting": "noised",
                "model_accuracy_per_label": list(self.model_accuracy_per_label),
                **self.noised.as_attrs(),
                **self.weights.as_attrs("weights_"),
                **(self.control.as_attrs("control_") if self.control else {}),
                "train_seconds": self.train_seconds,
                "attack_seconds": self.attack_seconds,
            },
        )

    @classmethod
    def read(cls, trial: FrozenTrial) -> DPRecord:
        attrs = trial.user_attrs
        noised, weights = AttackRecord.from_attrs(attrs), AttackRecord.from_attrs(attrs, "weights_")
        if noised is None or weights is None:
            raise AutoshieldError(f"trial {trial.number} holds no DP-SGD evaluation")
        return cls(
            sigma=attrs["sigma"],
            max_grad_norm=attrs["max_grad_norm"],
            delta=attrs["delta"],
            epsilon=attrs["epsilon"],
            epsilon_prv=attrs.get("epsilon_prv"),
            epochs=attrs["epochs"],
            model_accuracy=trial.values[0],
            model_accuracy_per_label=tuple(attrs["model_accuracy_per_label"]),
            noised=noised,
            weights=weights,
            control=AttackRecord.from_attrs(attrs, "control_"),
            train_seconds=attrs["train_seconds"],
            attack_seconds=attrs["attack_seconds"],
        )


# Trial parameters: a grid trial draws one cell, a search trial one cell per label, a DP-SGD trial one σ.


def grid_params(cell: Cell) -> dict[str, str]:
    return {GRID_PARAM: str(cell)}


def search_params(policy: Policy) -> dict[str, str]:
    return {label: str(cell) for label, cell in zip(CLASSES, policy.cells, strict=True)}


def dp_params(sigma: float) -> dict[str, float]:
    return {SIGMA_PARAM: float(sigma)}


def suggest_cell(trial: Trial, cells: list[Cell]) -> Cell:
    return Cell.parse(trial.suggest_categorical(GRID_PARAM, [str(c) for c in cells]))


def suggest_policy(trial: Trial, cells: list[Cell]) -> Policy:
    """One categorical per label over the space's distinct cells (fixed choice lists)."""
    choices = [str(c) for c in cells]
    return Policy(tuple(Cell.parse(trial.suggest_categorical(label, choices)) for label in CLASSES))


def suggest_sigma(trial: Trial, low: float, high: float) -> float:
    return trial.suggest_float(SIGMA_PARAM, low, high, log=True)


def cell_of(trial: FrozenTrial) -> Cell:
    return Cell.parse(trial.params[GRID_PARAM])


def sigma_of(trial: FrozenTrial) -> float | None:
    return trial.params.get(SIGMA_PARAM)


def policy_of(trial: FrozenTrial) -> Policy:
    """The policy a grid or search trial evaluated."""
    if GRID_PARAM in trial.params:
        return Policy.uniform(cell_of(trial))
    return Policy.from_mapping(dict(trial.params))


# What the worker loop notes on trials it fails or skips.


def mark_failed(trial: Trial, reason: str) -> None:
    trial.set_user_attr(_FAIL_REASON, reason)


def fail_reason(trial: FrozenTrial) -> str | None:
    return trial.user_attrs.get(_FAIL_REASON)


def mark_surplus(trial: Trial) -> None:
    trial.set_user_attr(_SURPLUS, True)
