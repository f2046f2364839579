"""Confirmation on fresh victims: the found policies re-scored where they were not selected.

A policy chosen because it scored best on victims V is biased towards V; the
honest number is its score on victims V' it was never selected on
(docs/design.md §8). `confirm` re-attacks the grid's best-per-label policy,
the search's Pareto-optimal policies and Identity on fresh pool slots, pairs
each with Identity on those victims, and stores the results on the study.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import optuna
import torch
from torch import nn

from autoshield.core.choices import DEFAULT_TOLERANCE
from autoshield.core.config import Profile
from autoshield.core.errors import AutoshieldError
from autoshield.data.cifar import Cifar10
from autoshield.data.policy import IDENTITY, Cell, Policy
from autoshield.evaluation.evaluate import fresh_victims, score_policy
from autoshield.evaluation.table import RowStore
from autoshield.privacy.cache import AttackCache
from autoshield.privacy.paired import scored
from autoshield.study.analysis import (
    Comparison,
    best_cells,
    best_policy,
    compare_all,
    grid_cells,
    grid_comparisons,
    privacy_of,
)
from autoshield.study.catalog import completed
from autoshield.study.params import policy_of
from autoshield.study.records import AttackRecord, ConfirmationRecord, EvaluationRecord, StudyInfo

IDENTITY_SOURCE = "Identity"


@dataclass(frozen=True)
class Candidate:
    """A policy to confirm, where it came from, and what it scored on the study's own victims."""

    source: str
    policy: Policy
    found_attack_accuracy: float | None  # the study's privacy figure on its own victims (`AttackRecord.figure`)
    study: optuna.Study


def candidates(
    *, grid: optuna.Study | None, search: optuna.Study | None, tolerance: float = DEFAULT_TOLERANCE
) -> list[Candidate]:
    """Identity, the grid's best-per-label policy, the grid cells significantly better than Identity over all
    labels, and the search's Pareto front; a policy found twice is confirmed once, under both names."""
    found: dict[Policy, Candidate] = {}
    studies = [s for s in (grid, search) if s is not None and completed(s)]
    if not studies:
        raise AutoshieldError("no completed grid or search trials to confirm")
    privacy = privacy_of(studies[0])  # `confirm` refuses a grid and a search that count differently

    def add(source: str, policy: Policy, attack: float | None, study: optuna.Study) -> None:
        if policy in found:
            old = found[policy]
            found[policy] = Candidate(f"{old.source}; {source}", policy, old.found_attack_accuracy, old.study)
        else:
            found[policy] = Candidate(source, policy, attack, study)

    cells = grid_cells(grid) if grid is not None else {}
    found_identity = cells[IDENTITY].evaluation.attack.figure(privacy) if IDENTITY in cells else None
    add(IDENTITY_SOURCE, Policy.identity(), found_identity, studies[0])
    if grid is not None and completed(grid):
        table, _ = best_cells(grid, tolerance=tolerance)
        attack = sum(row.attack_accuracy for row in table) / len(table)
        add("grid best per label", best_policy(table), attack, grid)
        for (name, label), comparison in grid_comparisons(grid).items():
            if label is None and comparison.significant:  # a uniform cell better than Identity over all labels
                cell = Cell.parse(name)
                add(f"grid cell {name}", Policy.uniform(cell), cells[cell].evaluation.attack.figure(privacy), grid)
    if search is not None and completed(search):
        for trial in sorted(search.best_trials, key=lambda t: t.number):
            add(
                f"search trial {trial.number}",
                policy_of(trial),
                EvaluationRecord.read(trial).attack.figure(privacy),
                search,
            )
    return list(found.values())


def check_profile(study: optuna.Study, profile: Profile, data: Cifar10) -> StudyInfo:
    """Confirmation must use the study's profile and data, or its victims and attack are not the study's; it
    attacks the untrained network, as a study's `init` target does. Returns the study's info (its attacker)."""
    if profile.attack.target != "init":
        raise AutoshieldError("confirm attacks the seeded untrained network: it needs attack.target = 'init'")
    info = StudyInfo.read(study)
    if info is None:
        raise AutoshieldError(f"study {study.study_name!r} was not created by autoshield")
    if info.profile_fingerprint != profile.fingerprint() or info.data != data.fingerprint:
        raise AutoshieldError(
            f"study {study.study_name!r} was run with profile {info.profile!r} ({info.profile_fingerprint}) on data "
            f"{info.data}; pass the same --profile/--set and --data-root"
        )
    return info


