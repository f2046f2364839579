"""The judge's side of an attack: what a reference classifier says of the reconstructions, and the statistics.

Kept apart from attacking (`evaluation.evaluate`) so that one set of reconstructions can be judged by two judges
(membership) or be changed by a post-hoc attacker before it is judged (`evaluation.attackers`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from autoshield.core.config import Profile
from autoshield.data.cifar import CLASSES, Split, denormalize
from autoshield.data.policy import Policy
from autoshield.data.victims import Victims
from autoshield.evaluation.lineup import lineup_ranks
from autoshield.learn.train import logits, predict
from autoshield.privacy.cache import model_digest
from autoshield.privacy.identify import identified, median_rank
from autoshield.privacy.judge_file import DIGEST_LENGTH
from autoshield.privacy.metrics import Estimate, mean_interval, proportion, psnr, ssim
from autoshield.privacy.paired import Outcomes


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
    identified: Estimate | None  # the reconstruction singles the victim out of the line-up (rank 1); None: no line-up
    median_rank: float | None  # the victim's median rank in the line-up
    lineup: int  # candidates in the line-up (0: none): identification's null is 1 / lineup


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
    judge: str  # SHA-256 of the judge's weights: verdicts of two judges never mix
    recovered: torch.Tensor  # per victim: 1 iDLG recovered the label, 0 it did not, -1 leak batch > 1


def _stats(outcomes: Outcomes, recovered: torch.Tensor, positions: list[int], lineup: int) -> PrivacyStats:
    def column(values: tuple) -> torch.Tensor:
        return torch.tensor([values[i] for i in positions], dtype=torch.float64)

    ranks = column(outcomes.rank) if outcomes.rank else torch.empty(0)

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
        identified=identified(ranks) if lineup else None,
        median_rank=median_rank(ranks) if lineup else None,
        lineup=lineup,
    )


def _judge(reference: nn.Module, pictures: torch.Tensor, profile: Profile, device: torch.device) -> torch.Tensor:
    """The reference classifier's labels for uint8 pictures."""
    return predict(reference, pictures, batch_size=profile.reference.eval_batch_size, device=device)


def _true_probability(
    reference: nn.Module, pictures: torch.Tensor, labels: torch.Tensor, profile: Profile, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The judge's labels for uint8 pictures and its softmax for each true label: how sure a verdict was, so a
    reader can move the bar of "recognised" without attacking again."""
    scores = logits(reference, pictures, batch_size=profile.reference.eval_batch_size, device=device)
    return scores.argmax(1), scores.softmax(1).gather(1, labels[:, None]).squeeze(1)


def _picture(images: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1] quantised to uint8, as an attacker would look at them."""
    return images.mul(255).round().to(torch.uint8)


@dataclass(frozen=True)
class Reconstructions:
    """What the attacker recovered from `policy(victims)`, before any judge looked at it."""

    policy: Policy  # public: the attacker compares its reconstructions with the line-up under it
    victims: Split  # the private images
    transformed: Split  # what the client trained on
    images: torch.Tensor  # float in [0, 1], one per victim
    failed: torch.Tensor  # bool per victim: the optimisation turned non-finite
    recovered: torch.Tensor  # per victim: 1 iDLG recovered the label, 0 it did not, -1 leak batch > 1
    starts: torch.Tensor  # normalised restart-0 start per victim: information-free, what the floor judges
    seconds: float  # time spent attacking now (0 when every result came from the cache)
    cached: int  # problems whose result came from the cache
    sign_right: torch.Tensor  # per victim: 1/0 the adaptive attacker kept the client's sign or not, -1 no guess
    restart: torch.Tensor  # per victim: which start the attack kept (0: the first), -1 unknown (an older cache entry)
    costs: torch.Tensor  # per victim: seconds its attack cost when computed, cached or not (0: unknown, older entry)


def judge_reconstructions(
    found: Reconstructions,
    *,
    profile: Profile,
    reference: nn.Module,
    device: torch.device,
    lineup: Split | None = None,
) -> AttackResult:
    """The judge's verdict on each reconstruction, its start (the chance floor) and the transformed image; with
    a `lineup` (`evaluation.lineup.pool_lineup`), also each victim's rank in it, which needs no judge."""
    victims, transformed, reconstructions, failed = found.victims, found.transformed, found.images, found.failed
    labels = victims.labels
    floor = _judge(reference, _picture(denormalize(found.starts)), profile, device)  # denormalize clamps to the box
    judged, sure = _true_probability(reference, _picture(reconstructions.nan_to_num(0.0)), labels, profile, device)
    predicted = torch.where(failed, -1, judged)
    recognisable = _judge(reference, transformed.images, profile, device) == labels
    originals, seen = victims.images.float() / 255, transformed.images.float() / 255
    ranks: tuple[int, ...] = ()  # judge-free: where the reconstruction puts its victim among the line-up
    if lineup is not None:
        ranks = tuple(
            lineup_ranks(
                reconstructions=reconstructions.nan_to_num(0.0),
                victims=victims,
                failed=failed,
                policy=found.policy,
                lineup=lineup,
            ).tolist()
        )

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
        sign_right=tuple(found.sign_right.tolist()),
        slots=tuple(victims.slots.tolist()) if isinstance(victims, Victims) else (-1,) * len(labels),
        true_probability=metric(sure),
        rank=ranks,
    )
    return attack_result(
        outcomes,
        recovered=found.recovered,
        lineup=0 if lineup is None else len(lineup),
        victims=victims,
        transformed=transformed,
        reconstructions=reconstructions,
        seconds=found.seconds,
        cached=found.cached,
        judge=model_digest(reference, length=DIGEST_LENGTH),
    )


