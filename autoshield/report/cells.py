"""Every grid cell's row, per label and overall, with its paired test against Identity.

Best cells alone hide the denominator: a reader must be able to see all
cells × labels, how many victims each figure rests on, how often the attack
failed, where the chance floor lies, and whether a difference from Identity
survives the correction for the number of cells compared.
"""

from __future__ import annotations

import math

import optuna

from autoshield.data.cifar import CLASSES
from autoshield.data.policy import IDENTITY
from autoshield.privacy.paired import Outcomes
from autoshield.report.format import Rows, percent
from autoshield.study.analysis import Comparison, grid_cells, grid_comparisons, judge_limited
from autoshield.study.records import StudyInfo


def _mean(values: list[float]) -> str:
    finite = [v for v in values if math.isfinite(v)]
    return f"{sum(finite) / len(finite):.3g}" if finite else "—"


def _share(flags: list[bool]) -> str:
    return percent(sum(flags) / len(flags)) if flags else "—"


def p_value(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def outcome_columns(outcomes: Outcomes, label: int | None) -> dict[str, str]:
    """A label's (or all) victims' figures, from the per-victim outcomes."""
    at = outcomes.where(label)

    def pick(column: tuple) -> list:
        return [column[i] for i in at]

    recognised, ranks = pick(outcomes.recognised), pick(outcomes.rank) if outcomes.rank else []
    return {
        "attack k/n": f"{sum(recognised)}/{len(recognised)}",
        "attack %": _share(recognised),
        "floor %": _share(pick(outcomes.floor)),
        "failed": str(sum(pick(outcomes.failed))),
        "PSNR orig dB": _mean(pick(outcomes.psnr_original)),
        "PSNR x' dB": _mean(pick(outcomes.psnr_transformed)),
        "SSIM orig": _mean(pick(outcomes.ssim_original)),
        "SSIM x'": _mean(pick(outcomes.ssim_transformed)),
        "recognis. %": _share(pick(outcomes.recognisable)),
        "identified k/n": f"{sum(r == 1 for r in ranks)}/{len(ranks)}" if ranks else "—",
    }


def _shift(delta: float, p: float, digits: int, adjusted: str = "") -> str:
    """A paired median shift with its Wilcoxon p; '—' where the endpoint was not stored."""
    return f"{delta:+.{digits}f} (p{adjusted} {p:.2g})" if math.isfinite(delta) else "—"


def comparison_columns(comparison: Comparison | None) -> dict[str, str]:
    """The paired test against Identity; '—' for Identity itself."""
    if comparison is None:
        return {
            "vs Identity (only cell/only Id.)": "—",
            "p McNemar": "—",
            "p Holm": "—",
            "ΔPSNR dB": "—",
            "Δp(true)": "—",
            "Δrank": "—",
        }
    test = comparison.test
    verdict = " fewer*" if comparison.significant else ""
    return {
        "vs Identity (only cell/only Id.)": f"{test.only_cell}/{test.only_baseline}{verdict}",
        "p McNemar": p_value(test.p_mcnemar),
        "p Holm": p_value(comparison.p_holm),
        "ΔPSNR dB": _shift(test.psnr_delta, test.p_wilcoxon, 2),
        "Δp(true)": _shift(test.p_true_delta, comparison.p_holm_true, 3, " Holm"),
        "Δrank": _shift(test.rank_delta, comparison.p_holm_rank, 0, " Holm"),
    }


def cell_rows(study: optuna.Study) -> Rows:
    """One row per completed cell and label (then 'overall'); cells merged with Identity are listed once."""
    cells = grid_cells(study)
    comparisons = grid_comparisons(study)
    order = sorted(cells, key=lambda cell: (cell != IDENTITY, cell.op, cell.magnitude))
    identity = cells[IDENTITY].evaluation.attack.outcomes if IDENTITY in cells else None
    rows: Rows = []
    for cell in order:
        record = cells[cell].evaluation
        outcomes = record.attack.outcomes
        for label in [*range(len(CLASSES)), None]:
            row = {"cell": str(cell), "label": "overall" if label is None else CLASSES[label]}
            if outcomes is None:
                row["attack %"] = percent(record.attack.attack_accuracy)
                row["note"] = "study predates per-victim outcomes"
            else:
                row |= outcome_columns(outcomes, label)
                row |= comparison_columns(comparisons.get((str(cell), label)))
                if identity is not None and judge_limited(outcomes, identity, label):
                    row["judge"] = "judge-limited"
            accuracy = record.model_accuracy if label is None else record.model_accuracy_per_label[label]
            row[f"{record.utility} %"] = percent(accuracy)
            rows.append(row)
    info = StudyInfo.read(study)
    for merged in info.merged if info else ():
        rows.append({"cell": merged, "label": "all", "note": "leaves every probed image unchanged: = Identity"})
    return rows
