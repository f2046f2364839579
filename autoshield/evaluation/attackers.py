"""Which attackers score a policy, and which of them is the worst case (issue #15, docs/design.md §10).

A published policy is known to the attacker, so the honest privacy figure of a defence is that of the strongest
attacker that knows it. "worst" runs all four (the post-hoc and learned ones cost nothing beyond the naive attack,
but for the learned one's networks, each trained once per cell and machine) and scores the policy by the one with
the highest attack accuracy, whose per-victim verdicts then enter the paired tests: the defender faces one
attacker's reconstructions, not a per-image choice made with the answer key.

"worst" still picks its attacker on the very victims it scores, so it is an upper bound. "calibrated" (issue #36)
is what a real attacker earns: it knows the label (iDLG) and the public per-label policy, so it picks per label,
but it picks on calibration victims (`data.victims.calibration_slots`), never on the victims it is scored on.
"""

from __future__ import annotations

from collections.abc import Mapping

from autoshield.core.choices import ATTACKER_CHOICES, ATTACKERS, Attacker
from autoshield.core.errors import AutoshieldError
from autoshield.data.cifar import CLASSES
from autoshield.evaluation.judge import AttackResult, PrivacyStats, picked


def attackers_of(choice: str) -> tuple[Attacker, ...]:
    """The attackers a study's `--attacker` choice runs."""
    if choice not in ATTACKER_CHOICES:
        raise AutoshieldError(f"unknown attacker {choice!r} ({', '.join(ATTACKER_CHOICES)})")
    return ATTACKERS if choice in ("worst", "calibrated") else (choice,)  # type: ignore[return-value]


def stats_figure(stats: PrivacyStats, privacy: str) -> float:
    """What a study's privacy objective scores an attack by, overall or on one label (`stats`): its attack accuracy
    (recognition), or the share of victims singled out of the line-up (identifiability, which needs one: without
    it nothing would count as leaked)."""
    if privacy == "recognition":
        return stats.attack_accuracy.mean
    if stats.identified is None:
        raise AutoshieldError("identifiability needs a line-up: the attack ranked no victim")
    return stats.identified.mean


def calibrated(calibration: Mapping[Attacker, AttackResult], *, privacy: str = "recognition") -> tuple[Attacker, ...]:
    """Per label, the attacker with the highest privacy figure on that label's calibration victims; on a tie the
    one that knows more (adaptive, learned, post-hoc), as `strongest`. The choice sees only the calibration verdicts."""
    names = list(calibration)
    return tuple(
        max(names, key=lambda a: (stats_figure(calibration[a].per_label[y], privacy), ATTACKERS.index(a)))
        for y in range(len(CLASSES))
    )


def apply_choice(results: Mapping[Attacker, AttackResult], choice: tuple[Attacker, ...]) -> AttackResult:
    """The scored victims' result when each label's victims face the attacker `choice` names for their label."""
    names = list(results)
    missing = sorted(set(choice) - set(names))
    if missing:
        raise AutoshieldError(f"the calibrated choice names {', '.join(missing)}, which did not attack these victims")
    labels = results[names[0]].outcomes.labels
    return picked([results[a] for a in names], [names.index(choice[y]) for y in labels])


def strongest(results: Mapping[Attacker, AttackResult], *, privacy: str = "recognition") -> Attacker:
    """The attacker with the highest privacy figure overall (`stats_figure`); on a tie the one that knows more
    (adaptive, learned, post-hoc)."""
    return max(results, key=lambda a: (stats_figure(results[a].overall, privacy), ATTACKERS.index(a)))