def attack_result(
    outcomes: Outcomes,
    *,
    recovered: torch.Tensor,
    lineup: int,
    victims: Split,
    transformed: Split,
    reconstructions: torch.Tensor,
    seconds: float,
    cached: int,
    judge: str,
) -> AttackResult:
    """The result of judged per-victim outcomes, summarised overall and per label: from a judge that just looked,
    or from rows of the attack table (`evaluation.table`) that one looked at once."""
    return AttackResult(
        overall=_stats(outcomes, recovered, outcomes.where(None), lineup),
        per_label=tuple(_stats(outcomes, recovered, outcomes.where(y), lineup) for y in range(len(CLASSES))),
        outcomes=outcomes,
        originals=victims.images,
        transformed=transformed.images,
        reconstructions=reconstructions,
        labels=victims.labels,
        seconds=seconds,
        cached=cached,
        judge=judge,
        recovered=recovered,
    )


def picked(results: Sequence[AttackResult], pick: Sequence[int]) -> AttackResult:
    """The result whose victim i is `results[pick[i]]`'s victim i, summarised afresh: one attacker's verdict per
    victim, chosen before looking at these victims (`evaluation.attackers.calibrated`). Every result must hold the
    same victims in the same order, as `attack_with` gives them; the seconds and cached counts add up, since every
    attacker ran."""
    first = results[0]
    if any(r.outcomes.victims != first.outcomes.victims or r.judge != first.judge for r in results):
        raise ValueError("picked: the results hold other victims or another judge's verdicts")
    if len(pick) != len(first.outcomes.victims):
        raise ValueError(f"picked: {len(pick)} choices for {len(first.outcomes.victims)} victims")
    stored = {f.name: [getattr(r.outcomes, f.name) for r in results] for f in dataclasses.fields(Outcomes)}
    outcomes = Outcomes(
        **{name: tuple(v[k][i] for i, k in enumerate(pick)) if all(v) else () for name, v in stored.items()}
    )
    lineup = first.overall.lineup
    return AttackResult(
        overall=_stats(outcomes, first.recovered, outcomes.where(None), lineup),
        per_label=tuple(_stats(outcomes, first.recovered, outcomes.where(y), lineup) for y in range(len(CLASSES))),
        outcomes=outcomes,
        originals=first.originals,
        transformed=first.transformed,
        reconstructions=torch.stack([r.reconstructions for r in results])[
            torch.tensor(list(pick)), torch.arange(len(pick))
        ],
        labels=first.labels,
        seconds=sum(r.seconds for r in results),
        cached=sum(r.cached for r in results),
        judge=first.judge,
        recovered=first.recovered,
    )
