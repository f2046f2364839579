"""Attack many cells' problems in batches that mix them, into the attack cache, ahead of the trials (issue #35).

At `init` every cell is attacked through the same network, and a problem's start depends only on its victim, so
the problems of all a study's cells can share one optimisation: a batch as large as the hardware takes, whatever
the cell. Only the naive attack mixes (the post-hoc attacker reads its results; the adaptive one inverts through
each cell's op). Each chunk lands in the cache as it ends, under the keys a trial would compute, so a killed run
loses at most the chunk in flight, and the trials, or `autoshield table build`'s judging pass, find every
reconstruction cached and only judge it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from autoshield.core.config import Profile
from autoshield.core.errors import AutoshieldError
from autoshield.data.cifar import Split, normalize
from autoshield.data.policy import Policy, transform_split
from autoshield.evaluation.reconstruct import attack_entries, attack_keys
from autoshield.learn.models import build_model
from autoshield.privacy.cache import AttackCache
from autoshield.privacy.threat import ExactGradients


@dataclass(frozen=True)
class Pending:
    """One naive problem the cache lacks: its key, its transformed image and label, its start's seed, and where it
    serves (policy, victim) pairs: by index into `pending`'s policies and victims."""

    key: str
    image: torch.Tensor  # uint8 [3, H, W], as the client trained on it
    label: int
    seed: int
    uses: tuple[tuple[int, int], ...]


def pending(*, policies: Sequence[Policy], victims: Split, profile: Profile, cache: AttackCache) -> list[Pending]:
    """Every distinct naive problem of `policies` on `victims` that `cache` does not hold, in policy order. Two
    cells that leave an image unchanged share its problem, which is attacked once."""
    if profile.attack.leak_batch != 1:
        raise AutoshieldError("batches that mix cells need single-image gradients (attack.leak_batch = 1)")
    if profile.attack.target != "init":
        raise AutoshieldError("batches that mix cells attack the untrained network (attack.target = init)")
    model = build_model(width=profile.width, norm=profile.norm, seed=profile.seed)
    todo: dict[str, Pending] = {}
    for p, policy in enumerate(policies):
        transformed = transform_split(victims, policy, seed=profile.seed)
        keys, seeds = attack_keys(
            policy=policy, victims=victims, transformed=transformed, profile=profile, model=model, attacker="naive"
        )
        for i, (key, seed) in enumerate(zip(keys, seeds, strict=True)):
            if key in todo:
                todo[key] = dataclasses.replace(todo[key], uses=(*todo[key].uses, (p, i)))
            elif not cache.holds(key):
                todo[key] = Pending(key, transformed.images[i], int(transformed.labels[i]), seed, uses=((p, i),))
    return list(todo.values())


def prefill(
    problems: Sequence[Pending],
    *,
    profile: Profile,
    device: torch.device,
    cache: AttackCache,
    chunk: int,
    claim: Callable[[Sequence[Pending]], Sequence[Pending]] | None = None,
    on_chunk: Callable[[Sequence[Pending], float], None] | None = None,
    progress: bool = False,
) -> float:
    """Attack `problems` in chunks of `chunk` (each one `reconstruct.attack_entries` call, batched by
    `attack.batch_size`) and cache each chunk as it ends; `on_chunk(attacked, seconds)` after each. `claim` keeps
    of a chunk what this builder may attack (`study.claims`: what no other builder holds). Returns the seconds
    spent attacking."""
    if chunk < 1:
        raise AutoshieldError(f"a chunk holds at least one problem, not {chunk}")
    model = build_model(width=profile.width, norm=profile.norm, seed=profile.seed).to(device).eval()
    spent = 0.0
    for start in range(0, len(problems), chunk):
        part = problems[start : start + chunk] if claim is None else claim(problems[start : start + chunk])
        if not part:
            continue
        began = time.perf_counter()
        entries, _ = attack_entries(
            model,
            normalize(torch.stack([p.image for p in part])).to(device),
            torch.tensor([p.label for p in part], device=device),
            seeds=[p.seed for p in part],
            profile=profile,
            threat=ExactGradients(1),
            progress=progress,
        )
        for problem, entry in zip(part, entries, strict=True):
            cache.put(problem.key, entry)
        spent += time.perf_counter() - began
        if on_chunk is not None:
            on_chunk(part, spent)
    return spent
