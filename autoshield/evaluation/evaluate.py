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

from autoshield.core.choices import UTILITIES
from autoshield.core.config import Profile
from autoshield.core.errors import AutoshieldError
from autoshield.data.cifar import CLASSES, Cifar10, Split, denormalize, image_box, normalize, stratified_subset
from autoshield.data.policy import Policy, transform_split
from autoshield.data.victims import victim_pool
from autoshield.learn.models import build_model
from autoshield.learn.train import TrainResult, evaluate, predict, train_classifier
from autoshield.privacy.attack import GradientInversion, recover_labels
from autoshield.privacy.cache import AttackCache, attack_key, model_digest
from autoshield.privacy.metrics import Estimate, mean_interval, proportion, psnr, ssim
from autoshield.privacy.paired import Outcomes
from autoshield.privacy.threat import ExactGradients, ThreatModel


@dataclass(frozen=True)
class PrivacyStats:
    attack_accuracy: Estimate  # the judge recognises the reconstruction; a failed reconstruction counts as not
    chance_floor: Estimate  # the judge gives an information-free image (the attack's start) the victim's label
    psnr_original: Estimate  # reconstruction vs the private image (finite reconstructions only)
    psnr_transformed: Estimate  # reconstruction vs what was actually trained on
    ssim_original: Estimate
    ssim_transformed: Estimate
    recognisability: Estimate  # the judge recognises the transformed image
    label_recovery: Estimate  # iDLG recovers the label (single-image gradients only)
    failed: int  # reconstructions that turned non-finite: counted as unrecognised in attack_accuracy
    unrecognised_as: tuple[int, ...]  # per class: how often the judge gave an unrecognised reconstruction that label


@dataclass(frozen=True)
class AttackResult:
    overall: PrivacyStats
    per_label: tuple[PrivacyStats, ...]
    outcomes: Outcomes  # per victim, for paired tests against another cell on the same victims
    originals: torch.Tensor  # uint8
    transformed: torch.Tensor  # uint8
    reconstructions: torch.Tensor  # float in [0, 1]
    labels: torch.Tensor
    seconds: float  # time spent attacking now (0 when every result came from the cache)
    cached: int  # problems whose result came from the cache


def victims(data: Cifar10, profile: Profile) -> Split:
    """The victims a grid or search scores: the first `images_per_label` slots of the held-out pool."""
    return victim_pool(profile).draw(data.train, start=0, count=profile.images_per_label)


def fresh_victims(data: Cifar10, profile: Profile, *, per_label: int) -> Split:
    """Victims for confirmation: pool slots after the ones `victims` scores, so the two never share an image."""
    return victim_pool(profile).draw(data.train, start=profile.images_per_label, count=per_label)


def start_seed(victim_ids: Sequence[int], *, seed: int) -> int:
    """A problem's random start depends only on its victims and the seed, never on the cell: two cells attacked on
    the same victims then differ only by the transformation (the paired design, docs/design.md §8)."""
    return int(hashlib.sha256(f"{seed}:{list(victim_ids)}".encode()).hexdigest()[:12], 16)


def _stats(outcomes: Outcomes, recovered: torch.Tensor, positions: list[int]) -> PrivacyStats:
    def column(values: tuple) -> torch.Tensor:
        return torch.tensor([values[i] for i in positions], dtype=torch.float64)

    ok = column(outcomes.failed) == 0
    recognised = column(outcomes.recognised)
    predicted = column(outcomes.predicted).long()
    missed = predicted[(recognised == 0) & ok]
    return PrivacyStats(
        attack_accuracy=proportion(recognised),
        chance_floor=proportion(column(outcomes.floor)),
        psnr_original=mean_interval(column(outcomes.psnr_original)[ok]),
        psnr_transformed=mean_interval(column(outcomes.psnr_transformed)[ok]),
        ssim_original=mean_interval(column(outcomes.ssim_original)[ok]),
        ssim_transformed=mean_interval(column(outcomes.ssim_transformed)[ok]),
        recognisability=proportion(column(outcomes.recognisable)),
        label_recovery=proportion(recovered[positions][recovered[positions] >= 0] == 1),  # -1: leak batch > 1
        failed=int((~ok).sum()),
        unrecognised_as=tuple(torch.bincount(missed, minlength=len(CLASSES)).tolist()),
    )


def _judge(reference: nn.Module, pictures: torch.Tensor, profile: Profile, device: torch.device) -> torch.Tensor:
    """The reference classifier's labels for uint8 pictures."""
    return predict(reference, pictures, batch_size=profile.reference.eval_batch_size, device=device)


