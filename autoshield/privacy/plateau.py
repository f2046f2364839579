"""When a restart of the attack has stopped improving (issue #35's early stop).

Why a module of its own: the rule is what the non-inferiority run judges (benchmarks/RESULTS.md), so it is stated in
one place, apart from the optimisation that consults it.
"""

from __future__ import annotations

import math

import torch


class Plateau:
    """Which stack entries have stopped improving: an entry whose gradient loss has not fallen below
    (1 - tolerance) x its best for `patience` iterations is done (relative, as `ReduceLROnPlateau`'s rel mode)."""

    def __init__(self, entries: int, *, patience: int, tolerance: float, device: torch.device) -> None:
        self.patience, self.tolerance = patience, tolerance
        self.best = torch.full((entries,), math.inf, device=device)
        self.since = torch.zeros(entries, dtype=torch.long, device=device)
        self.running = torch.ones(entries, dtype=torch.bool, device=device)
        self.steps = torch.zeros(entries, dtype=torch.long, device=device)  # iterations each entry has run

    def update(self, iteration: int, active: torch.Tensor, loss: torch.Tensor) -> bool:
        """Record the losses of the `active` entries at `iteration`; True when some entry stopped just now."""
        loss = loss.float()
        improved = (loss < self.best[active] * (1 - self.tolerance)) | self.best[active].isinf()
        self.steps[active] = iteration + 1
        self.best[active] = torch.where(improved, loss, self.best[active])
        self.since[active] = torch.where(improved, iteration, self.since[active])
        done = self.running[active] & (iteration - self.since[active] >= self.patience)
        self.running[active[done]] = False
        return bool(done.any())
