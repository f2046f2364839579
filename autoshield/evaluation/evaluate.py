"""One policy in, its privacy (and, with training, utility) numbers out.

The victims are private *training* images drawn from the held-out pool
(`data.victims`), which the judge never trained on; the client transforms them
with the policy, leaks the gradient, the attacker inverts it from a start that
depends only on the victim, and the judge labels the reconstruction.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from autoshield.core.choices import ATTACKERS, UTILITIES, Attacker
from autoshield.core.config import Profile
from autoshield.core.errors import AutoshieldError
from autoshield.data.cifar import Cifar10, Split, denormalize, image_box, normalize, stratified_subset
from autoshield.data.inverse import invert_op
from autoshield.data.policy import IDENTITY, Policy, split_signs, transform_split
from autoshield.data.victims import victim_pool
from autoshield.evaluation.attackers import attackers_of, strongest
from autoshield.evaluation.judge import AttackResult, Reconstructions, judge_reconstructions
from autoshield.evaluation.lineup import pool_lineup
from autoshield.learn.models import build_model
from autoshield.learn.train import TrainResult, evaluate, train_classifier
from autoshield.privacy.adaptive import PolicyPreImage, hypothesis_sign
from autoshield.privacy.attack import GradientInversion, recover_labels
from autoshield.privacy.cache import AttackCache, attack_key, model_digest
from autoshield.privacy.threat import ExactGradients, ThreatModel


def victims(data: Cifar10, profile: Profile) -> Split:
    """The victims a grid or search scores: the first `images_per_label` slots of the held-out pool."""
    return victim_pool(profile).draw(data.train, start=0, count=profile.images_per_label)


def fresh_victims(data: Cifar10, profile: Profile, *, per_label: int, first_slot: int | None = None) -> Split:
    """Victims for confirmation: pool slots from `first_slot` (default: the first after the ones `victims`
    scores), never among the study's own, so the two never share an image."""
    first = profile.images_per_label if first_slot is None else first_slot
    if first < profile.images_per_label:
        raise AutoshieldError(
            f"pool slots below {profile.images_per_label} are the study's own victims; confirmation starts at or "
            f"after slot {profile.images_per_label}, not {first}"
        )
    return victim_pool(profile).draw(data.train, start=first, count=per_label)


