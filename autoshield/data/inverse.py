"""Post-hoc inverses: undo a known operation on an image, for a cheap policy-aware attacker.

The naive attack recovers the *transformed* image well (docs/design.md §10); an attacker who knows the policy
can then undo the operation where an inverse exists:
- Brightness, Color and Contrast are blends with a known factor f. Brightness blends with black; Color with
  the image's own greyscale, which the blend leaves unchanged; Contrast with its mean grey, which the blend also
  leaves unchanged. Each is therefore solved for the original from the output alone.
- The affine ops are undone by the opposite shear, shift or rotation; the border they pushed out stays lost.
- Solarize is an involution on the pixels it flipped. Below a threshold of one half, every output pixel at or
  above the threshold was flipped, and solarising again restores it; the darker ones stay ambiguous. Above one
  half every flipped pixel is ambiguous, and solarising again changes nothing.
- Invert is its own inverse.
Sharpness, Posterize, AutoContrast and Equalize have no inverse here: the image is returned unchanged.
The per-image sign is a secret of the client; `signs` hands it to the inverse, which makes this attacker
stronger than a real one (conservative for a privacy claim).
"""

from __future__ import annotations

import torch
from torchvision.transforms.v2 import functional as F

from autoshield.data.ops import OPS, apply_signed, op_value
from autoshield.data.soft_ops import SOFT_OPS, SoftOp


def _unblend(degenerate: SoftOp) -> SoftOp:
    """Solve out = f·x + (1 − f)·d(out) for x, where the blend leaves d unchanged: x = (out − (1 − f)·d) / f."""

    def apply(pixels: torch.Tensor, value: float) -> torch.Tensor:
        factor = 1.0 + value
        return ((pixels - (1.0 - factor) * degenerate(pixels, value)) / factor).clamp(0, 1)

    return apply


def _opposite(name: str) -> SoftOp:
    """The same affine op with the opposite value: its inverse up to the lost border and nearest rounding."""
    forward = OPS[name].apply
    return lambda pixels, value: forward(pixels, -value)


INVERSES: dict[str, SoftOp] = {
    "Identity": lambda pixels, value: pixels,
    "Brightness": _unblend(lambda pixels, value: torch.zeros_like(pixels)),
    "Color": _unblend(lambda pixels, value: F.rgb_to_grayscale(pixels, num_output_channels=3)),
    "Contrast": _unblend(
        lambda pixels, value: F.rgb_to_grayscale(pixels, num_output_channels=1).mean(dim=(-3, -2, -1), keepdim=True)
    ),
    **{name: _opposite(name) for name in ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")},
    "Solarize": SOFT_OPS["Solarize"],
    "Invert": SOFT_OPS["Invert"],
}


def exact(name: str) -> bool:
    """Whether `name`'s inverse here is exact up to the lost border and clamping. Solarize's is partial (its darker
    pixels stay ambiguous), so the learned inverse (`privacy.learned`) replaces it, as it does where none exists."""
    return name in INVERSES and name != "Solarize"


def invert_op(pixels: torch.Tensor, name: str, magnitude: int, *, signs: torch.Tensor | None = None) -> torch.Tensor:
    """Undo `apply_op(·, name, magnitude, signs)` on float pixels in [0, 1]; unchanged where no inverse exists."""
    inverse = INVERSES.get(name)
    if inverse is None:
        return pixels
    value = op_value(name, magnitude, height=pixels.shape[-2], width=pixels.shape[-1])
    return apply_signed(inverse, pixels, value, signed=OPS[name].signed, signs=signs)