def _picture(images: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1] quantised to uint8, as an attacker would look at them."""
    return images.mul(255).round().to(torch.uint8)


@dataclass(frozen=True)
class Reconstructions:
    """What the attacker recovered from `policy(victims)`, before any judge looked at it."""

    victims: Split  # the private images
    transformed: Split  # what the client trained on
    images: torch.Tensor  # float in [0, 1], one per victim
    failed: torch.Tensor  # bool per victim: the optimisation turned non-finite
    recovered: torch.Tensor  # per victim: 1 iDLG recovered the label, 0 it did not, -1 leak batch > 1
    starts: torch.Tensor  # normalised restart-0 start per victim: information-free, what the floor judges
    seconds: float  # time spent attacking now (0 when every result came from the cache)
    cached: int  # problems whose result came from the cache


def reconstruct_policy(
    *,
    policy: Policy,
    victims: Split,
    profile: Profile,
    device: torch.device,
    model: nn.Module | None = None,
    cache: AttackCache | None = None,
    threat: ThreatModel | None = None,
    progress: bool = False,
) -> Reconstructions:
    """Invert the gradients of `policy(victims)` through `model` (default: the seeded untrained network, `init`).

    Apart from judging, so that attacks can be computed (and cached) before the judge exists, and one set of
    reconstructions can be judged by two judges (membership). `threat` is what the server sees (default: the
    exact gradients of `attack.leak_batch` images); only views that are functions of their inputs are cached.
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
    problems = len(victims) // leak
    groups = [slice(p * leak, (p + 1) * leak) for p in range(problems)]
    seeds = [start_seed(victims.indices[g].tolist(), seed=profile.seed) for g in groups]
    keys = [
        attack_key(
            image=transformed.images[g],
            label=int(transformed.labels[g][0]),
            model=digest,
            settings={**settings, "seed": profile.seed, "start": seeds[p]},
        )
        + ("" if leak == 1 else f"-{transformed.labels[g].tolist()}")
        for p, g in enumerate(groups)
    ]
    threat = threat or ExactGradients(leak)
    if not threat.cacheable:
        cache = None
    found = {k: v for k in keys if cache is not None and (v := cache.get(k)) is not None}
    missing = [p for p, k in enumerate(keys) if k not in found]
    attacker = GradientInversion(config, box=image_box())
    seconds = 0.0
    if missing:
        index = torch.cat([torch.arange(groups[p].start, groups[p].stop) for p in missing])
        images, labels = normalize(transformed.images[index]).to(device), transformed.labels[index].to(device)
        gradients = threat.observe(model, images, labels)
        recovered = recover_labels(model, gradients).cpu() if leak == 1 else torch.full((len(missing),), -1)
        result = attacker.reconstruct(model, gradients, labels, seeds=[seeds[p] for p in missing], progress=progress)
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
    failed |= ~torch.isfinite(reconstructions).flatten(1).all(1)
    recovered_label = torch.stack([found[k]["recovered"] for k in keys]).repeat_interleave(leak)
    return Reconstructions(
        victims=victims,
        transformed=transformed,
        images=reconstructions,
        failed=failed,
        recovered=torch.where(recovered_label >= 0, (recovered_label == victims.labels).long(), -1),
        starts=attacker.starts(seeds, leak=leak)[:problems].flatten(0, 1),  # restart 0 of every problem
        seconds=seconds,
        cached=problems - len(missing),
    )


def judge_reconstructions(
    found: Reconstructions, *, profile: Profile, reference: nn.Module, device: torch.device
) -> AttackResult:
    """The judge's verdict on each reconstruction, its start (the chance floor) and the transformed image."""
    victims, transformed, reconstructions, failed = found.victims, found.transformed, found.images, found.failed
    labels = victims.labels
    floor = _judge(reference, _picture(denormalize(found.starts)), profile, device)  # denormalize clamps to the box
    predicted = torch.where(failed, -1, _judge(reference, _picture(reconstructions.nan_to_num(0.0)), profile, device))
    recognisable = _judge(reference, transformed.images, profile, device) == labels
    originals, seen = victims.images.float() / 255, transformed.images.float() / 255

    def metric(values: torch.Tensor) -> tuple[float, ...]:
        return tuple(torch.where(failed, torch.nan, values.double()).tolist())

    outcomes = Outcomes(
        victims=tuple(victims.indices.tolist()),
        labels=tuple(labels.tolist()),
        recognised=tuple((predicted == labels).tolist()),
        predicted=tuple(predicted.tolist()),
        floor=tuple((floor == labels).tolist()),
        failed=tuple(failed.tolist()),
        psnr_original=metric(psnr(reconstructions, originals)),
        psnr_transformed=metric(psnr(reconstructions, seen)),
        ssim_original=metric(ssim(reconstructions.nan_to_num(0.0), originals)),
        ssim_transformed=metric(ssim(reconstructions.nan_to_num(0.0), seen)),
        recognisable=tuple(recognisable.tolist()),
    )
    return AttackResult(
        overall=_stats(outcomes, found.recovered, outcomes.where(None)),
        per_label=tuple(_stats(outcomes, found.recovered, outcomes.where(label)) for label in range(len(CLASSES))),
        outcomes=outcomes,
        originals=victims.images,
        transformed=transformed.images,
        reconstructions=reconstructions,
        labels=labels,
        seconds=found.seconds,
        cached=found.cached,
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
    """Attack `policy(victims)` (`reconstruct_policy`) and judge the reconstructions (`judge_reconstructions`)."""
    found = reconstruct_policy(
        policy=policy,
        victims=victims,
        profile=profile,
        device=device,
        model=model,
        cache=cache,
        threat=threat,
        progress=progress,
    )
    return judge_reconstructions(found, profile=profile, reference=reference, device=device)


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
