"""Paired comparisons of two attacks on the same victims (docs/design.md §8).

Two cells attacked on the same victims with the same random starts differ only
by the transformation, so their outcomes are compared victim by victim:
recognised or not with an exact McNemar test on the discordant pairs; PSNR, the
judge's probability for the true label and the victim's rank in the line-up
with Wilcoxon signed-rank tests, which draw on every victim. Holm's step-down correction controls the
family-wise error over the cells compared. Pure functions of per-victim
outcomes: nothing here trains, attacks or judges.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

ALPHA = 0.05  # family-wise error rate of every "significantly" autoshield prints


@dataclass(frozen=True)
class Outcomes:
    """One attack's per-victim results, in victim order. `victims` are training-split indices: two attacks pair
    up on the victims they share. A failed (non-finite) reconstruction counts as not recognised, and its image
    metrics are NaN."""

    victims: tuple[int, ...]
    labels: tuple[int, ...]
    recognised: tuple[bool, ...]  # the judge gives the reconstruction the victim's label
    predicted: tuple[int, ...]  # the judge's label for the reconstruction (-1: failed)
    floor: tuple[bool, ...]  # the judge gives an information-free image (the attack's start) the victim's label
    failed: tuple[bool, ...]
    psnr_original: tuple[float, ...]
    psnr_transformed: tuple[float, ...]
    ssim_original: tuple[float, ...]
    ssim_transformed: tuple[float, ...]
    recognisable: tuple[bool, ...]  # the judge recognises the transformed image itself
    sign_right: tuple[int, ...] = ()  # the adaptive attacker kept the client's sign (1/0; -1 no guess; () unknown)
    slots: tuple[int, ...] = ()  # each victim's slot in the held-out pool (-1 not from it; () stored before)
    true_probability: tuple[float, ...] = ()  # the judge's softmax for the victim's label (NaN failed; () before)
    rank: tuple[int, ...] = ()  # the victim's rank in the identification line-up (1: singled out; () not ranked)

    def where(self, label: int | None) -> list[int]:
        """Positions of the victims of `label` (all when None)."""
        return [i for i, y in enumerate(self.labels) if label is None or y == label]


@dataclass(frozen=True)
class PairedTest:
    """A cell against a baseline on their shared victims (optionally one label's)."""

    n: int  # victims both attacks scored
    cell_recognised: int
    baseline_recognised: int
    only_cell: int  # discordant: recognised under the cell, not under the baseline
    only_baseline: int  # discordant the other way
    p_mcnemar: float  # exact, two-sided; 1.0 with no discordant pair
    psnr_delta: float  # median of cell − baseline PSNR vs the original over pairs where both are finite
    p_wilcoxon: float  # two-sided; 1.0 with fewer than one non-zero difference
    # Continuous endpoints use every victim, not only the discordant ones (issue #34); NaN / 1.0 where not stored.
    p_true_delta: float = math.nan  # median of cell − baseline judge's probability for the true label
    p_wilcoxon_true: float = 1.0
    rank_delta: float = math.nan  # median of cell − baseline rank in the line-up (positive: harder to single out)
    p_wilcoxon_rank: float = 1.0

    @property
    def fewer_recognised(self) -> bool:
        return self.only_baseline > self.only_cell


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Exact McNemar: under H0 each discordant pair falls either way with probability 1/2."""
    discordant = only_a + only_b
    if discordant == 0:
        return 1.0
    return float(stats.binomtest(min(only_a, only_b), discordant, 0.5).pvalue)


def smallest_p(pairs: int) -> float:
    """The smallest exact McNemar p-value `pairs` victims can give (all discordant one way): below ALPHA only
    from 6 pairs on, so a label with 5 victims can never be significant on its own."""
    return mcnemar_exact(0, pairs) if pairs else 1.0


def wilcoxon(differences: Sequence[float]) -> float:
    values = [d for d in differences if math.isfinite(d)]
    if not any(values):
        return 1.0
    return float(stats.wilcoxon(values, zero_method="wilcox").pvalue)


def _paired_shift(a: tuple[float, ...], b: tuple[float, ...], pairs: list[tuple[int, int]]) -> tuple[float, float]:
    """Median of the paired differences a − b over pairs where both are finite, and its Wilcoxon p; (NaN, 1.0)
    where either attack did not store the endpoint."""
    if not a or not b:
        return math.nan, 1.0
    deltas = [a[i] - b[j] for i, j in pairs]
    finite = sorted(d for d in deltas if math.isfinite(d))
    return (float(stats.scoreatpercentile(finite, 50)) if finite else math.nan), wilcoxon(deltas)


def compare(cell: Outcomes, baseline: Outcomes, *, label: int | None = None) -> PairedTest:
    """Pair `cell` with `baseline` on the victims both scored (of `label`, or all)."""
    position = {v: i for i, v in enumerate(baseline.victims)}
    pairs = [(i, position[v]) for i in cell.where(label) if (v := cell.victims[i]) in position]
    a = [cell.recognised[i] for i, _ in pairs]
    b = [baseline.recognised[j] for _, j in pairs]
    only_a = sum(x and not y for x, y in zip(a, b, strict=True))
    only_b = sum(y and not x for x, y in zip(a, b, strict=True))
    psnr_delta, p_psnr = _paired_shift(cell.psnr_original, baseline.psnr_original, pairs)
    true_delta, p_true = _paired_shift(cell.true_probability, baseline.true_probability, pairs)
    rank_delta, p_rank = _paired_shift(tuple(map(float, cell.rank)), tuple(map(float, baseline.rank)), pairs)
    return PairedTest(
        n=len(pairs),
        cell_recognised=sum(a),
        baseline_recognised=sum(b),
        only_cell=only_a,
        only_baseline=only_b,
        p_mcnemar=mcnemar_exact(only_a, only_b),
        psnr_delta=psnr_delta,
        p_wilcoxon=p_psnr,
        p_true_delta=true_delta,
        p_wilcoxon_true=p_true,
        rank_delta=rank_delta,
        p_wilcoxon_rank=p_rank,
    )


def scored(outcomes: Outcomes, privacy: str) -> Outcomes:
    """`outcomes` with `recognised` as the study's privacy objective counts it: the judge's verdict
    (recognition), or the victim singled out of the line-up (identifiability: rank 1), so that every paired test
    and count reads one endpoint. Attacks stored before the line-up have no ranks, hence no identification."""
    if privacy == "recognition":
        return outcomes
    if not outcomes.rank:
        return dataclasses.replace(outcomes, recognised=(False,) * len(outcomes.victims))
    return dataclasses.replace(outcomes, recognised=tuple(rank == 1 for rank in outcomes.rank))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (step-down, monotone, capped at 1), in the input order."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    adjusted = [1.0] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def significantly_fewer(test: PairedTest, adjusted_p: float) -> bool:
    """The cell's attack recognised significantly fewer victims than the baseline's (Holm-adjusted)."""
    return test.fewer_recognised and adjusted_p < ALPHA
