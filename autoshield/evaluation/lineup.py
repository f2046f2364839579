"""The line-up a reconstruction is identified among, and each victim's rank in it (docs/design.md §8).

The candidates are the whole held-out pool of every label: images the judge never saw, among them every victim
a study or a confirmation attacks. The policy is public, so the attacker compares a reconstruction with each
candidate as it is and as the victim's cell would have transformed it (both signs of a signed op), and keeps
the best match (`privacy.identify`).
"""

from __future__ import annotations

import torch

from autoshield.core.config import Profile
from autoshield.core.errors import AutoshieldError
from autoshield.data.cifar import Split
from autoshield.data.ops import apply_op
from autoshield.data.policy import IDENTITY, Cell, Policy
from autoshield.data.victims import victim_pool
from autoshield.privacy.identify import rank_of, similarity_to_lineup


def pool_lineup(train: Split, profile: Profile) -> Split:
    """The default line-up: every slot of the profile's held-out pool, all labels."""
    return victim_pool(profile).draw(train, start=0, count=profile.victim_pool_per_label)


def views(images: torch.Tensor, cell: Cell) -> torch.Tensor:
    """`[V, M, 3, H, W]` float in [0, 1]: uint8 `images` as they are and under `cell` with each sign it has."""
    seen = [images]
    if cell != IDENTITY:
        for sign in (1, -1) if cell.signed else (1,):
            seen.append(apply_op(images, cell.op, cell.magnitude, signs=torch.full((len(images),), sign)))
    return torch.stack(seen).float() / 255


def lineup_ranks(
    *, reconstructions: torch.Tensor, victims: Split, failed: torch.Tensor, policy: Policy, lineup: Split
) -> torch.Tensor:
    """Each victim's rank among `lineup` (1 = singled out), from float reconstructions in [0, 1]. A failed
    reconstruction gives the attacker nothing: it ranks last."""
    position = {index: p for p, index in enumerate(lineup.indices.tolist())}
    outside = [index for index in victims.indices.tolist() if index not in position]
    if outside:
        raise AutoshieldError(f"{len(outside)} victims are not in the identification line-up (e.g. #{outside[0]})")
    ranks = torch.full((len(victims),), len(lineup), dtype=torch.long)
    cells = [policy.cells[label] for label in victims.labels.tolist()]
    for cell in sorted(set(cells)):  # victims sharing a cell share the views: built once per cell
        members = [i for i, c in enumerate(cells) if c == cell and not failed[i]]
        if not members:
            continue
        scores = similarity_to_lineup(reconstructions[members], views(lineup.images, cell))
        for row, i in enumerate(members):
            ranks[i] = rank_of(scores[row], position[int(victims.indices[i])])
    return ranks
