"""Pareto geometry on (model accuracy ↑, attack accuracy ↓): dominance, hypervolume, the best trade-off."""

from __future__ import annotations

from collections.abc import Sequence

import optuna
from optuna.trial import FrozenTrial

from autoshield.core.errors import AutoshieldError
from autoshield.study.catalog import completed

REFERENCE_POINT = (0.0, 1.0)  # (model accuracy, attack accuracy): the worst possible corner


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """`a` is at least as good as `b` on (maximised model accuracy, minimised attack accuracy), better on one."""
    return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])


def hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float] = REFERENCE_POINT) -> float:
    """Area dominated by `points` (model accuracy up, attack accuracy down) and bounded by `reference`.

    Optuna's hypervolume code is private, so this is the exact 2-D sweep: sort by model accuracy,
    descending, and add the strip each point contributes below the best attack accuracy so far.
    """
    inside = sorted((p for p in points if p[0] > reference[0] and p[1] < reference[1]), key=lambda p: -p[0])
    area, best_attack = 0.0, reference[1]
    for index, (model, attack) in enumerate(inside):
        best_attack = min(best_attack, attack)
        next_model = inside[index + 1][0] if index + 1 < len(inside) else reference[0]
        area += (model - next_model) * (reference[1] - best_attack)
    return area


def hypervolume_history(study: optuna.Study) -> list[float]:
    """Hypervolume of the front after each completed trial, in trial order."""
    points: list[tuple[float, float]] = []
    history = []
    for trial in sorted(completed(study), key=lambda t: t.number):
        points.append((trial.values[0], trial.values[1]))
        history.append(hypervolume(points))
    return history


def best_tradeoff(study: optuna.Study) -> FrozenTrial:
    """The Pareto-optimal trial with the largest model accuracy minus attack accuracy."""
    front = study.best_trials
    if not front:
        raise AutoshieldError(f"study {study.study_name!r} has no completed trials")
    return max(front, key=lambda t: (t.values[0] - t.values[1], t.values[0]))
