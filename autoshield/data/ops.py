"""RandAugment's 14 operations (plus Invert) as batched uint8 tensor functions.

Magnitude `m` is RandAugment's 0-10 scale; its value is torchvision's
`RandAugment` table at bin `3m` of 31 (docs/design.md §2), so `Rotate:5` is exactly
the 15° that torchvision would apply. Everything runs through
`torchvision.transforms.v2.functional` on whole `[N,3,H,W]` batches.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from autoshield.core.errors import AutoshieldError

MAX_MAGNITUDE = 10
_BINS = 31  # torchvision's RandAugment default; magnitude m is bin 3m
_NEAREST = InterpolationMode.NEAREST


@dataclass(frozen=True)
class Op:
    """One operation: how its value grows with magnitude and how it is applied."""

    name: str
    apply: Callable[[torch.Tensor, float], torch.Tensor]
    value_range: Callable[[int, int], torch.Tensor] | None = None  # (height, width) -> value per bin
    signed: bool = False
    describe: Callable[[float], str] = lambda value: f"{value:.3g}"  # what a user sees applied

    @property
    def magnitude_free(self) -> bool:
        return self.value_range is None


def _linspace(start: float, stop: float) -> Callable[[int, int], torch.Tensor]:
    return lambda height, width: torch.linspace(start, stop, _BINS)


def _shear(axis: int) -> Callable[[torch.Tensor, float], torch.Tensor]:
    def apply(images: torch.Tensor, value: float) -> torch.Tensor:
        shear = [0.0, 0.0]
        shear[axis] = math.degrees(math.atan(value))
        return F.affine(
            images, angle=0.0, translate=[0, 0], scale=1.0, shear=shear, interpolation=_NEAREST, center=[0, 0]
        )

    return apply


def _translate(axis: int) -> Callable[[torch.Tensor, float], torch.Tensor]:
    def apply(images: torch.Tensor, value: float) -> torch.Tensor:
        shift = [0, 0]
        shift[axis] = int(value)
        return F.affine(images, angle=0.0, translate=shift, scale=1.0, shear=[0.0, 0.0], interpolation=_NEAREST)

    return apply


_ENHANCE = _linspace(0.0, 0.9)
_FACTOR = lambda v: f"1±{v:.2f}"  # noqa: E731 - enhance factor 1 + sign·v
_PIXELS = lambda v: f"{int(v)} px"  # noqa: E731 - torchvision truncates to whole pixels
OPS: dict[str, Op] = {
    op.name: op
    for op in (
        Op("Identity", lambda x, v: x),
        Op("ShearX", _shear(0), _linspace(0.0, 0.3), signed=True),
        Op("ShearY", _shear(1), _linspace(0.0, 0.3), signed=True),
        Op("TranslateX", _translate(0), lambda h, w: torch.linspace(0.0, 150.0 / 331.0 * w, _BINS), True, _PIXELS),
        Op("TranslateY", _translate(1), lambda h, w: torch.linspace(0.0, 150.0 / 331.0 * h, _BINS), True, _PIXELS),
        Op(
            "Rotate",
            lambda x, v: F.rotate(x, angle=v, interpolation=_NEAREST),
            _linspace(0.0, 30.0),
            True,
            lambda v: f"{v:.3g}°",
        ),
        Op("Brightness", lambda x, v: F.adjust_brightness(x, brightness_factor=1.0 + v), _ENHANCE, True, _FACTOR),
        Op("Color", lambda x, v: F.adjust_saturation(x, saturation_factor=1.0 + v), _ENHANCE, True, _FACTOR),
        Op("Contrast", lambda x, v: F.adjust_contrast(x, contrast_factor=1.0 + v), _ENHANCE, True, _FACTOR),
        Op("Sharpness", lambda x, v: F.adjust_sharpness(x, sharpness_factor=1.0 + v), _ENHANCE, True, _FACTOR),
        Op(
            "Posterize",
            lambda x, v: F.posterize(x, bits=int(v)),
            lambda h, w: (8 - (torch.arange(_BINS) / ((_BINS - 1) / 4))).round().int(),
            describe=lambda v: f"{int(v)} bits",
        ),
        Op(
            "Solarize",
            lambda x, v: F.solarize(x, threshold=255.0 * v),
            _linspace(1.0, 0.0),
            describe=lambda v: f"≥{255 * v:.0f}",
        ),
        Op("AutoContrast", lambda x, v: F.autocontrast(x)),
        Op("Equalize", lambda x, v: F.equalize(x)),
        Op("Invert", lambda x, v: F.invert(x)),
    )
}


def get_op(name: str) -> Op:
    try:
        return OPS[name]
    except KeyError:
        raise AutoshieldError(f"unknown operation {name!r}; known: {', '.join(OPS)}") from None


def check_magnitude(magnitude: object) -> int:
    if isinstance(magnitude, bool) or not isinstance(magnitude, int) or not 0 <= magnitude <= MAX_MAGNITUDE:
        raise AutoshieldError(f"magnitude must be an integer from 0 to {MAX_MAGNITUDE}, got {magnitude!r}")
    return magnitude


def op_value(name: str, magnitude: int, *, height: int = 32, width: int = 32) -> float | None:
    """The unsigned parameter torchvision's RandAugment uses at this magnitude (None: magnitude-free)."""
    op = get_op(name)
    check_magnitude(magnitude)
    if op.value_range is None:
        return None
    return float(op.value_range(height, width)[3 * magnitude])


def random_signs(count: int, *, generator: torch.Generator) -> torch.Tensor:
    """±1 per image, as RandAugment flips signed operations with probability 1/2."""
    return torch.randint(0, 2, (count,), generator=generator) * 2 - 1


def apply_op(images: torch.Tensor, name: str, magnitude: int, *, signs: torch.Tensor | None = None) -> torch.Tensor:
    """Apply one (op, magnitude) to a uint8 batch; `signs` (±1 per image) matter for signed ops only.

    Images sharing a sign go through one vectorised call, so a batch costs at most two calls.
    """
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise AutoshieldError(f"expected uint8 images [N,C,H,W], got {images.dtype} {tuple(images.shape)}")
    op = get_op(name)
    return apply_signed(
        op.apply,
        images,
        op_value(name, magnitude, height=images.shape[-2], width=images.shape[-1]),
        signed=op.signed,
        signs=signs,
    )


def apply_signed(
    function: Callable[[torch.Tensor, float], torch.Tensor],
    images: torch.Tensor,
    value: float | None,
    *,
    signed: bool,
    signs: torch.Tensor | None,
) -> torch.Tensor:
    """`function(images, ±value)` with each image's sign; images sharing a sign go through one call.

    Shared by the uint8 operations and their differentiable twins (`data.soft_ops`), so both read signs alike.
    """
    if value is None:
        return function(images, 0.0)
    if not signed or signs is None:
        return function(images, value)
    out = torch.zeros_like(images)
    for sign in (1, -1):
        members = signs == sign
        if members.any():
            out = out.index_put((members,), function(images[members], sign * value))
    return out