def confirm(
    *,
    chosen: list[Candidate],
    data: Cifar10,
    profile: Profile,
    reference: nn.Module,
    device: torch.device,
    victims_per_label: int,
    first_slot: int,
    attacker: str = "naive",
    privacy: str = "recognition",
    cache: AttackCache | None = None,
    table: RowStore | None = None,
    progress: bool = False,
) -> list[ConfirmationRecord]:
    """Attack every candidate on `victims_per_label` fresh victims per label (the same victims and starts for
    all, so they pair with Identity's), scored as the study scored it (`evaluation.evaluate.score_policy`): by the
    strongest of `attacker`'s on `privacy`, or calibrated, each label by the attacker chosen on its calibration
    victims, which are never fresh ones. Through the study's attack `table` when given: `table build --slots` may
    have computed them."""
    victims = fresh_victims(data, profile, per_label=victims_per_label, first_slot=first_slot)
    records = []
    for candidate in chosen:
        start = time.perf_counter()
        scored = score_policy(
            attacker,
            policy=candidate.policy,
            victims=victims,
            data=data,
            profile=profile,
            reference=reference,
            device=device,
            privacy=privacy,
            cache=cache,
            table=table,
            progress=progress,
        )
        records.append(
            ConfirmationRecord(
                source=candidate.source,
                policy=str(candidate.policy),
                first_slot=first_slot,
                victims_per_label=victims_per_label,
                found_attack_accuracy=candidate.found_attack_accuracy,
                attack=AttackRecord.of(scored.attack),
                seconds=time.perf_counter() - start,
                attacker=scored.attacker,
                privacy=privacy,
            )
        )
    return records


def next_fresh_slot(records: list[ConfirmationRecord], *, study_victims: int) -> int:
    """The first pool slot that neither the study (slots [0, study_victims)) nor any confirmation has scored."""
    return max([study_victims, *(r.first_slot + r.victims_per_label for r in records)])


def check_fresh(
    records: list[ConfirmationRecord], *, first_slot: int, victims_per_label: int, study_victims: int
) -> None:
    """Refuse the study's own slots ([0, study_victims)) and slots an earlier confirmation scored: a policy changed
    after its confirmed numbers were seen, or confirmed again until it passes, must meet victims it has not met
    (issue #34)."""
    if first_slot < study_victims:
        raise AutoshieldError(
            f"--first-slot {first_slot} is among the study's own victims (pool slots 0–{study_victims - 1})"
        )
    end = first_slot + victims_per_label
    for r in records:
        if r.first_slot < end and first_slot < r.first_slot + r.victims_per_label:
            raise AutoshieldError(
                f"pool slots {r.first_slot}–{r.first_slot + r.victims_per_label - 1} were already scored by a "
                f"confirmation ({r.source}); start at --first-slot {next_fresh_slot(records, study_victims=0)} or later"
            )


def confirmation_groups(records: list[ConfirmationRecord]) -> dict[tuple[int, int], list[ConfirmationRecord]]:
    """Records by the fresh victims they were scored on (first slot, victims per label): only records of one
    group share victims, so only they pair."""
    groups: dict[tuple[int, int], list[ConfirmationRecord]] = {}
    for record in records:
        groups.setdefault((record.first_slot, record.victims_per_label), []).append(record)
    return groups


def confirmed_comparisons(group: list[ConfirmationRecord]) -> dict[tuple[str, int | None], Comparison]:
    """Each policy of one group against that group's Identity on the same fresh victims, on the endpoint the
    study's privacy objective counts, Holm over the group."""
    identity = next((r for r in group if r.policy == str(Policy.identity())), None)
    if identity is None or identity.attack.outcomes is None:
        return {}
    privacy = identity.privacy
    outcomes = {
        r.policy: scored(r.attack.outcomes, privacy)
        for r in group
        if r is not identity and r.attack.outcomes is not None
    }
    return compare_all(outcomes, scored(identity.attack.outcomes, privacy))
