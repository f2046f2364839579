"""How many victims a paired claim needs: the exact power of McNemar's test under Holm (issue #34).

A design that cannot detect the effect it looks for reports "no difference" whatever the truth. The effect of a
paired comparison is the share of victims the baseline leaks and the cell does not (`only_baseline`) and the
share the other way (`only_cell`). The smallest Holm-adjusted p of a family of m tests is m times its raw p, so
a single true effect among m must reach p < α / m: the power computed here is that bound, which holds whatever
the other members do. Pure functions: exact binomial sums, no simulation.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from autoshield.core.errors import AutoshieldError
from autoshield.privacy.paired import ALPHA

MAX_VICTIMS = 5_000  # per arm: beyond this a design is not worth planning on these machines


def mcnemar_power(
    *, victims: int, only_baseline: float, only_cell: float, family: int = 1, alpha: float = ALPHA
) -> float:
    """The probability that the exact two-sided McNemar test on `victims` pairs finds the cell leaking
    significantly less than the baseline at α / `family`."""
    if not (0 <= only_baseline <= 1 and 0 <= only_cell <= 1 and only_baseline + only_cell <= 1):
        raise AutoshieldError(f"discordant shares must be in [0, 1] and sum to at most 1: {only_baseline}, {only_cell}")
    if family < 1:
        raise AutoshieldError(f"a family has at least one test, got {family}")
    discordant = only_baseline + only_cell
    if victims < 1 or discordant == 0:
        return 0.0
    level = alpha / family
    d = np.arange(victims + 1)
    # per d, the most `only_cell` pairs that still reject: the exact two-sided p is 2·P(X ≤ k | d, 1/2)
    k = stats.binom.ppf(level / 2, d, 0.5)
    k = np.where(2 * stats.binom.cdf(k, d, 0.5) <= level, k, k - 1)
    reach = stats.binom.pmf(d, victims, discordant)  # P(d discordant pairs)
    reject = np.where(k >= 0, stats.binom.cdf(k, d, only_cell / discordant), 0.0)
    return float((reach * reject).sum())


def victims_for_power(
    *, only_baseline: float, only_cell: float, family: int = 1, power: float = 0.8, alpha: float = ALPHA
) -> int | None:
    """The fewest victims whose power reaches `power` (None: not within `MAX_VICTIMS`). Discreteness makes power
    saw-toothed in n, so the answer is the first n at which it is reached."""
    for victims in range(1, MAX_VICTIMS + 1):
        if (
            mcnemar_power(victims=victims, only_baseline=only_baseline, only_cell=only_cell, family=family, alpha=alpha)
            >= power
        ):
            return victims
    return None
