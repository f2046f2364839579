"""Which cells change nothing: judged by applying them to images, not from a hand-written list.

Posterize at magnitude 1 keeps all 8 bits under torchvision's bins, and
magnitude 0 of the geometric and enhance operations is an identity too. Such a
cell is Identity under another name: it is merged with Identity so that it
neither costs a trial nor sits on a Pareto front as if it were a defence
(docs/design.md §8).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from autoshield.data.ops import apply_op
from autoshield.data.policy import IDENTITY, Cell


def leaves_unchanged(cell: Cell, images: torch.Tensor) -> bool:
    """True when `cell`, under either sign, returns every one of the uint8 `images` unchanged."""
    if cell == IDENTITY:
        return True
    for sign in (1, -1):
        signs = torch.full((len(images),), sign)
        if not torch.equal(apply_op(images, cell.op, cell.magnitude, signs=signs), images):
            return False
    return True


def identity_equivalent(cells: Sequence[Cell], images: torch.Tensor) -> list[Cell]:
    """The cells other than Identity itself that leave every image unchanged."""
    return [cell for cell in cells if cell != IDENTITY and leaves_unchanged(cell, images)]
