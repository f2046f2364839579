"""Identifiability: does a reconstruction single out its victim among the images it could be?

A judge's label says whether a reconstruction looks like *some* cat; identifiability says whether it points at
*this* cat, and needs no classifier, so a judge's blind spot (photo-negatives, rotations) is not scored as
privacy (issue #34). It is the nearest-neighbour test of Yin et al. 2021 that breaching reports as "image
identifiability precision", here by SSIM in pixel space over a fixed line-up of candidates. Each candidate may
be seen in several views (itself, and itself under the victim's cell with either sign: the policy is public), and
counts by its best-matching view.

Pure functions of tensors, like `privacy.metrics`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from autoshield.privacy.metrics import Estimate, proportion

_WINDOW, _SIGMA, _C1, _C2 = 11, 1.5, 0.01**2, 0.03**2  # SSIM's Gaussian window and constants (data range 1)


def _blur(images: torch.Tensor) -> torch.Tensor:
    """SSIM's local mean: a separable Gaussian over each channel, reflect-padded to keep the size (as torchmetrics).
    Written as two small matrix products (the blur of a row is linear), which the CPU runs far faster than a
    depthwise convolution."""
    height, width = images.shape[-2:]
    across = images @ _blur_matrix(width, images).T  # one large product over every row of every image
    return (across.transpose(-1, -2) @ _blur_matrix(height, images).T).transpose(-1, -2)


def _blur_matrix(size: int, like: torch.Tensor) -> torch.Tensor:
    """`[size, size]`: row i holds the Gaussian weights output i gives each input, the reflection folded in."""
    distance = torch.arange(_WINDOW, dtype=like.dtype, device=like.device) - (_WINDOW - 1) / 2
    weights = torch.exp(-((distance / _SIGMA) ** 2) / 2)
    pad = (_WINDOW - 1) // 2
    impulses = F.pad(torch.eye(size, dtype=like.dtype, device=like.device)[:, None], (pad, pad), mode="reflect")
    return F.conv1d(impulses, (weights / weights.sum()).view(1, 1, -1)).squeeze(1).T


def similarity_to_lineup(reconstructions: torch.Tensor, views: torch.Tensor, *, chunk: int = 64) -> torch.Tensor:
    """SSIM of each float `[n, 3, H, W]` reconstruction in [0, 1] to every candidate of `views` `[V, M, 3, H, W]`
    (float in [0, 1]), keeping each candidate's best view: `[n, M]`.

    The line-up's local means and variances are computed once; only the cross term is per reconstruction. Views
    go `chunk` at a time so that each step's tensors stay in the CPU's cache."""
    flat = views.flatten(0, 1)
    mean_y = _blur(flat)
    var_y = (_blur(flat * flat) - mean_y**2).clamp(min=0)
    mean_x = _blur(reconstructions)
    var_x = (_blur(reconstructions * reconstructions) - mean_x**2).clamp(min=0)
    scores = torch.empty(len(reconstructions), len(flat), dtype=reconstructions.dtype)
    for start in range(0, len(flat), chunk):
        part = slice(start, start + chunk)
        for i, image in enumerate(reconstructions):
            mx, my = mean_x[i], mean_y[part]
            covariance = _blur(flat[part] * image) - mx * my
            index = ((2 * mx * my + _C1) * (2 * covariance + _C2)) / (
                (mx**2 + my**2 + _C1) * (var_x[i] + var_y[part] + _C2)
            )
            scores[i, part] = index.flatten(1).mean(1)
    return scores.view(len(reconstructions), views.shape[0], views.shape[1]).amax(1)


def rank_of(similarity: torch.Tensor, truth: int) -> int:
    """The victim's rank in the line-up (1 = singled out): one plus the other candidates at least as similar.
    Ties count against the attacker, so an image equally close to two candidates identifies neither."""
    others = torch.ones_like(similarity, dtype=torch.bool)
    others[truth] = False
    return 1 + int((similarity[others] >= similarity[truth]).sum())


def identified(ranks: torch.Tensor) -> Estimate:
    """The share of victims singled out (rank 1), with its Wilson interval; its null is 1 / line-up size."""
    return proportion(ranks == 1)


def median_rank(ranks: torch.Tensor) -> float:
    """The median rank: how far down the line-up the victim sits when it is not singled out."""
    return float(ranks.double().quantile(0.5)) if len(ranks) else float("nan")
