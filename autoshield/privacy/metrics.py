"""Privacy metrics: image similarity and intervals for small samples.

Pure functions of tensors: they know nothing of training or of the judging
classifier (`autoshield.privacy.reference`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from scipy import stats
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure


def psnr(images: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of float images in [0, 1]."""
    return peak_signal_noise_ratio(images, references, data_range=1.0, reduction="none", dim=(1, 2, 3))


def ssim(images: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM of float images in [0, 1]."""
    return structural_similarity_index_measure(images, references, data_range=1.0, reduction="none")


@dataclass(frozen=True)
class Estimate:
    """A mean with a 95 % interval (Wilson for proportions, Student's t for means); NaN when n = 0."""

    mean: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.3g} [{self.low:.3g}, {self.high:.3g}]"


def proportion(successes: torch.Tensor) -> Estimate:
    n, k = len(successes), int(successes.sum())
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    interval = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return Estimate(k / n, float(interval.low), float(interval.high), n)


def mean_interval(values: torch.Tensor) -> Estimate:
    values = values.double()
    n = len(values)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    mean = float(values.mean())
    if n == 1:
        return Estimate(mean, math.nan, math.nan, 1)
    half = float(stats.t.ppf(0.975, n - 1) * values.std() / math.sqrt(n))
    return Estimate(mean, mean - half, mean + half, n)
