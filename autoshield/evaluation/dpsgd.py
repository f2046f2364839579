"""DP-SGD at one σ evaluated like a policy: utility, ε, and the same attacker, victims and metrics.

Three attacks per σ (docs/design.md §4): `noised` (the server sees DP-SGD's
clipped, noised gradient: the real DP threat), `weights` (exact gradients of
the DP-trained weights: the poster's protocol) and `control` (the `noised`
setting's network and victims with exact gradients: what the attack reaches
on that network at all).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from autoshield.core.config import Profile
from autoshield.core.errors import AutoshieldError
from autoshield.data.cifar import Cifar10
from autoshield.data.policy import Policy
from autoshield.dp.config import DPConfig
from autoshield.evaluation.evaluate import AttackResult, attack_policy, profile_splits, victims
from autoshield.learn.models import build_model
from autoshield.privacy.cache import AttackCache
from autoshield.privacy.threat import NoisedGradients


@dataclass(frozen=True)
class DPEvaluation:
    """DP-SGD at one σ: utility, ε, and the attack in both threat settings (docs/design.md §4)."""

    sigma: float
    max_grad_norm: float
    delta: float
    epsilon: float
    epsilon_prv: float | None
    epochs: int
    model_accuracy: float
    model_accuracy_per_label: tuple[float, ...]
    noised: AttackResult  # clipped gradient + N(0, σ²C²) noise: the real DP threat
    weights: AttackResult  # noiseless gradients of the DP-trained weights: the poster's protocol
    control: AttackResult  # `noised`'s weights and victims without clipping or noise: the attack's ceiling
    train_seconds: float
    attack_seconds: float


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
    """Train with DP-SGD at `sigma` and attack it with the same attacker, victims and metrics as a policy.

    The `noised` setting attacks the weights a policy evaluation attacks (profile.attack.target:
    the seeded fresh network, GroupNorm, or the DP-trained one); `weights` attacks the DP-trained
    network without noise. `control` attacks `noised`'s weights and victims with exact gradients: where
    it is already near chance, a low `noised` attack accuracy shows the attacker's limit, not the noise's.
    """
    from autoshield.dp.engine import train_dp  # Opacus is optional: imported only when DP-SGD runs

    if profile.attack.leak_batch != 1:
        raise AutoshieldError("DP-SGD attacks use single-image gradients (attack.leak_batch = 1)")
    dp = DPConfig(sigma=sigma, max_grad_norm=max_grad_norm)
    train, test = profile_splits(data, profile)
    trained = train_dp(
        train=train,
        test=test,
        width=profile.width,
        config=profile.train,
        dp=dp,
        seed=profile.seed,
        device=device,
        progress=progress,
    )
    generator = torch.Generator().manual_seed(profile.seed)
    target = (
        trained.model
        if profile.attack.target == "trained"
        else build_model(width=profile.width, norm="group", seed=profile.seed)
    )
    common = dict(policy=Policy.identity(), victims=victims(data, profile), profile=profile, reference=reference)
    noised = attack_policy(
        **common, device=device, model=target, threat=NoisedGradients(dp, generator), progress=progress
    )
    weights = attack_policy(**common, device=device, model=trained.model, progress=progress)
    control = (
        weights
        if profile.attack.target == "trained"
        else attack_policy(**common, device=device, model=target, cache=cache, progress=progress)
    )
    return DPEvaluation(
        sigma=sigma,
        max_grad_norm=max_grad_norm,
        delta=dp.delta,
        epsilon=trained.epsilon,
        epsilon_prv=trained.epsilon_prv,
        epochs=trained.epochs,
        model_accuracy=trained.accuracy.overall,
        model_accuracy_per_label=trained.accuracy.per_label,
        noised=noised,
        weights=weights,
        control=control,
        train_seconds=trained.seconds,
        attack_seconds=noised.seconds + weights.seconds + (control.seconds if control is not weights else 0.0),
    )
