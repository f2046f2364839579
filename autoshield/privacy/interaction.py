"""Does a cell's effect depend on the label? The premise of per-label policies, tested (issue #37 item 1).

The data are counts: k of n per (cell, label), victims recognised (or singled out) under the cell, or clean test
images the network trained on the cell classifies right. The additive logistic model, logit p = cell + label,
says that a cell shifts every label alike on the log-odds scale; the saturated model gives each (cell, label) its
own rate. Their likelihood ratio (the residual deviance of the additive fit) tests the interaction. With a handful
of victims per (cell, label) the chi-squared approximation is poor, so the p-value is a parametric bootstrap under
the fitted additive model, and the power is simulated on the same design against the bootstrap's critical value.

The grid's cells share their victims (the paired design), which a binomial model ignores: within a label, victims
that differ in how easily they leak make each count less variable than a binomial's, so the test errs towards
"no interaction". A utility count from one training run per cell also carries that run's seed noise, which the
model reads as interaction: there the test errs the other way, and says so (`InteractionTest.seed_noise`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

RIDGE = 1e-4  # keeps a cell (or label) with no success at all, a separated direction, at a finite fit
MAX_STEP = 5.0  # on the log-odds scale: a separated direction walks out instead of overshooting
LIMIT = 20.0  # a rate within 2e-9 of 0 or 1 is as good as either for the deviance, and stays clear of denormals


@dataclass(frozen=True)
class InteractionTest:
    deviance: float  # 2 (log-likelihood saturated - additive)
    df: int  # (cell, label) groups with data, less the additive model's parameters
    p: float  # parametric bootstrap under the additive fit
    p_chi2: float  # the asymptotic chi-squared p-value, for reference
    draws: int
    cells: int
    labels: int
    delta: float  # the interaction `power` is for: each cell's labels split in two halves `delta` apart, opposite ways
    power: float
    seed_noise: bool = False  # utility from one training run per cell: seed noise reads as interaction

    @property
    def conclusion(self) -> str:
        return "depends on the label" if self.p < 0.05 else "no evidence that it depends on the label"


def additive_fit(k: np.ndarray, n: np.ndarray, *, sweeps: int = 50, tolerance: float = 1e-6) -> np.ndarray:
    """The additive model's fitted rates for counts `[..., cells, labels]` (leading axes: independent data sets,
    fitted at once): block-coordinate Newton on the ridge-penalised binomial likelihood, where each block (every
    cell's effect given the labels', then every label's given the cells') has a diagonal Hessian."""
    k, n = k.astype(float), n.astype(float)
    a = np.zeros(k.shape[:-1])  # per cell
    b = np.zeros(k.shape[:-2] + k.shape[-1:])  # per label
    for _ in range(sweeps):
        moved = 0.0
        for axis in (-1, -2):  # the cells' effects (summing over labels), then the labels' (over cells)
            p = special.expit(a[..., :, None] + b[..., None, :])
            effect = a if axis == -1 else b
            gradient = (k - n * p).sum(axis) - RIDGE * effect
            curvature = (n * p * (1 - p)).sum(axis) + RIDGE
            step = np.clip(gradient / curvature, -MAX_STEP, MAX_STEP)
            np.clip(effect + step, -LIMIT, LIMIT, out=effect)
            moved = max(moved, float(np.abs(step).max()))
        if moved < tolerance:
            break
    return special.expit(a[..., :, None] + b[..., None, :])


def deviance(k: np.ndarray, n: np.ndarray, fitted: np.ndarray) -> np.ndarray:
    """2 (log-likelihood of the saturated model - that of `fitted`) over the last two axes, with 0 log 0 = 0."""
    k, n, p = k.astype(float), n.astype(float), np.clip(fitted, 1e-300, 1 - 1e-16)
    rate = k / np.where(n > 0, n, 1)
    saturated = special.xlogy(k, rate) + special.xlogy(n - k, 1 - rate)
    model = special.xlogy(k, p) + special.xlogy(n - k, 1 - p)
    return 2 * np.sum(saturated - model, axis=(-2, -1))


def interaction_test(
    k: np.ndarray, n: np.ndarray, *, draws: int = 999, delta: float = 0.2, seed: int = 0, seed_noise: bool = False
) -> InteractionTest:
    """The likelihood-ratio test of cell x label on counts `k` of `n` (`[cells, labels]`, ints), with its
    bootstrap p-value and its power to see each cell's labels split into two halves `delta` apart on the rate
    scale, around the additive fit, the first half higher on every other cell and lower on the rest."""
    if k.shape != n.shape or k.ndim != 2 or min(k.shape) < 2:
        raise ValueError(f"counts must be [cells, labels] with at least 2 of each, got {k.shape} and {n.shape}")
    cells, labels = k.shape
    fitted = additive_fit(k, n)
    observed = float(deviance(k, n, fitted))
    df = int(np.sum(n > 0)) - (cells + labels - 1)
    generator = np.random.default_rng(seed)

    def refitted(rates: np.ndarray) -> np.ndarray:
        """The deviance of `draws` data sets drawn at `rates` on this design, each refitted."""
        drawn = generator.binomial(n, rates, size=(draws, *n.shape))
        return deviance(drawn, n, additive_fit(drawn, n))

    null = refitted(fitted)
    # the labels' halves move apart by `delta`, one way on half of the cells and the other way on the rest: an
    # interaction no cell or label effect can absorb
    sides = (
        np.where(np.arange(labels) < labels / 2, 1.0, -1.0)[None, :]
        * np.where(np.arange(cells) % 2, 1.0, -1.0)[:, None]
    )
    alternative = refitted(np.clip(fitted + sides * delta / 2, 0.01, 0.99))
    return InteractionTest(
        deviance=observed,
        df=df,
        p=(1 + int(np.sum(null >= observed))) / (draws + 1),
        p_chi2=float(stats.chi2.sf(observed, df)) if df > 0 else math.nan,
        draws=draws,
        cells=cells,
        labels=labels,
        delta=delta,
        power=float(np.mean(alternative > np.quantile(null, 0.95))),
        seed_noise=seed_noise,
    )
