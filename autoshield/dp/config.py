"""DP-SGD's settings, apart from Opacus so that the threat model and the CLI can check them without it."""

from __future__ import annotations

import math
from dataclasses import dataclass

from autoshield.core.errors import AutoshieldError


@dataclass(frozen=True)
class DPConfig:
    """Noise multiplier σ, clipping norm C, target δ, and the largest batch put through the model at once."""

    sigma: float
    max_grad_norm: float = 1.0
    delta: float = 1e-5
    physical_batch_size: int = 64

    def __post_init__(self) -> None:
        if not (math.isfinite(self.sigma) and self.sigma > 0):
            raise AutoshieldError(f"DP noise multiplier sigma must be finite and > 0, got {self.sigma}")
        if not (math.isfinite(self.max_grad_norm) and self.max_grad_norm > 0):
            raise AutoshieldError(f"DP max_grad_norm must be finite and > 0, got {self.max_grad_norm}")
        if not 0 < self.delta < 1:
            raise AutoshieldError(f"DP delta must be in (0, 1), got {self.delta}")
        if self.physical_batch_size < 1:
            raise AutoshieldError(f"DP physical_batch_size must be >= 1, got {self.physical_batch_size}")


def require_private_trainable(norm: str) -> None:
    """DP-SGD needs per-sample gradients, which BatchNorm (it mixes a batch's images) does not have."""
    if norm == "batch":
        raise AutoshieldError(
            "DP-SGD cannot train norm 'batch': BatchNorm mixes the images of a batch, so per-sample gradients do not "
            "exist; use --set norm='\"none\"' (or layer, group) for both the DP and the augmentation studies"
        )
