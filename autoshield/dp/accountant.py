"""Privacy accounting: ε of Poisson-subsampled Gaussian steps, from Opacus' accountants.

Kept apart from training so that ε can be computed (and checked) for any
(σ, sample rate, steps) without running DP-SGD.
"""

from __future__ import annotations

import warnings

from autoshield.core.errors import AutoshieldError

try:
    from opacus.accountants import IAccountant, PRVAccountant, RDPAccountant
except ImportError:
    raise AutoshieldError("DP-SGD needs Opacus: pip install 'autoshield[dp]'") from None

PRV_MIN_SIGMA = 0.3  # below this the PRV accountant's discretisation runs out of memory


def _epsilon(accountant: IAccountant, *, sigma: float, sample_rate: float, steps: int, delta: float) -> float:
    accountant.history = [(sigma, sample_rate, steps)]
    return read_epsilon(accountant, delta)


def read_epsilon(accountant: IAccountant, delta: float) -> float:
    """The accountant's ε at `delta`, without Opacus' warning about loose bounds.

    For σ well below 1 the RDP optimum sits at the smallest order, so the bound is loose; ε is then far
    above 100 whatever the order, which `baseline` and `report` already flag as no meaningful guarantee.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the smallest alpha")
        return float(accountant.get_epsilon(delta))


def epsilon(*, sigma: float, sample_rate: float, steps: int, delta: float) -> float:
    """ε after `steps` Poisson-subsampled Gaussian steps, from Opacus' RDP accountant."""
    return _epsilon(RDPAccountant(), sigma=sigma, sample_rate=sample_rate, steps=steps, delta=delta)


def epsilon_prv(*, sigma: float, sample_rate: float, steps: int, delta: float) -> float | None:
    """The tighter PRV accountant's ε, or None for σ < 0.3 (out of memory) or when it fails."""
    if sigma < PRV_MIN_SIGMA:
        return None
    try:
        return _epsilon(PRVAccountant(), sigma=sigma, sample_rate=sample_rate, steps=steps, delta=delta)
    except (MemoryError, ArithmeticError, ValueError, RuntimeError):
        return None
