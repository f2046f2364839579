"""DP-SGD at a policy's utility: where DP-SGD's σ curve crosses each front policy's model accuracy (issue #37).

A policy and a DP point rarely share a model accuracy, so setting one against the other compares two trade-offs at
two utilities. The measured σ values trace DP-SGD's curve. For each policy on a front, this finds the σ at which
that curve reaches the policy's model accuracy, and DP's attack accuracy there. Both are interpolated, never
measured, and the report says so: they say which σ to measure (`autoshield baseline --sigma`) so that the policy
meets DP-SGD where their utilities meet, paired on the same victims.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from autoshield.report.format import Rows, markdown_table, percent
from autoshield.report.studies import Studies, incomparable
from autoshield.study.catalog import completed
from autoshield.study.dp_records import DPRecord
from autoshield.study.records import EvaluationRecord


@dataclass(frozen=True)
class CurvePoint:
    """One measured σ: DP-SGD's model accuracy and its (noised) attack accuracy."""

    sigma: float
    model: float
    attack: float


@dataclass(frozen=True)
class Match:
    """Where DP-SGD's curve reaches a model accuracy. `sigma` is None outside the measured σ range; `note` says
    which side."""

    sigma: float | None
    attack: float | None
    note: str


def matched(*, curve: Sequence[CurvePoint], accuracy: float) -> Match:
    """The σ at which DP-SGD's model accuracy equals `accuracy`, linear in log σ between the two neighbouring
    measured σ that bracket it, and DP's attack accuracy there, interpolated alike. Where the curve crosses more
    than once (seed noise), the largest σ is taken: DP-SGD at its most private for that utility, which errs
    against the policy."""
    points = sorted(curve, key=lambda p: p.sigma)
    if len(points) < 2:
        return Match(None, None, "one σ measured: no curve to interpolate")
    for low, high in reversed(list(itertools.pairwise(points))):
        if min(low.model, high.model) <= accuracy <= max(low.model, high.model):
            share = 0.0 if low.model == high.model else (low.model - accuracy) / (low.model - high.model)
            sigma = math.exp(math.log(low.sigma) + share * (math.log(high.sigma) - math.log(low.sigma)))
            attack = low.attack + share * (high.attack - low.attack)
            return Match(sigma, attack, f"between σ = {low.sigma:g} and {high.sigma:g}")
    best = max(points, key=lambda p: p.model)
    if accuracy > best.model:
        return Match(None, None, f"above DP-SGD at every σ measured (best {percent(best.model)} %, σ = {best.sigma:g})")
    return Match(None, None, f"below DP-SGD at every measured σ (σ = {points[-1].sigma:g} still trains to more)")


def dp_curve(records: Sequence[DPRecord]) -> list[CurvePoint]:
    """The σ curve from the DP points whose attack works on their network (a failed σ = 0 control is left out)."""
    return [
        CurvePoint(r.sigma, r.model_accuracy, r.noised.attack_accuracy)
        for r in sorted(records, key=lambda r: r.sigma)
        if r.comparable("noised") is not False
    ]


def matched_lines(studies: Studies) -> list[str]:
    """The report's section: every front policy of a study comparable with DP-SGD, against DP at its utility."""
    if not (studies.dpsgd and completed(studies.dpsgd)):
        return []
    curve = dp_curve([DPRecord.read(t) for t in completed(studies.dpsgd)])
    rows: Rows = []
    reasons = []
    for study in (studies.grid, studies.search):
        if not (study and completed(study)):
            continue
        if reason := incomparable(studies.dpsgd, study):
            reasons.append(f"{study.study_name}: {reason}")
            continue
        for trial in sorted(study.best_trials, key=lambda t: -t.values[0]):
            model, attack = trial.values
            found = matched(curve=curve, accuracy=model)
            rows.append(
                {
                    "study": study.study_name,
                    "trial": str(trial.number),
                    "policy": f"`{EvaluationRecord.read(trial).policy}`",
                    "model %": percent(model),
                    "attack %": percent(attack),
                    "matched σ": "—" if found.sigma is None else f"{found.sigma:.3g}",
                    "DP attack % there (interpolated)": percent(found.attack),
                    "where": found.note,
                }
            )
    lines = [
        "## DP-SGD at matched utility",
        "",
        "Measured σ: "
        + (", ".join(f"{p.sigma:g}" for p in curve) or "none whose attack works on its network")
        + ". For each policy on a front, the σ at which DP-SGD's model accuracy equals the policy's (linear in "
        "log σ between the two measured σ that bracket it; the largest such σ where the curve crosses twice) and "
        "DP-SGD's attack accuracy there, interpolated alike. **Interpolated, not measured**: a claim at the "
        "matched σ needs that σ measured, `autoshield baseline --sigma σ`, which the paired tables then compare "
        "on the same victims.",
        "",
    ]
    lines += [markdown_table(rows)] if rows else []
    lines += [f"- {reason}" for reason in reasons] + ([""] if reasons else [])
    return lines
