"""One policy in, its privacy (and, with training, utility) numbers out.

The victims are private *training* images drawn from the held-out pool
(`data.victims`), which the judge never trained on; the client transforms them
with the policy, leaks the gradient, the attacker inverts it from a start that
depends only on the victim, and the judge labels the reconstruction.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from autoshield.core.choices import UTILITIES, Attacker
from autoshield.core.config import Profile
from autoshield.core.errors import AutoshieldError
from autoshield.data.cifar import Cifar10, Split, stratified_subset
from autoshield.data.policy import Cell, Policy, transform_split
from autoshield.data.victims import Victims, calibration_slots, require_calibration, victim_pool
from autoshield.evaluation.attackers import apply_choice, attackers_of, calibrated, strongest
from autoshield.evaluation.judge import AttackResult, judge_reconstructions
from autoshield.evaluation.lineup import pool_lineup
from autoshield.evaluation.reconstruct import reconstruct_policy
from autoshield.evaluation.table import RowStore, tabled_attack
from autoshield.learn.train import TrainResult, evaluate, train_classifier
from autoshield.privacy.cache import AttackCache
from autoshield.privacy.learned import LearnedInverse, learned_inverse
from autoshield.privacy.threat import ThreatModel


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
    reserved = calibration_slots(profile)
    if first + per_label > reserved.start:
        raise AutoshieldError(
            f"pool slots {reserved.start}–{reserved.stop - 1} are the calibration victims; {per_label} victims per "
            f"label from slot {first} reach them (at most {max(reserved.start - first, 0)} fit)"
        )
    return victim_pool(profile).draw(data.train, start=first, count=per_label)


def calibration_victims(data: Cifar10, profile: Profile) -> Victims:
    """The victims a calibrated attacker chooses its attacker on (`data.victims.calibration_slots`)."""
    reserved = require_calibration(profile)
    return victim_pool(profile).draw(data.train, start=reserved.start, count=len(reserved))


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
    inverse: LearnedInverse | None = None,
    lineup: Split | None = None,
    table: RowStore | None = None,
    progress: bool = False,
) -> AttackResult:
    """Attack `policy(victims)` (`reconstruct_policy`) and judge the reconstructions (`judge_reconstructions`),
    ranking each victim among `lineup` when one is given. With a `table`, through the attack table
    (`evaluation.table.tabled_attack`), where one row is one victim: a gradient of one image that is a function of
    its inputs (DP-SGD's noised view is not)."""
    common = dict(policy=policy, victims=victims, profile=profile, device=device, model=model, cache=cache)
    if table is not None and profile.attack.leak_batch == 1 and (threat is None or threat.cacheable):
        return tabled_attack(
            table=table,
            **common,
            reference=reference,
            threat=threat,
            attacker=attacker,
            inverse=inverse,
            lineup=lineup,
            progress=progress,
        )
    found = reconstruct_policy(**common, threat=threat, attacker=attacker, inverse=inverse, progress=progress)
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
    inverse: LearnedInverse | None = None,
    lineup: Split | None = None,
    table: RowStore | None = None,
    threat: ThreatModel | None = None,
    progress: bool = False,
) -> dict[Attacker, AttackResult]:
    """`attack_policy` by each of `attackers`, on the same victims and starts (so their verdicts pair); the learned
    one with `inverse` (`learned_attackers` builds it); each observes `threat` (default: the exact gradients)."""
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
            inverse=inverse,
            lineup=lineup,
            table=table,
            threat=threat,
            progress=progress,
        )
        for name in attackers
    }


def learned_for(
    attackers: Sequence[str],
    *,
    cells: Iterable[Cell],
    data: Cifar10,
    profile: Profile,
    device: torch.device,
    progress: bool = False,
) -> LearnedInverse | None:
    """The learned inverse's networks for `cells` (`privacy.learned`), where an attacker of `attackers` uses them:
    the learned one, and the adaptive one's warm starts. Each trains once per machine, when an attack first needs it:
    a study whose rows the table already holds trains none."""
    warm = "adaptive" in attackers and profile.attack.warm_starts
    if "learned" not in attackers and not warm:
        return None
    return learned_inverse(cells=cells, data=data, profile=profile, device=device, progress=progress)


@dataclass(frozen=True)
class Scored:
    """Every attacker's result on one policy's victims, and whose result its privacy objective scores."""

    attacks: dict[str, AttackResult]  # by attacker; "calibrated": each label's victims by its chosen attacker
    attacker: str  # the strongest attacker's name, or "calibrated"
    choice: tuple[Attacker, ...] = ()  # calibrated: the attacker each label faced, in `CLASSES` order
    calibration: dict[Attacker, AttackResult] = dataclasses.field(default_factory=dict)  # what `choice` was made on

    @property
    def attack(self) -> AttackResult:
        return self.attacks[self.attacker]

    @property
    def seconds(self) -> float:
        """Every attack run, the calibration victims' too (the calibrated result re-uses the others' work)."""
        runs = [a for name, a in self.attacks.items() if name != "calibrated"]
        return sum(a.seconds for a in [*runs, *self.calibration.values()])


