"""The arithmetic the attack's network passes run in: TF32 on cards, bf16 autocast where asked (issue #35).

Apart from the optimisation, since a precision is a setting a non-inferiority run judges, not part of the attack.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def convolution_precision() -> Iterator[None]:
    """Matrix products at the precision cuDNN already gives the attack's convolutions (TF32 on CUDA by default):
    the unfold path's weight gradients are matrix products, which PyTorch would otherwise keep in full fp32 at a
    fraction of the card's rate. No effect on the CPU."""
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


@contextmanager
def attack_precision(device: torch.device, precision: str) -> Iterator[None]:
    """bf16 autocast of the attack's network passes when asked (`AttackConfig.precision`); the images, Adam and the
    image box stay in fp32, so only the forward, backward and per-problem gradient products are rounded."""
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        yield
