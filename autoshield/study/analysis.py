"""What a finished study says: every cell paired with Identity, the best cell per label, the policy they make.

A cell is "better" on a label only when its attack recognised significantly
fewer of that label's victims than Identity's did on the same victims from the
same starts (exact McNemar, Holm-corrected over every cell and label compared);
the lowest attack accuracy alone is chance among many cells (docs/design.md §8).
The search queues the resulting policy first, and `grid`, `export` and `report`
print it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import optuna

from autoshield.core.choices import DEFAULT_TOLERANCE, PRIVACY_WORDS
from autoshield.core.errors import AutoshieldError
from autoshield.data.cifar import CLASSES
from autoshield.data.policy import IDENTITY, Cell, Policy
from autoshield.privacy.paired import (
    ALPHA,
    Outcomes,
    PairedTest,
    compare,
    holm,
    scored,
    significantly_fewer,
    smallest_p,
)
from autoshield.study.catalog import completed
from autoshield.study.records import GridCellRecord, StudyInfo

NONE_BETTER = "no cell significantly better than Identity"


@dataclass(frozen=True)
class Comparison:
    """One cell (or policy) against Identity on one label's shared victims (label None: all of them)."""

    test: PairedTest
    p_holm: float  # Holm-adjusted over the family: every cell x label compared (label None: every cell)
    p_holm_true: float = 1.0  # the judge's probability for the true label (Wilcoxon), adjusted the same way
    p_holm_rank: float = 1.0  # the rank in the line-up (Wilcoxon), adjusted the same way

    @property
    def significant(self) -> bool:
        return significantly_fewer(self.test, self.p_holm)


def compare_all(
    outcomes: dict[str, Outcomes], baseline: Outcomes, *, labels: Sequence[int | None] = (None, *range(len(CLASSES)))
) -> dict[tuple[str, int | None], Comparison]:
    """Every named attack against `baseline`, for each of `labels` (None: all victims), each endpoint (recognised,
    the judge's probability, the rank in the line-up) Holm-corrected apart over one family per scope: the overall
    tests over the attacks, the per-label tests over attacks x labels together. A per-label claim is one of
    cells x labels (what `autoshield plan` prices), so the policy the labels make keeps the family-wise level;
    computed from every completed trial, a resumed study's family includes the trials added since."""
    tests = {(name, label): compare(o, baseline, label=label) for label in labels for name, o in outcomes.items()}
    out: dict[tuple[str, int | None], Comparison] = {}
    for overall in (True, False):
        family = [key for key in tests if (key[1] is None) == overall]
        adjusted = zip(
            holm([tests[k].p_mcnemar for k in family]),
            holm([tests[k].p_wilcoxon_true for k in family]),
            holm([tests[k].p_wilcoxon_rank for k in family]),
            strict=True,
        )
        for key, (p, p_true, p_rank) in zip(family, adjusted, strict=True):
            out[key] = Comparison(tests[key], p, p_holm_true=p_true, p_holm_rank=p_rank)
    return out


JUDGE_LIMIT = 0.10  # a cell whose unattacked images the judge recognises this much less often than Identity's


def judge_limited(cell: Outcomes, identity: Outcomes, label: int | None) -> bool:
    """The judge fails on the cell's transformed, unattacked victims (photo-negatives, rotations) more than
    `JUDGE_LIMIT` below Identity's: its attack accuracy then measures the judge's blindness as much as the leak,
    and identifiability, which needs no judge, is the figure to read (docs/design.md §8)."""

    def share(outcomes: Outcomes) -> float:
        at = outcomes.where(label)
        return sum(outcomes.recognisable[i] for i in at) / len(at) if at else math.nan

    return share(cell) < share(identity) - JUDGE_LIMIT


def protects(comparison: Comparison, *, limited: bool) -> bool:
    """The cell protects on the compared victims: significantly fewer recognised than Identity and, where the
    judge is blind to the cell (`judge_limited`), also significantly harder to single out of the line-up."""
    if not comparison.significant:
        return False
    return not limited or (comparison.test.rank_delta > 0 and comparison.p_holm_rank < ALPHA)


@dataclass(frozen=True)
class BestCell:
    label: str
    cell: Cell  # Identity when no cell qualifies
    significant: bool  # False: NONE_BETTER (the row shows Identity's numbers)
    model_accuracy: float
    attack_accuracy: float
    psnr: float
    floor: float | None  # the chance floor on this label's victims (None: study predates it)
    failed: int | None  # non-finite reconstructions among this label's victims, counted as unrecognised
    comparison: Comparison | None  # against Identity on this label; None for Identity itself


def grid_cells(study: optuna.Study) -> dict[Cell, GridCellRecord]:
    """The completed cells of a grid study (the first completion of a cell wins)."""
    cells: dict[Cell, GridCellRecord] = {}
    for trial in completed(study):
        record = GridCellRecord.read(trial)
        cells.setdefault(record.cell, record)
    return cells


def privacy_of(study: optuna.Study) -> str:
    """What the study's privacy objective counts; recognition for studies older than the choice."""
    info = StudyInfo.read(study)
    return info.privacy if info else "recognition"


