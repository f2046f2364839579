"""One policy in, its privacy (and, with training, utility) numbers out.

The victims are `images_per_label` private *training* images per label; the
client transforms them with the policy, leaks the gradient, the attacker
inverts it and the reference classifier judges the reconstruction.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from autoshield.core.choices import UTILITIES
from autoshield.core.config import Profile
from autoshield.core.errors import AutoshieldError
from autoshield.data.cifar import CLASSES, Cifar10, Split, denormalize, image_box, normalize, stratified_subset
from autoshield.data.policy import Policy, transform_split
from autoshield.learn.models import build_model
from autoshield.learn.train import TrainResult, evaluate, predict, train_classifier
from autoshield.privacy.attack import GradientInversion, recover_labels
from autoshield.privacy.cache import AttackCache, attack_key, model_digest
from autoshield.privacy.metrics import Estimate, mean_interval, proportion, psnr, ssim
from autoshield.privacy.threat import ExactGradients, ThreatModel


@dataclass(frozen=True)
class PrivacyStats:
    attack_accuracy: Estimate  # reference classifier recognises the reconstruction
    psnr_original: Estimate  # reconstruction vs the private image
    psnr_transformed: Estimate  # reconstruction vs what was actually trained on
    ssim_original: Estimate
    ssim_transformed: Estimate
    recognisability: Estimate  # reference classifier recognises the transformed image
    label_recovery: Estimate  # iDLG recovers the label (single-image gradients only)
    failed: int  # reconstructions that turned non-finite: excluded above, never counted


@dataclass(frozen=True)
class AttackResult:
    overall: PrivacyStats
    per_label: tuple[PrivacyStats, ...]
    originals: torch.Tensor  # uint8
    transformed: torch.Tensor  # uint8
    reconstructions: torch.Tensor  # float in [0, 1]
    labels: torch.Tensor
    seconds: float  # time spent attacking now (0 when every result came from the cache)
    cached: int  # problems whose result came from the cache


def victims(data: Cifar10, profile: Profile) -> Split:
    """The private images attacked: a fixed, seeded handful of training images per label."""
    return stratified_subset(data.train, per_class=profile.images_per_label, seed=profile.seed + 1)


def _stats(
    recognised: torch.Tensor,
    recognisable: torch.Tensor,
    recovered: torch.Tensor,
    psnrs: tuple[torch.Tensor, torch.Tensor],
    ssims: tuple[torch.Tensor, torch.Tensor],
    ok: torch.Tensor,
) -> PrivacyStats:
    return PrivacyStats(
        attack_accuracy=proportion(recognised[ok]),
        psnr_original=mean_interval(psnrs[0][ok]),
        psnr_transformed=mean_interval(psnrs[1][ok]),
        ssim_original=mean_interval(ssims[0][ok]),
        ssim_transformed=mean_interval(ssims[1][ok]),
        recognisability=proportion(recognisable),
        label_recovery=proportion(recovered[recovered >= 0] == 1),  # -1: not recoverable (leak batch > 1)
        failed=int((~ok).sum()),
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
    progress: bool = False,
) -> AttackResult:
    """Attack `policy(victims)` through `model` (default: the seeded untrained network, `init`).

    `threat` is what the server sees (default: the exact gradients of `attack.leak_batch` images);
    only views that are functions of their inputs are cached.
    """
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
    settings["seed"] = profile.seed
    problems = len(victims) // leak
    groups = [slice(p * leak, (p + 1) * leak) for p in range(problems)]
    keys = [
        attack_key(image=transformed.images[g], label=int(transformed.labels[g][0]), model=digest, settings=settings)
        + ("" if leak == 1 else f"-{transformed.labels[g].tolist()}")
        for g in groups
    ]
    threat = threat or ExactGradients(leak)
    if not threat.cacheable:
        cache = None
    found = {k: v for k in keys if cache is not None and (v := cache.get(k)) is not None}
    missing = [p for p, k in enumerate(keys) if k not in found]
    seconds = 0.0
    if missing:
        index = torch.cat([torch.arange(groups[p].start, groups[p].stop) for p in missing])
        images, labels = normalize(transformed.images[index]).to(device), transformed.labels[index].to(device)
        gradients = threat.observe(model, images, labels)
        recovered = recover_labels(model, gradients).cpu() if leak == 1 else torch.full((len(missing),), -1)
        result = GradientInversion(config, box=image_box()).reconstruct(
            model, gradients, labels, seeds=[int(keys[p][:12], 16) for p in missing], progress=progress
        )
        seconds = result.seconds
        for j, p in enumerate(missing):
            entry = {
                "reconstruction": result.images[j * leak : (j + 1) * leak],
                "gradient_loss": result.gradient_loss[j],
                "recovered": recovered[j],
            }
            found[keys[p]] = entry
            if cache is not None:
                cache.put(keys[p], entry)
    reconstructions = denormalize(torch.cat([found[k]["reconstruction"] for k in keys]))
    failed = torch.stack([~torch.isfinite(found[k]["gradient_loss"]) for k in keys]).repeat_interleave(leak)
    recovered_label = torch.stack([found[k]["recovered"] for k in keys]).repeat_interleave(leak)
    labels = victims.labels
    recovered = torch.where(recovered_label >= 0, (recovered_label == labels).long(), -1)
    batch = profile.reference.eval_batch_size
    as_picture = reconstructions.mul(255).round().to(torch.uint8)  # what the attacker would look at
    recognised = predict(reference, as_picture, batch_size=batch, device=device) == labels
    recognisable = predict(reference, transformed.images, batch_size=batch, device=device) == labels
    originals, seen = victims.images.float() / 255, transformed.images.float() / 255
    psnrs = (psnr(reconstructions, originals), psnr(reconstructions, seen))
    ssims = (ssim(reconstructions, originals), ssim(reconstructions, seen))
    ok = ~failed

    def stats(mask: torch.Tensor) -> PrivacyStats:
        return _stats(
            recognised[mask],
            recognisable[mask],
            recovered[mask],
            (psnrs[0][mask], psnrs[1][mask]),
            (ssims[0][mask], ssims[1][mask]),
            ok[mask],
        )

    return AttackResult(
        overall=stats(torch.ones_like(labels, dtype=torch.bool)),
        per_label=tuple(stats(labels == label) for label in range(len(CLASSES))),
        originals=victims.images,
        transformed=transformed.images,
        reconstructions=reconstructions,
        labels=labels,
        seconds=seconds,
        cached=problems - len(missing),
    )


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
    attack: AttackResult
    train_seconds: float
    attack_seconds: float

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
    cache: AttackCache | None = None,
    progress: bool = False,
) -> Evaluation:
    """Train on `policy(train)` (unless utility is recognisability) and attack `policy(victims)`."""
    if utility not in UTILITIES:
        raise AutoshieldError(f"unknown utility {utility!r} ({', '.join(UTILITIES)})")
    model, train_seconds, accuracy = None, 0.0, None
    if utility == "trained":
        result = train_policy(policy=policy, data=data, profile=profile, device=device, progress=progress)
        train_seconds = result.seconds + result.policy_seconds
        accuracy = (result.accuracy.overall, result.accuracy.per_label)
        model = result.model if profile.attack.target == "trained" else None
    attacked = attack_policy(
        policy=policy,
        victims=victims(data, profile),
        profile=profile,
        reference=reference,
        device=device,
        model=model,
        cache=cache,
        progress=progress,
    )
    if accuracy is None:  # the poster's protocol, measured on the test subset rather than the few victims
        _, test = profile_splits(data, profile)
        seen = evaluate(
            reference,
            transform_split(test, policy, seed=profile.seed),
            batch_size=profile.reference.eval_batch_size,
            device=device,
        )
        accuracy = (seen.overall, seen.per_label)
    return Evaluation(policy, utility, accuracy[0], accuracy[1], attacked, train_seconds, attacked.seconds)