def start_seed(victim_ids: Sequence[int], *, seed: int) -> int:
    """A problem's random start depends only on its victims and the seed, never on the cell: two cells attacked on
    the same victims then differ only by the transformation (the paired design, docs/design.md §8)."""
    return int(hashlib.sha256(f"{seed}:{list(victim_ids)}".encode()).hexdigest()[:12], 16)


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
    progress: bool = False,
) -> Reconstructions:
    """Invert the gradients of `policy(victims)` through `model` (default: the seeded untrained network, `init`).

    Apart from judging, so that attacks can be computed (and cached) before the judge exists, and one set of
    reconstructions can be judged by two judges (membership). `threat` is what the server sees (default: the
    exact gradients of `attack.leak_batch` images); only views that are functions of their inputs are cached.
    `attacker` knows the policy unless it is naive (docs/design.md §10): `posthoc` undoes each victim's op on the
    naive reconstruction, with the victim's sign; `adaptive` inverts through the op, trying both signs, and
    `sign_right` says per victim whether the sign it kept was the client's. Against Identity both are the naive
    attack, and share its cache entries.
    """
    if attacker not in ATTACKERS:
        raise AutoshieldError(f"unknown attacker {attacker!r} ({', '.join(ATTACKERS)})")
    adaptive = attacker == "adaptive" and any(cell != IDENTITY for cell in policy.cells)
    config = profile.attack
    leak = config.leak_batch
    if len(victims) == 0:
        raise AutoshieldError("no images to attack")
    if len(victims) % leak:
        raise AutoshieldError(f"{len(victims)} victims do not split into leaked batches of {leak}")
    model = (model or build_model(width=profile.width, norm=profile.norm, seed=profile.seed)).to(device).eval()
    transformed = transform_split(victims, policy, seed=profile.seed)
    digest = model_digest(model)
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("batch_size", "mode", "target")}
    problems = len(victims) // leak
    groups = [slice(p * leak, (p + 1) * leak) for p in range(problems)]
    seeds = [start_seed(victims.indices[g].tolist(), seed=profile.seed) for g in groups]

    def knows(labels: torch.Tensor) -> dict[str, object]:
        """What the adaptive attacker's result depends on beyond the naive one's: the cells it inverts through."""
        return {"attacker": "adaptive", "cells": [str(policy.cells[y]) for y in labels.tolist()]}

    keys = [
        attack_key(
            image=transformed.images[g],
            label=int(transformed.labels[g][0]),
            model=digest,
            settings={
                **settings,
                "seed": profile.seed,
                "start": seeds[p],
                **(knows(victims.labels[g]) if adaptive else {}),
            },
        )
        + ("" if leak == 1 else f"-{transformed.labels[g].tolist()}")
        for p, g in enumerate(groups)
    ]
    threat = threat or ExactGradients(leak)
    if not threat.cacheable:
        cache = None
    found = {k: v for k in keys if cache is not None and (v := cache.get(k)) is not None}
    missing = [p for p, k in enumerate(keys) if k not in found]
    inversion = GradientInversion(config, box=image_box())
    seconds = 0.0
    if missing:
        index = torch.cat([torch.arange(groups[p].start, groups[p].stop) for p in missing])
        images, labels = normalize(transformed.images[index]).to(device), transformed.labels[index].to(device)
        gradients = threat.observe(model, images, labels)
        recovered = recover_labels(model, gradients).cpu() if leak == 1 else torch.full((len(missing),), -1)
        result = inversion.reconstruct(
            model,
            gradients,
            labels,
            seeds=[seeds[p] for p in missing],
            pre_image=PolicyPreImage(policy, labels.cpu()) if adaptive else None,
            progress=progress,
        )
        seconds = result.seconds
        for j, p in enumerate(missing):
            entry = {
                "reconstruction": result.images[j * leak : (j + 1) * leak],
                "gradient_loss": result.gradient_loss[j],
                "recovered": recovered[j],
                "hypothesis": result.hypothesis[j],
                "restart": result.restart[j],
            }
            found[keys[p]] = entry
            if cache is not None:
                cache.put(keys[p], entry)
    reconstructions = denormalize(torch.cat([found[k]["reconstruction"] for k in keys]))
    failed = torch.stack([~torch.isfinite(found[k]["gradient_loss"]) for k in keys]).repeat_interleave(leak)
    failed |= ~torch.isfinite(reconstructions).flatten(1).all(1)
    recovered_label = torch.stack([found[k]["recovered"] for k in keys]).repeat_interleave(leak)
    # entries cached before the kept start was stored have none: -1, unknown
    restart = torch.stack([found[k].get("restart", torch.tensor(-1)) for k in keys]).repeat_interleave(leak)
    signs = split_signs(victims, seed=profile.seed)
    if attacker == "posthoc":
        reconstructions = policy.apply(reconstructions, victims.labels, signs=signs, using=invert_op)
    sign_right = torch.full((len(victims),), -1)
    if adaptive:  # entries cached before the sign was kept have none: -1, unknown; a failed problem guessed nothing
        kept = torch.stack([found[k].get("hypothesis", torch.tensor(-1)) for k in keys]).repeat_interleave(leak)
        guessed = torch.tensor([policy.cells[y].signed for y in victims.labels.tolist()]) & (kept >= 0) & ~failed
        sign_right = torch.where(guessed, (hypothesis_sign(kept) == signs).long(), -1)
    return Reconstructions(
        policy=policy,
        victims=victims,
        transformed=transformed,
        images=reconstructions,
        failed=failed,
        recovered=torch.where(recovered_label >= 0, (recovered_label == victims.labels).long(), -1),
        starts=inversion.starts(seeds, leak=leak)[:problems].flatten(0, 1),  # restart 0 of every problem
        seconds=seconds,
        cached=problems - len(missing),
        sign_right=sign_right,
        restart=restart,
    )


def attack_policy(
    *,
    policy: Policy,
    victims: Split,
    profile: Profile,
    reference: nn.Module,
    device: torch.device,
    model: nn.Module | None = None,
    cache: AttackCache | None = None,
    threat: ThreatModel | None = None,
    attacker: Attacker = "naive",
    lineup: Split | None = None,
    progress: bool = False,
) -> AttackResult:
    """Attack `policy(victims)` (`reconstruct_policy`) and judge the reconstructions (`judge_reconstructions`),
    ranking each victim among `lineup` when one is given."""
    found = reconstruct_policy(
        policy=policy,
        victims=victims,
        profile=profile,
        device=device,
        model=model,
        cache=cache,
        threat=threat,
        attacker=attacker,
        progress=progress,
    )
    return judge_reconstructions(found, profile=profile, reference=reference, device=device, lineup=lineup)


