"""Trial parameters: a grid trial draws one cell, a search trial one cell per label, a DP-SGD trial one σ.

The one place that spells parameter names, so the samplers' search space and
the readers of finished trials cannot drift apart.
"""

from __future__ import annotations

from optuna.trial import FrozenTrial, Trial

from autoshield.data.cifar import CLASSES
from autoshield.data.policy import Cell, Policy

GRID_PARAM = "cell"
SIGMA_PARAM = "sigma"


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