def grid_comparisons(study: optuna.Study) -> dict[tuple[str, int | None], Comparison]:
    """Each completed non-Identity cell of a grid against its Identity cell, on the endpoint the study's privacy
    objective counts (`privacy.paired.scored`); empty when Identity is not done or the study predates per-victim
    outcomes."""
    cells = grid_cells(study)
    identity = cells.get(IDENTITY)
    if identity is None or identity.evaluation.attack.outcomes is None:
        return {}
    privacy = privacy_of(study)
    outcomes = {
        str(cell): scored(record.evaluation.attack.outcomes, privacy)
        for cell, record in cells.items()
        if cell != IDENTITY and record.evaluation.attack.outcomes is not None
    }
    return compare_all(outcomes, scored(identity.evaluation.attack.outcomes, privacy))


def best_cells(
    study: optuna.Study, *, tolerance: float = DEFAULT_TOLERANCE, pooled: bool = False
) -> tuple[list[BestCell], str]:
    """Per label, among cells significantly below Identity's attack accuracy and within `tolerance` of its model
    accuracy, the one with the lowest attack accuracy (ties: higher model accuracy); Identity with
    `significant=False` where none qualifies, or while Identity itself is not done. Returns the table and the
    rule in words. `pooled` reads each cell's privacy over every label's victims (its overall test, Holm over the
    cells), and its model accuracy per label: what a per-label choice may rest on where privacy does not depend on
    the label (issue #37 item 1), with ten times the victims behind each test."""
    results = {cell: record.evaluation for cell, record in grid_cells(study).items()}
    if not results:
        raise AutoshieldError(f"study {study.study_name!r} has no completed grid cells")
    comparisons = grid_comparisons(study)
    privacy = privacy_of(study)
    table = []
    for i, label in enumerate(CLASSES):
        if IDENTITY not in results:  # nothing to compare with yet
            table.append(BestCell(label, IDENTITY, False, math.nan, math.nan, math.nan, None, None, None))
            continue
        at = None if pooled else i  # where privacy is read: this label's victims, or every label's
        accuracy = {cell: r.model_accuracy_per_label[i] for cell, r in results.items()}
        attack = {cell: r.attack.figure(privacy, at) for cell, r in results.items()}
        baseline = results[IDENTITY].attack.outcomes
        allowed = [
            cell
            for cell in results
            if accuracy[cell] >= accuracy[IDENTITY] - tolerance
            and (c := comparisons.get((str(cell), at))) is not None
            and (outcomes := results[cell].attack.outcomes) is not None
            and baseline is not None
            and protects(c, limited=privacy == "recognition" and judge_limited(outcomes, baseline, at))
        ]
        best = min(allowed, key=lambda cell: (attack[cell], -accuracy[cell]), default=IDENTITY)
        record = results[best].attack
        floor = record.chance_floor_per_label[i] if record.chance_floor_per_label else None
        failed = sum(record.outcomes.failed[j] for j in record.outcomes.where(i)) if record.outcomes else None
        comparison = comparisons.get((str(best), at))
        psnr = record.psnr_original_per_label[i]
        table.append(
            BestCell(label, best, best != IDENTITY, accuracy[best], attack[best], psnr, floor, failed, comparison)
        )
    family = len({name for name, label in comparisons if (label is None) == pooled})
    victims = max((c.test.n for (_, label), c in comparisons.items() if (label is None) == pooled), default=0)
    counted, figure = PRIVACY_WORDS[privacy].counted, PRIVACY_WORDS[privacy].figure
    limited = (
        f"; a judge-limited cell (its unattacked images recognised {100 * JUDGE_LIMIT:.0f}+ points below "
        "Identity's) must also put its victims significantly lower in the identification line-up (Wilcoxon on the "
        "rank, Holm)"
        if privacy == "recognition"
        else ""
    )
    whose, tests, where = (
        ("every label's victims (pooled)", f"the {family} cells compared overall", "victims in all")
        if pooled
        else ("that label's victims", f"the {family} cells x {len(CLASSES)} labels compared", "victims per label")
    )
    tested = family * (1 if pooled else len(CLASSES))
    rule = (
        f"per label: among cells whose attack {counted} significantly fewer of {whose} than Identity's (exact "
        f"McNemar on the same victims and starts, Holm over {tests}, α = 0.05) and whose model accuracy on the "
        f"label is within {100 * tolerance:.0f} points of Identity's, the lowest {figure}{limited}; otherwise "
        f"'{NONE_BETTER}'. The cells were chosen on these victims, so only the policy's confirmed figure "
        f"(`autoshield confirm`) counts. With {victims} {where} the smallest attainable p is "
        f"{smallest_p(victims):.3g} before correction, {min(1.0, tested * smallest_p(victims)):.3g} after"
        + ("" if IDENTITY in results else "; Identity is not done yet, so no cell can be chosen")
    )
    return table, rule


def best_policy(table: list[BestCell]) -> Policy:
    return Policy(tuple(row.cell for row in table))
