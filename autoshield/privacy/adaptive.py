"""The policy-aware attacker's model of the client (Kerckhoffs: a published policy is known to the attacker).

It knows each image's cell (the policy's cell for the label, which iDLG recovers) but not the per-image sign of a
signed op, a secret coin of the client: each sign is a hypothesis, solved as extra restarts, and the one whose
gradient matches best is kept, which uses no private information (issue #15, docs/design.md §10).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from autoshield.data.cifar import denormalize, standardize
from autoshield.data.inverse import invert_op
from autoshield.data.policy import Policy
from autoshield.data.soft_ops import soft_apply


def hypothesis_sign(hypothesis: torch.Tensor) -> torch.Tensor:
    """The client's sign that hypothesis h assumes: +1 for h = 0, -1 for h = 1."""
    return 1 - 2 * hypothesis


@dataclass(frozen=True)
class PolicyPreImage:
    """`privacy.attack.PreImage` for a policy: images -> `policy(images)` with the differentiable ops.

    `labels` are those of the attacked images, in order; `index` in a call says which attacked image each input
    is. With several images behind one gradient every image shares the hypothesis' sign; mixed signs are not
    tried (2^leak hypotheses)."""

    policy: Policy
    labels: torch.Tensor

    @property
    def hypotheses(self) -> int:
        present = {self.policy.cells[label] for label in self.labels.unique().tolist()}
        return 2 if any(cell.signed for cell in present) else 1

    def __call__(self, images: torch.Tensor, *, index: torch.Tensor, hypothesis: int) -> torch.Tensor:
        labels = self.labels.to(images.device)[index]
        signs = hypothesis_sign(torch.full_like(labels, hypothesis))
        return standardize(self.policy.apply(denormalize(images), labels, signs=signs, using=soft_apply))


def warm_starts(
    naive: torch.Tensor,
    *,
    policy: Policy,
    labels: torch.Tensor,
    hypotheses: int,
    undo: Callable[..., torch.Tensor] = invert_op,
) -> torch.Tensor:
    """Where the adaptive attacker may start besides noise (issue #36): the naive reconstruction (pixels in
    [0, 1], `[N,3,H,W]`), an estimate of what the client trained on, and its inverse under each sign hypothesis,
    the post-hoc estimate without the client's secret sign (`undo`: the post-hoc inverse, or the learned one of
    `privacy.learned`). Normalised, `[2, hypotheses, N, 3, H, W]`. Built from the naive reconstruction, the public
    policy and public images alone: the attacker never sees an original image. A failed reconstruction (not
    finite) starts from the mean image instead."""
    naive = torch.where(torch.isfinite(naive), naive, 0.5)
    inverse = [
        policy.apply(naive, labels, signs=hypothesis_sign(torch.full_like(labels, h)), using=undo)
        for h in range(hypotheses)
    ]
    return standardize(torch.stack([naive.expand(hypotheses, *naive.shape), torch.stack(inverse)]))
