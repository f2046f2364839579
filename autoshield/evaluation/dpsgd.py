"""DP-SGD at one σ evaluated like a policy: utility, ε, and the same attacker, victims, metrics and network.

Attacks per σ (docs/design.md §4 and §8):
- `noised`: the server sees DP-SGD's clipped, noised gradient (the real DP threat);
- `weights`: exact gradients of the DP-trained weights (the poster's protocol);
- `control`: `noised`'s weights and victims without noise. Clipping only scales a gradient, which the cosine
  objective ignores, so this is the exact gradient: what the attack reaches on that network at all;
- `identity`: the Identity policy on the augmentation side's network, the bar the controls must reach.

A result is *comparable* with the augmentation side only when its σ = 0 control (the control for `noised`, the
`weights` attack itself for `weights`) reaches Identity's attack accuracy minus `COMPARABLE_MARGIN`; otherwise
a low attack accuracy says the attack fails on this network, not that the noise protects.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from autoshield.core.config import Profile
from autoshield.core.errors import AutoshieldError
from autoshield.core.files import cache_dir
from autoshield.data.cifar import Cifar10, normalize
from autoshield.data.policy import Policy
from autoshield.dp.config import DPConfig
from autoshield.evaluation.evaluate import attack_policy, profile_splits, train_policy, victims
from autoshield.evaluation.judge import AttackResult
from autoshield.evaluation.lineup import pool_lineup
from autoshield.learn.models import build_model
from autoshield.learn.stored import stored_classifier
from autoshield.learn.train import Accuracy
from autoshield.privacy.cache import AttackCache
from autoshield.privacy.threat import dp_view, leak_gradients, signal_to_noise

if TYPE_CHECKING:
    from autoshield.dp.engine import DPResult

COMPARABLE_MARGIN = 0.10  # a σ = 0 control this far below Identity means the attack, not the noise, failed


@dataclass(frozen=True)
class DPEvaluation:
    """DP-SGD at one σ: utility, ε, and the attack in both threat settings with their controls."""

    sigma: float
    max_grad_norm: float
    delta: float
    epsilon: float
    epsilon_prv: float | None
    epochs: int
    norm: str  # the network both sides use
    model_accuracy: float
    model_accuracy_per_label: tuple[float, ...]
    nonprivate_accuracy: float  # the same network and data trained without DP (the non-private recipe)
    noised: AttackResult  # clipped gradient + N(0, σ²C²) noise: the real DP threat
    weights: AttackResult  # noiseless gradients of the DP-trained weights: the poster's protocol
    control: AttackResult  # `noised`'s weights and victims without noise: the attack's ceiling there
    identity: AttackResult  # the Identity policy on the augmentation side's network (same victims)
    signal_to_noise: tuple[float, ...]  # per victim ‖clipped g‖ / (σ·C·√d) of the `noised` observation
    train_seconds: float
    attack_seconds: float


def comparable(control: float, identity: float) -> bool:
    """The gate of every DP attack result: its σ = 0 control reaches Identity's attack accuracy minus the margin."""
    return control >= identity - COMPARABLE_MARGIN - 1e-12


def _nonprivate(data: Cifar10, profile: Profile, device: torch.device) -> tuple[nn.Module, Accuracy]:
    """The profile's network trained without DP on the clean training subset, once per profile and data (every σ
    of a baseline shares it): the utility DP gives up, and the network Identity is attacked on when the target is
    `trained`."""
    fields = ("seed", "width", "norm", "train_per_class", "test_per_class", "train")
    key = hashlib.sha256(json.dumps({f: asdict(profile)[f] for f in fields}, sort_keys=True).encode()).hexdigest()
    path = cache_dir() / "nonprivate" / f"resnet18-{data.fingerprint}-{key[:12]}.pt"

    def make() -> nn.Module:
        return build_model(width=profile.width, norm=profile.norm, seed=profile.seed)

    def train() -> tuple[nn.Module, Accuracy]:
        result = train_policy(policy=Policy.identity(), data=data, profile=profile, device=device)
        return result.model, result.accuracy

    model, accuracy, _ = stored_classifier(path, train=train, make=make, device=device)
    return model, accuracy


def train_dp_profile(
    *,
    dp: DPConfig,
    data: Cifar10,
    profile: Profile,
    device: torch.device,
    seed: int | None = None,
    progress: bool = False,
) -> DPResult:
    """The profile's network trained with DP-SGD (`profile.dp_train`) on the profile's training subset, as
    `train_policy` trains it without; `seed` (default the profile's) seeds the training alone."""
    from autoshield.dp.engine import train_dp  # Opacus is optional: imported only when DP-SGD runs

    train, test = profile_splits(data, profile)
    return train_dp(
        train=train,
        test=test,
        width=profile.width,
        norm=profile.norm,
        config=profile.dp_train,
        dp=dp,
        seed=profile.seed if seed is None else seed,
        device=device,
        progress=progress,
    )


def evaluate_dpsgd(
    *,
    sigma: float,
    max_grad_norm: float,
    data: Cifar10,
    profile: Profile,
    reference: nn.Module,
    device: torch.device,
    cache: AttackCache | None = None,
    progress: bool = False,
) -> DPEvaluation:
    """Train the profile's network with DP-SGD at `sigma` (`profile.dp_train`) and attack it with the same
    attacker, victims and metrics as a policy.

    `noised` attacks the weights a policy evaluation attacks (profile.attack.target: the seeded fresh network or the
    DP-trained one) with noise drawn per (σ, victim); `weights` attacks the DP-trained network without noise.
    """
    if profile.attack.leak_batch != 1:
        raise AutoshieldError("DP-SGD attacks use single-image gradients (attack.leak_batch = 1)")
    dp = DPConfig(sigma=sigma, max_grad_norm=max_grad_norm)
    trained = train_dp_profile(dp=dp, data=data, profile=profile, device=device, progress=progress)
    nonprivate, nonprivate_accuracy = _nonprivate(data, profile, device)
    on_trained = profile.attack.target == "trained"
    target = trained.model if on_trained else build_model(width=profile.width, norm=profile.norm, seed=profile.seed)
    attacked = victims(data, profile)
    lineup = pool_lineup(data.train, profile)
    common = dict(
        policy=Policy.identity(), victims=attacked, profile=profile, reference=reference, device=device, lineup=lineup
    )
    view = dp_view(dp, indices=attacked.indices, seed=profile.seed)
    noised = attack_policy(**common, model=target, threat=view, progress=progress)
    weights = attack_policy(**common, model=trained.model, cache=cache, progress=progress)
    control = weights if on_trained else attack_policy(**common, model=target, cache=cache, progress=progress)
    identity = attack_policy(**common, model=nonprivate, cache=cache, progress=progress) if on_trained else control
    observed = leak_gradients(target.to(device), normalize(attacked.images).to(device), attacked.labels.to(device))
    return DPEvaluation(
        sigma=sigma,
        max_grad_norm=max_grad_norm,
        delta=dp.delta,
        epsilon=trained.epsilon,
        epsilon_prv=trained.epsilon_prv,
        epochs=trained.epochs,
        norm=profile.norm,
        model_accuracy=trained.accuracy.overall,
        model_accuracy_per_label=trained.accuracy.per_label,
        nonprivate_accuracy=nonprivate_accuracy.overall,
        noised=noised,
        weights=weights,
        control=control,
        identity=identity,
        signal_to_noise=tuple(signal_to_noise(observed, dp=dp).tolist()),
        train_seconds=trained.seconds,
        attack_seconds=sum(r.seconds for r in {id(r): r for r in (noised, weights, control, identity)}.values()),
    )
