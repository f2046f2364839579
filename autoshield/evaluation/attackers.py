"""Which attackers score a policy, and which of them is the worst case (issue #15, docs/design.md §10).

A published policy is known to the attacker, so the honest privacy figure of a defence is that of the strongest
attacker that knows it. "worst" runs all three (the post-hoc one costs nothing beyond the naive attack) and scores
the policy by the one with the highest attack accuracy, whose per-victim verdicts then enter the paired tests:
the defender faces one attacker's reconstructions, not a per-image choice made with the answer key.
"""

from __future__ import annotations

from collections.abc import Mapping

from autoshield.core.choices import ATTACKER_CHOICES, ATTACKERS, Attacker
from autoshield.core.errors import AutoshieldError
from autoshield.evaluation.judge import AttackResult


def attackers_of(choice: str) -> tuple[Attacker, ...]:
    """The attackers a study's `--attacker` choice runs."""
    if choice not in ATTACKER_CHOICES:
        raise AutoshieldError(f"unknown attacker {choice!r} ({', '.join(ATTACKER_CHOICES)})")
    return ATTACKERS if choice == "worst" else (choice,)  # type: ignore[return-value]


def privacy_figure(result: AttackResult, privacy: str) -> float:
    """What a study's privacy objective scores an attack by: its attack accuracy (recognition), or the share of
    victims singled out of the line-up (identifiability, which needs one: without it nothing would count as
    leaked)."""
    if privacy == "recognition":
        return result.overall.attack_accuracy.mean
    identified = result.overall.identified
    if identified is None:
        raise AutoshieldError("identifiability needs a line-up: the attack ranked no victim")
    return identified.mean


def strongest(results: Mapping[Attacker, AttackResult], *, privacy: str = "recognition") -> Attacker:
    """The attacker with the highest privacy figure (`privacy_figure`); on a tie the one that knows more
    (adaptive, post-hoc)."""
    return max(results, key=lambda a: (privacy_figure(results[a], privacy), ATTACKERS.index(a)))