def score_policy(
    attacker: str,
    *,
    policy: Policy,
    victims: Split,
    data: Cifar10,
    profile: Profile,
    reference: nn.Module,
    device: torch.device,
    privacy: str = "recognition",
    model: nn.Module | None = None,
    cache: AttackCache | None = None,
    table: RowStore | None = None,
    progress: bool = False,
) -> Scored:
    """`policy(victims)` attacked by every attacker the `attacker` choice names (`evaluation.attackers`), scored
    by the strongest on `privacy`; calibrated, each label by the attacker that was strongest on that label's
    calibration victims, which are attacked too (with the same network, so a choice and its use face one model)."""
    attackers = attackers_of(attacker)
    attack = functools.partial(
        attack_with,
        attackers,
        policy=policy,
        profile=profile,
        reference=reference,
        device=device,
        model=model,
        cache=cache,
        inverse=learned_for(
            attackers, cells=policy.cells, data=data, profile=profile, device=device, progress=progress
        ),
        lineup=pool_lineup(data.train, profile),
        table=table,
        progress=progress,
    )
    attacks: dict[str, AttackResult] = dict(attack(victims=victims))
    if attacker != "calibrated":
        return Scored(attacks=attacks, attacker=strongest(attacks, privacy=privacy))
    calibration = attack(victims=calibration_victims(data, profile))
    choice = calibrated(calibration, privacy=privacy)
    attacks["calibrated"] = apply_choice(attacks, choice)
    return Scored(attacks=attacks, attacker="calibrated", choice=choice, calibration=calibration)


def profile_splits(data: Cifar10, profile: Profile) -> tuple[Split, Split]:
    """The profile's seeded training and test subsets (utility is measured on these)."""
    return (
        stratified_subset(data.train, per_class=profile.train_per_class, seed=profile.seed),
        stratified_subset(data.test, per_class=profile.test_per_class, seed=profile.seed),
    )


def train_policy(
    *,
    policy: Policy,
    data: Cifar10,
    profile: Profile,
    device: torch.device,
    seed: int | None = None,
    progress: bool = False,
) -> TrainResult:
    """The profile's ResNet-18 trained on `policy` applied to the profile's training subset; `seed` (default the
    profile's) seeds the training alone, so that runs repeated over seeds share their subsets."""
    train, test = profile_splits(data, profile)
    return train_classifier(
        train=train,
        test=test,
        policy=policy,
        width=profile.width,
        norm=profile.norm,
        config=profile.train,
        seed=profile.seed if seed is None else seed,
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
    scored: Scored  # every attacker's result and whose the objective is
    train_seconds: float
    privacy: str = "recognition"  # what the privacy objective counts (`evaluation.attackers.stats_figure`)

    @property
    def attack(self) -> AttackResult:
        """The objective: the strongest of the attackers run, or the calibrated choice's."""
        return self.scored.attack

    @property
    def attacker(self) -> str:
        """Whose result `attack` is: an attacker, or "calibrated"."""
        return self.scored.attacker

    @property
    def attacks(self) -> dict[str, AttackResult]:
        """Every attacker run, `attack` too."""
        return self.scored.attacks

    @property
    def choice(self) -> tuple[Attacker, ...]:
        """Calibrated: the attacker each label faced, in `CLASSES` order."""
        return self.scored.choice

    @property
    def calibration(self) -> dict[Attacker, AttackResult]:
        """Calibrated: the calibration victims' results that `choice` was made on."""
        return self.scored.calibration

    @property
    def attack_seconds(self) -> float:
        """Every attack run, the calibration victims' too."""
        return self.scored.seconds

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
    table: RowStore | None = None,
    progress: bool = False,
) -> Evaluation:
    """Train on `policy(train)` (unless utility is recognisability) and attack `policy(victims)` with the
    attackers `attacker` names (`evaluation.attackers`), scoring it by the strongest on `privacy`, or, calibrated,
    each label by the attacker that was strongest on that label's calibration victims; through the attack `table`
    when one is given."""
    attackers_of(attacker)  # an unknown attacker, a bad utility or a pool too small to calibrate on: before any work
    if utility not in UTILITIES:
        raise AutoshieldError(f"unknown utility {utility!r} ({', '.join(UTILITIES)})")
    if attacker == "calibrated":
        require_calibration(profile)
    model, train_seconds, accuracy = None, 0.0, None
    if utility == "trained":
        result = train_policy(policy=policy, data=data, profile=profile, device=device, progress=progress)
        train_seconds = result.seconds + result.policy_seconds
        accuracy = (result.accuracy.overall, result.accuracy.per_label)
        model = result.model if profile.attack.target == "trained" else None
    scored = score_policy(
        attacker,
        policy=policy,
        victims=victims(data, profile),
        data=data,
        profile=profile,
        reference=reference,
        device=device,
        privacy=privacy,
        model=model,
        cache=cache,
        table=table,
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
    return Evaluation(
        policy=policy,
        utility=utility,
        model_accuracy=accuracy[0],
        model_accuracy_per_label=accuracy[1],
        scored=scored,
        train_seconds=train_seconds,
        privacy=privacy,
    )
