"""A real null for the privacy figures (issue #34): the same attack, from the victims' own starts, on the gradients
of *other* held-out images of the same label, scored as if each reconstruction were its victim's.

The chance floor asks what the judge says of an information-free image; this asks what the figures read when the
attack works perfectly well but on someone else. The judge's verdict then still names the right label as often
as the attack recovers a label at all, so recognition's null is the attack's own accuracy on the label: it
measures that a class leaks, not that a victim does. Identification's null is 1 / line-up by construction, and
this checks it on real reconstructions. Each victim's decoy is the next victim of its label in the set (cyclic),
attacked under the victim's cell, sign and start, so the null pairs with the attack victim by victim.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from autoshield.core.choices import Attacker
from autoshield.core.config import Profile
from autoshield.core.errors import AutoshieldError
from autoshield.data.cifar import Split
from autoshield.data.policy import Policy, transform_split
from autoshield.evaluation.judge import AttackResult, judge_reconstructions
from autoshield.evaluation.reconstruct import reconstruct_policy
from autoshield.evaluation.table import RowStore, tabled_attack
from autoshield.privacy.cache import AttackCache
from autoshield.privacy.learned import LearnedInverse


def decoy_positions(labels: torch.Tensor) -> torch.Tensor:
    """For each position, the next position of the same label (cyclic): another image, never the victim itself,
    wherever a label has at least two victims."""
    positions = torch.arange(len(labels))
    out = positions.clone()
    for label in labels.unique().tolist():
        same = positions[labels == label]
        if len(same) < 2:
            raise AutoshieldError("the null pairs each victim with another of its label: it needs 2+ victims per label")
        out[same] = same.roll(-1)
    return out


def null_attack(
    *,
    policy: Policy,
    victims: Split,
    profile: Profile,
    reference: nn.Module,
    device: torch.device,
    lineup: Split,
    attacker: Attacker = "naive",
    inverse: LearnedInverse | None = None,
    cache: AttackCache | None = None,
    table: RowStore | None = None,
    progress: bool = False,
) -> AttackResult:
    """Attack each victim's decoy (`decoy_positions`) with the victim's index, hence its start and sign, then judge
    the reconstructions against the victims: the judge's verdict for the victim's label, PSNR against the victim,
    the victim's rank in `lineup`. With a `table`, through the study's attack table, as rows `null:<attacker>`
    stored batch by batch, so that a null too is computed once and survives the machine that computed it."""
    decoys = Split(victims.images[decoy_positions(victims.labels)], victims.labels, victims.indices)
    if table is not None and profile.attack.leak_batch == 1:  # a row is one victim
        return tabled_attack(
            table=table,
            policy=policy,
            victims=decoys,
            profile=profile,
            reference=reference,
            device=device,
            cache=cache,
            attacker=attacker,
            inverse=inverse,
            lineup=lineup,
            as_victims=victims,
            progress=progress,
        )
    found = reconstruct_policy(
        policy=policy,
        victims=decoys,
        profile=profile,
        device=device,
        cache=cache,
        attacker=attacker,
        inverse=inverse,
        progress=progress,
    )
    as_victims = dataclasses.replace(
        found, victims=victims, transformed=transform_split(victims, policy, seed=profile.seed)
    )
    return judge_reconstructions(as_victims, profile=profile, reference=reference, device=device, lineup=lineup)
