"""From a policy and its victims to reconstructions, before any judge looks at them.

Apart from judging, so that attacks can be computed (and cached) before the judge exists, and one set of
reconstructions can be judged by two judges (membership); apart from the attack table, which names each result by
the keys computed here (`evaluation.table`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from autoshield.core.choices import ATTACKERS, Attacker
from autoshield.core.config import Profile
from autoshield.core.errors import AutoshieldError
from autoshield.core.runtime import phase
from autoshield.data.cifar import Split, denormalize, image_box, normalize
from autoshield.data.inverse import invert_op
from autoshield.data.policy import IDENTITY, Policy, split_signs, transform_split
from autoshield.evaluation.judge import Reconstructions
from autoshield.learn.models import build_model
from autoshield.privacy.adaptive import PolicyPreImage, hypothesis_sign, warm_starts
from autoshield.privacy.attack import GradientInversion, recover_labels
from autoshield.privacy.cache import AttackCache, attack_key, model_digest
from autoshield.privacy.learned import LearnedInverse
from autoshield.privacy.threat import ExactGradients, ThreatModel


def start_seed(victim_ids: Sequence[int], *, seed: int) -> int:
    """A problem's random start depends only on its victims and the seed, never on the cell: two cells attacked on
    the same victims then differ only by the transformation (the paired design, docs/design.md §8)."""
    return int(hashlib.sha256(f"{seed}:{list(victim_ids)}".encode()).hexdigest()[:12], 16)


def inverts_through(policy: Policy, attacker: str) -> bool:
    """Whether `attacker` optimises through the policy's ops: the adaptive one, unless every cell is Identity (then
    it is the naive attack, and shares its results)."""
    return attacker == "adaptive" and any(cell != IDENTITY for cell in policy.cells)


def attack_settings(profile: Profile, *, adaptive: bool = True) -> dict[str, Any]:
    """What of a profile an attack's result depends on: the recipe and the seed, not how problems are batched
    (`batch_size`, `mode`) nor which weights are attacked (the key hashes the weights themselves); warm starts
    only where the attack is `adaptive`, so a naive result is one whatever the adaptive attacker does."""
    recipe = profile.attack.recipe()
    unused = {"batch_size", "mode", "target"} | (set() if adaptive else {"warm_starts"})
    return {**{k: v for k, v in recipe.items() if k not in unused}, "seed": profile.seed}


def settings_digest(profile: Profile) -> str:
    """The attack settings and the network attacked at `init`, hashed: what every row of an attack table computed
    under this profile shares (`study.table_file`)."""
    model = build_model(width=profile.width, norm=profile.norm, seed=profile.seed)
    settings = {**attack_settings(profile), "model": model_digest(model)}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def attack_keys(
    *,
    policy: Policy,
    victims: Split,
    transformed: Split,
    profile: Profile,
    model: nn.Module,
    attacker: str,
    inverse: LearnedInverse | None = None,
) -> tuple[list[str], list[int]]:
    """Each problem's attack cache key and start seed. At `init` a problem's reconstruction depends only on what
    the key hashes: the transformed pixels, the label, the attacked weights, the attack settings and the start
    (and, for the adaptive attacker, the cells it inverts through and the recipes of the networks its warm starts
    came from: like the attack's, a network's rounding is the machine's, not the problem's), so the key also names
    it in the attack table."""
    leak, adaptive = profile.attack.leak_batch, inverts_through(policy, attacker)
    digest = model_digest(model)
    groups = [slice(p * leak, (p + 1) * leak) for p in range(len(victims) // leak)]
    seeds = [start_seed(victims.indices[g].tolist(), seed=profile.seed) for g in groups]
    learned = inverse.recipes if inverse is not None and profile.attack.warm_starts else {}

    def knows(labels: torch.Tensor) -> dict[str, object]:
        """What the adaptive attacker's result depends on beyond the naive one's: the cells it inverts through, and
        the learned inverse's recipes where a warm start came from one (absent where none did, so that keys made
        before learned warm starts stay valid)."""
        cells = [policy.cells[y] for y in labels.tolist()]
        networks = [learned.get(cell) for cell in cells]
        return {
            "attacker": "adaptive",
            "cells": [str(cell) for cell in cells],
            **({"learned": networks} if any(networks) else {}),
        }

    keys = [
        attack_key(
            image=transformed.images[g],
            label=int(transformed.labels[g][0]),
            model=digest,
            settings={
                **attack_settings(profile, adaptive=adaptive),
                "start": seeds[p],
                **(knows(victims.labels[g]) if adaptive else {}),
            },
        )
        + ("" if leak == 1 else f"-{transformed.labels[g].tolist()}")
        for p, g in enumerate(groups)
    ]
    return keys, seeds


def attack_entries(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    seeds: Sequence[int],
    profile: Profile,
    threat: ThreatModel,
    pre_image: PolicyPreImage | None = None,
    warm: torch.Tensor | None = None,
    progress: bool = False,
) -> tuple[list[dict[str, torch.Tensor]], float]:
    """Attack the problems behind `images` (normalised, `attack.leak_batch` per problem, on the model's device)
    from the starts `seeds`: what the attack cache keeps of each problem, and the seconds the attack took. A trial
    (`reconstruct_policy`) and `table build`'s mixed chunks (`evaluation.prefill`) attack through this one path, so
    a cached entry is the same whoever computed it."""
    leak = profile.attack.leak_batch
    gradients = threat.observe(model, images, labels)
    recovered = recover_labels(model, gradients).cpu() if leak == 1 else torch.full((len(seeds),), -1)
    inversion = GradientInversion(profile.attack, box=image_box())
    result = inversion.reconstruct(
        model, gradients, labels, seeds=seeds, pre_image=pre_image, warm=warm, progress=progress
    )
    entries = [
        {
            "reconstruction": result.images[p * leak : (p + 1) * leak],
            "gradient_loss": result.gradient_loss[p],
            "recovered": recovered[p],
            "hypothesis": result.hypothesis[p],
            "restart": result.restart[p],
            "seconds": torch.tensor(result.seconds / len(seeds)),  # its share of the batch's wall time
        }
        for p in range(len(seeds))
    ]
    return entries, result.seconds


def reconstruct_policy(
    *,
    policy: Policy,
    victims: Split,
    profile: Profile,
    device: torch.device,
    model: nn.Module | None = None,
    cache: AttackCache | None = None,
    threat: ThreatModel | None = None,
    attacker: Attacker = "naive",
    inverse: LearnedInverse | None = None,
    progress: bool = False,
) -> Reconstructions:
    """Invert the gradients of `policy(victims)` through `model` (default: the seeded untrained network, `init`).

    Apart from judging, so that attacks can be computed (and cached) before the judge exists, and one set of
    reconstructions can be judged by two judges (membership). `threat` is what the server sees (default: the
    exact gradients of `attack.leak_batch` images); only views that are functions of their inputs are cached.
    `attacker` knows the policy unless it is naive (docs/design.md §10): `posthoc` undoes each victim's op on the
    naive reconstruction, with the victim's sign; `learned` does so with `inverse`'s networks where an op has no
    exact inverse (`privacy.learned`); `adaptive` inverts through the op, trying both signs, and `sign_right` says
    per victim whether the sign it kept was the client's. Against Identity all three are the naive attack, and
    share its cache entries.
    """
    if attacker not in ATTACKERS:
        raise AutoshieldError(f"unknown attacker {attacker!r} ({', '.join(ATTACKERS)})")
    if attacker == "learned" and inverse is None:
        raise AutoshieldError("the learned attacker needs its networks (privacy.learned.learned_inverse)")
    adaptive = inverts_through(policy, attacker)
    config = profile.attack
    leak = config.leak_batch
    if len(victims) == 0:
        raise AutoshieldError("no images to attack")
    if len(victims) % leak:
        raise AutoshieldError(f"{len(victims)} victims do not split into leaked batches of {leak}")
    model = (model or build_model(width=profile.width, norm=profile.norm, seed=profile.seed)).to(device).eval()
    transformed = transform_split(victims, policy, seed=profile.seed)
    keys, seeds = attack_keys(
        policy=policy,
        victims=victims,
        transformed=transformed,
        profile=profile,
        model=model,
        attacker=attacker,
        inverse=inverse,
    )
    problems = len(keys)
    groups = [slice(p * leak, (p + 1) * leak) for p in range(problems)]
    threat = threat or ExactGradients(leak)
    if not threat.cacheable:
        cache = None
    found = {k: v for k in keys if cache is not None and (v := cache.get(k)) is not None}
    missing = [p for p, k in enumerate(keys) if k not in found]
    seconds = 0.0
    # a cached attack keeps each batch as it ends (the attack solves `batch_size` problems at a time anyway, so the
    # batches are the same): an interrupted run resumes from its last finished batch, not from nothing
    step = len(missing) if cache is None else config.batch_size
    batches = [missing[start : start + step] for start in range(0, len(missing), step)]
    for number, batch in enumerate(batches, 1):
        if len(batches) > 1:
            phase(f"attack batch {number}/{len(batches)} ({len(batch)} problems)")
        index = torch.cat([torch.arange(groups[p].start, groups[p].stop) for p in batch])
        images, labels = normalize(transformed.images[index]).to(device), transformed.labels[index].to(device)
        pre_image = PolicyPreImage(policy, labels.cpu()) if adaptive else None
        warm = None
        if pre_image is not None and config.warm_starts:  # the naive attack first (cached, or computed now)
            part = victims.take(index)
            common = dict(policy=policy, victims=part, profile=profile, device=device, model=model, cache=cache)
            naive = reconstruct_policy(**common, threat=threat, attacker="naive").images
            undo = inverse or invert_op  # the learned inverse's networks where the study built them
            warm = warm_starts(naive, policy=policy, labels=part.labels, hypotheses=pre_image.hypotheses, undo=undo)
        entries, spent = attack_entries(
            model,
            images,
            labels,
            seeds=[seeds[p] for p in batch],
            profile=profile,
            threat=threat,
            pre_image=pre_image,
            warm=warm,
            progress=progress,
        )
        seconds += spent
        for p, entry in zip(batch, entries, strict=True):
            found[keys[p]] = entry
            if cache is not None:
                cache.put(keys[p], entry)
    reconstructions = denormalize(torch.cat([found[k]["reconstruction"] for k in keys]))
    failed = torch.stack([~torch.isfinite(found[k]["gradient_loss"]) for k in keys]).repeat_interleave(leak)
    failed |= ~torch.isfinite(reconstructions).flatten(1).all(1)
    recovered_label = torch.stack([found[k]["recovered"] for k in keys]).repeat_interleave(leak)
    # entries cached before the kept start was stored have none: -1, unknown
    restart = torch.stack([found[k].get("restart", torch.tensor(-1)) for k in keys]).repeat_interleave(leak)
    # what each victim's attack cost when it was computed, here or by another worker (0: cached before costs were)
    costs = torch.stack([found[k].get("seconds", torch.tensor(0.0)) for k in keys]).repeat_interleave(leak) / leak
    signs = split_signs(victims, seed=profile.seed)
    if attacker in ("posthoc", "learned"):
        after = (inverse or invert_op) if attacker == "learned" else invert_op
        reconstructions = policy.apply(reconstructions, victims.labels, signs=signs, using=after)
    sign_right = torch.full((len(victims),), -1)
    if adaptive:  # entries cached before the sign was kept have none: -1, unknown; a failed problem guessed nothing
        kept = torch.stack([found[k].get("hypothesis", torch.tensor(-1)) for k in keys]).repeat_interleave(leak)
        guessed = torch.tensor([policy.cells[y].signed for y in victims.labels.tolist()]) & (kept >= 0) & ~failed
        sign_right = torch.where(guessed, (hypothesis_sign(kept) == signs).long(), -1)
    starts = GradientInversion(config, box=image_box()).starts(seeds, leak=leak)
    return Reconstructions(
        policy=policy,
        victims=victims,
        transformed=transformed,
        images=reconstructions,
        failed=failed,
        recovered=torch.where(recovered_label >= 0, (recovered_label == victims.labels).long(), -1),
        starts=starts[:problems].flatten(0, 1),  # restart 0 of every problem
        seconds=seconds,
        cached=problems - len(missing),
        sign_right=sign_right,
        restart=restart,
        costs=costs,
    )
