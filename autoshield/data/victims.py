"""The held-out victim pool: private training images the judge never sees.

A seeded pool of `per_label` training images per label is reserved before
anything else is drawn. The reference classifier trains on the rest of the
training split, so it cannot recognise a poor reconstruction because it
memorised the original (docs/design.md §8). Within the pool, images keep their
seeded draw order, so slots are fixed: slots `[0, k)` are the victims a grid or
search scores, and confirmation draws from slots after them, which makes the
two sets disjoint by construction. The last `k` slots are calibration victims
(`calibration_slots`): a calibrated attacker chooses its attacker per label on
them, so neither scoring nor confirmation may use them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from autoshield.core.config import Profile
from autoshield.core.errors import AutoshieldError
from autoshield.data.cifar import CLASSES, Split


@dataclass(frozen=True)
class Victims(Split):
    """Victims drawn from the pool, with each one's slot, so that a per-victim record says which slot it scored."""

    slots: torch.Tensor  # int64 [N]: the pool slot of each image

    def take(self, index: torch.Tensor | Sequence[int]) -> Victims:
        """As `Split.take`, keeping each victim's slot: a subset's rows still say which slot they scored."""
        index = torch.as_tensor(index)
        return Victims(self.images[index], self.labels[index], self.indices[index], slots=self.slots[index])

    def of_labels(self, labels: Sequence[int]) -> Victims:
        """The victims of `labels` alone, in their order: one label's question (many of its victims) is then asked
        without attacking every other label's."""
        return self.take(torch.isin(self.labels, torch.as_tensor(list(labels), dtype=torch.int64)))


@dataclass(frozen=True)
class VictimPool:
    """`per_label` images per label in seeded draw order; `slots[label]` holds their training indices."""

    per_label: int
    seed: int

    def slots(self, train: Split) -> torch.Tensor:
        """`[labels, per_label]` positions in `train` of the pool, in draw order."""
        generator = torch.Generator().manual_seed(self.seed)
        rows = []
        for label in range(len(CLASSES)):
            members = torch.nonzero(train.labels == label).flatten()
            if len(members) < self.per_label:
                raise AutoshieldError(
                    f"the victim pool wants {self.per_label} images of {CLASSES[label]!r}; the data has {len(members)}"
                )
            rows.append(members[torch.randperm(len(members), generator=generator)[: self.per_label]])
        return torch.stack(rows)

    def draw(self, train: Split, *, start: int, count: int) -> Victims:
        """Slots `[start, start + count)` of every label, in label order (within a label by training index)."""
        if count < 1:
            raise AutoshieldError(f"victims per label must be >= 1, got {count}")
        if start < 0 or start + count > self.per_label:
            free = self.per_label - start
            raise AutoshieldError(
                f"{count} victims per label from slot {start} do not fit a pool of {self.per_label} per label "
                f"({max(free, 0)} left); raise victim_pool_per_label"
            )
        return self.draw_slots(train, range(start, start + count))

    def draw_slots(self, train: Split, slots: Sequence[int]) -> Victims:
        """The given slots of every label (each within the pool), in label order, within a label by training
        index: e.g. a calibrated study's scored and calibration slots, attacked in one table build."""
        chosen = torch.as_tensor(list(slots))
        keep, order = self.slots(train)[:, chosen].sort(dim=1)
        keep = keep.flatten()
        return Victims(train.images[keep], train.labels[keep], train.indices[keep], slots=chosen[order].flatten())

    def outside(self, train: Split) -> Split:
        """The training split without the pool: what the judge may learn from."""
        keep = torch.ones(len(train), dtype=torch.bool)
        keep[self.slots(train).flatten()] = False
        return train.take(keep)


def victim_pool(profile: Profile) -> VictimPool:
    """The profile's pool; seeded with `seed + 1` so its first slot per label is the victim earlier versions used."""
    return VictimPool(per_label=profile.victim_pool_per_label, seed=profile.seed + 1)


def calibration_slots(profile: Profile) -> range:
    """The pool's last `images_per_label` slots: as many victims per label as a trial scores, so the attacker's
    choice is as well informed as its score, and as far from slot 0 as the pool allows, so that confirmations
    (which count up from the scored slots) reach them last."""
    pool = profile.victim_pool_per_label
    return range(pool - profile.images_per_label, pool)


def require_calibration(profile: Profile) -> range:
    """`calibration_slots`, refused in one line when they would overlap the scored ones."""
    reserved = calibration_slots(profile)
    if reserved.start < profile.images_per_label:
        raise AutoshieldError(
            f"a calibrated attacker needs {profile.images_per_label} calibration victims per label beside the "
            f"{profile.images_per_label} scored ones; the pool holds {profile.victim_pool_per_label} per label "
            "(raise victim_pool_per_label)"
        )
    return reserved