def attack_with(
    attackers: Sequence[Attacker],
    *,
    policy: Policy,
    victims: Split,
    profile: Profile,
    reference: nn.Module,
    device: torch.device,
    model: nn.Module | None = None,
    cache: AttackCache | None = None,
    lineup: Split | None = None,
    progress: bool = False,
) -> dict[Attacker, AttackResult]:
    """`attack_policy` by each of `attackers`, on the same victims and starts (so their verdicts pair)."""
    return {
        name: attack_policy(
            policy=policy,
            victims=victims,
            profile=profile,
            reference=reference,
            device=device,
            model=model,
            cache=cache,
            attacker=name,
            lineup=lineup,
            progress=progress,
        )
        for name in attackers
    }


def profile_splits(data: Cifar10, profile: Profile) -> tuple[Split, Split]:
    """The profile's seeded training and test subsets (utility is measured on these)."""
    return (
        stratified_subset(data.train, per_class=profile.train_per_class, seed=profile.seed),
        stratified_subset(data.test, per_class=profile.test_per_class, seed=profile.seed),
    )


def train_policy(
    *, policy: Policy, data: Cifar10, profile: Profile, device: torch.device, progress: bool = False
) -> TrainResult:
    """The profile's ResNet-18 trained on `policy` applied to the profile's training subset."""
    train, test = profile_splits(data, profile)
    return train_classifier(
        train=train,
        test=test,
        policy=policy,
        width=profile.width,
        norm=profile.norm,
        config=profile.train,
        seed=profile.seed,
        device=device,
        progress=progress,
    )


@dataclass(frozen=True)
class Evaluation:
    """Both objectives of one policy, with everything needed to explain them."""

    policy: Policy
    utility: str  # "trained": clean test accuracy; "recognizability": reference accuracy on policy(test)
    model_accuracy: float
    model_accuracy_per_label: tuple[float, ...]
    attack: AttackResult  # the objective: the strongest of the attackers run
    train_seconds: float
    attack_seconds: float
    attacker: Attacker = "naive"  # whose result `attack` is
    attacks: dict[Attacker, AttackResult] = dataclasses.field(default_factory=dict)  # every attacker run
    privacy: str = "recognition"  # what the privacy objective counts (`evaluation.attackers.privacy_figure`)

    @property
    def attack_accuracy(self) -> float:
        return self.attack.overall.attack_accuracy.mean


def evaluate_policy(
    *,
    policy: Policy,
    data: Cifar10,
    profile: Profile,
    reference: nn.Module,
    device: torch.device,
    utility: str = "trained",
    attacker: str = "naive",
    privacy: str = "recognition",
    cache: AttackCache | None = None,
    progress: bool = False,
) -> Evaluation:
    """Train on `policy(train)` (unless utility is recognisability) and attack `policy(victims)` with the
    attackers `attacker` names (`evaluation.attackers`), scoring it by the strongest on `privacy`."""
    attackers = attackers_of(attacker)
    if utility not in UTILITIES:
        raise AutoshieldError(f"unknown utility {utility!r} ({', '.join(UTILITIES)})")
    model, train_seconds, accuracy = None, 0.0, None
    if utility == "trained":
        result = train_policy(policy=policy, data=data, profile=profile, device=device, progress=progress)
        train_seconds = result.seconds + result.policy_seconds
        accuracy = (result.accuracy.overall, result.accuracy.per_label)
        model = result.model if profile.attack.target == "trained" else None
    attacks = attack_with(
        attackers,
        policy=policy,
        victims=victims(data, profile),
        profile=profile,
        reference=reference,
        device=device,
        model=model,
        cache=cache,
        lineup=pool_lineup(data.train, profile),
        progress=progress,
    )
    chosen = strongest(attacks, privacy=privacy)
    if accuracy is None:  # the poster's protocol, measured on the test subset rather than the few victims
        _, test = profile_splits(data, profile)
        seen = evaluate(
            reference,
            transform_split(test, policy, seed=profile.seed),
            batch_size=profile.reference.eval_batch_size,
            device=device,
        )
        accuracy = (seen.overall, seen.per_label)
    return Evaluation(
        policy=policy,
        utility=utility,
        model_accuracy=accuracy[0],
        model_accuracy_per_label=accuracy[1],
        attack=attacks[chosen],
        train_seconds=train_seconds,
        attack_seconds=sum(a.seconds for a in attacks.values()),
        attacker=chosen,
        attacks=attacks,
        privacy=privacy,
    )
