"""What a finished grid says: the best cell per label, and the per-label policy they make.

The search queues that policy first, and `grid` and `report` print it.
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna

from autoshield.core.choices import DEFAULT_TOLERANCE
from autoshield.core.errors import AutoshieldError
from autoshield.data.cifar import CLASSES
from autoshield.data.policy import IDENTITY, Cell, Policy
from autoshield.study.catalog import completed
from autoshield.study.records import GridCellRecord


@dataclass(frozen=True)
class BestCell:
    label: str
    cell: Cell
    model_accuracy: float
    attack_accuracy: float
    psnr: float


def grid_cells(study: optuna.Study) -> dict[Cell, GridCellRecord]:
    """The completed cells of a grid study (the first completion of a cell wins)."""
    cells: dict[Cell, GridCellRecord] = {}
    for trial in completed(study):
        record = GridCellRecord.read(trial)
        cells.setdefault(record.cell, record)
    return cells


def best_cells(study: optuna.Study, *, tolerance: float = DEFAULT_TOLERANCE) -> tuple[list[BestCell], str]:
    """Per label, the grid cell with the lowest attack accuracy among those whose per-label model
    accuracy stays within `tolerance` of the reference (Identity, else the best cell); ties go to
    the higher model accuracy. Returns the table and the rule in words."""
    results = {cell: record.evaluation for cell, record in grid_cells(study).items()}
    if not results:
        raise AutoshieldError(f"study {study.study_name!r} has no completed grid cells")
    rule_reference = str(IDENTITY) if IDENTITY in results else "the best cell"
    table = []
    for i, label in enumerate(CLASSES):
        accuracy = {cell: r.model_accuracy_per_label[i] for cell, r in results.items()}
        reference = accuracy[IDENTITY] if IDENTITY in results else max(accuracy.values())
        allowed = [cell for cell in results if accuracy[cell] >= reference - tolerance]
        attack = {cell: results[cell].attack.attack_accuracy_per_label[i] for cell in allowed}
        best = min(allowed, key=lambda cell: (attack[cell], -accuracy[cell]))
        psnr = results[best].attack.psnr_original_per_label[i]
        table.append(BestCell(label, best, accuracy[best], attack[best], psnr))
    rule = (
        f"per label: lowest attack accuracy among cells whose model accuracy on that label is within "
        f"{100 * tolerance:.0f} points of {rule_reference}'s; ties broken by higher model accuracy"
    )
    return table, rule


def best_policy(table: list[BestCell]) -> Policy:
    return Policy(tuple(row.cell for row in table))
