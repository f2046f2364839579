"""Differentiable twins of the 14 operations, for an attacker who puts the policy inside the inversion.

They act on float pixels in [0, 1] and agree with the uint8 operations that policies use (`data.ops`) to within
one grey level of rounding. Where torchvision's float kernel is already differentiable (the affine ops and the
brightness, colour and contrast blends) it is used as is; Sharpness and AutoContrast are re-written without
torchvision's in-place updates, which autograd refuses; Solarize is a `where`, differentiable almost
everywhere. Posterize and Equalize are step functions whose gradient is zero almost everywhere, so they use a
straight-through estimator: the forward pass is the exact uint8 operation of the quantised pixels, the backward
pass the identity (docs/design.md §10).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional as nnf

from autoshield.data.ops import OPS, apply_signed, op_value

SoftOp = Callable[[torch.Tensor, float], torch.Tensor]  # (pixels in [0, 1], signed value) -> pixels


def _sharpness(pixels: torch.Tensor, value: float) -> torch.Tensor:
    """PIL's sharpness: blend the interior with a 3x3 smoothing (centre weight 5), keep the border."""
    channels = pixels.shape[-3]
    kernel = torch.ones(3, 3, dtype=pixels.dtype, device=pixels.device)
    kernel[1, 1] = 5.0
    kernel = (kernel / kernel.sum()).expand(channels, 1, 3, 3)
    inner = pixels[..., 1:-1, 1:-1]
    blurred = nnf.conv2d(pixels, kernel, groups=channels)
    change = (blurred - inner) * (1.0 - (1.0 + value))  # blend(x, blurred, f) = x + (1 - f)(blurred - x)
    return (pixels + nnf.pad(change, (1, 1, 1, 1))).clamp(0, 1)


def _autocontrast(pixels: torch.Tensor, value: float) -> torch.Tensor:
    """Stretch each channel to [0, 1]; a flat channel stays as it is."""
    low = pixels.amin(dim=(-2, -1), keepdim=True)
    span = pixels.amax(dim=(-2, -1), keepdim=True) - low
    flat = span == 0
    return ((pixels - torch.where(flat, 0.0, low)) / torch.where(flat, 1.0, span)).clamp(0, 1)


def _solarize(pixels: torch.Tensor, value: float) -> torch.Tensor:
    """Invert the pixels at or above the threshold (`value` is the threshold as a fraction of 255)."""
    return torch.where(pixels >= value, 1.0 - pixels, pixels)


def _straight_through(name: str) -> SoftOp:
    exact = OPS[name].apply

    def apply(pixels: torch.Tensor, value: float) -> torch.Tensor:
        quantised = pixels.detach().mul(255).round().clamp(0, 255).to(torch.uint8)
        forward = exact(quantised, value).to(pixels.dtype) / 255
        return pixels + (forward - pixels).detach()

    return apply


SOFT_OPS: dict[str, SoftOp] = {
    **{name: OPS[name].apply for name in OPS},  # torchvision's float kernels, differentiable for these
    "Sharpness": _sharpness,
    "AutoContrast": _autocontrast,
    "Solarize": _solarize,
    "Posterize": _straight_through("Posterize"),
    "Equalize": _straight_through("Equalize"),
}
STRAIGHT_THROUGH = frozenset({"Posterize", "Equalize"})  # exact forward, identity gradient


def soft_apply(pixels: torch.Tensor, name: str, magnitude: int, *, signs: torch.Tensor | None = None) -> torch.Tensor:
    """`apply_op` on float pixels `[N,3,H,W]` in [0, 1], differentiable with respect to them."""
    op = OPS[name]
    value = op_value(name, magnitude, height=pixels.shape[-2], width=pixels.shape[-1])
    return apply_signed(SOFT_OPS[name], pixels, value, signed=op.signed, signs=signs)
