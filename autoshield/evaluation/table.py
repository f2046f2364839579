"""A judged attack one victim at a time: the rows of the attack table, and the attack that reads them first.

At `init` a victim's judged result depends only on its problem (the attack cache's key: the transformed pixels,
label, attacked weights, attack settings and start), the cell that transformed it, the attacker and the judge
(docs/design.md §1). `Problem` names exactly those, and a `RowStore` (the study's attack table,
`study.attack_table`) keeps each one's `Outcomes` values (issue #35). A result computed once, on any machine, is
then read rather than recomputed on every other; and a stored row wins over a fresh verdict, since two machines'
judges with one digest may still round a borderline verdict apart, and a problem must have one answer.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from autoshield.core.config import Profile
from autoshield.data.cifar import Split
from autoshield.data.policy import Policy, transform_split
from autoshield.evaluation.judge import AttackResult, attack_result, judge_reconstructions
from autoshield.evaluation.reconstruct import attack_keys, reconstruct_policy
from autoshield.learn.models import build_model
from autoshield.privacy.cache import AttackCache, model_digest
from autoshield.privacy.judge_file import DIGEST_LENGTH
from autoshield.privacy.paired import Outcomes
from autoshield.privacy.threat import ThreatModel


@dataclass(frozen=True)
class Problem:
    """What one row's result depends on: `attack` is the attack cache's key; the cell and the attacker say what was
    done with the reconstruction, and `judge` who scored it."""

    attack: str
    cell: str
    attacker: str
    judge: str

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(dataclasses.asdict(self), sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Row:
    """One victim's judged result: `outcome` maps each `Outcomes` column (and `recovered`, iDLG's verdict) to this
    victim's value, JSON-safe (a failed reconstruction's metrics are None)."""

    problem: Problem
    outcome: dict[str, Any]
    seconds: float  # its share of the attack's wall time (0: read from the cache)


class RowStore(Protocol):
    """Where rows are kept: `study.attack_table` on the study's storage."""

    def read(self, problems: Sequence[Problem]) -> dict[str, Row]:
        """The stored rows of `problems`, by key."""
        ...

    def write(self, rows: Sequence[Row]) -> int:
        """Store `rows`, keeping any row already stored; returns how many were new."""
        ...


def rows_of(result: AttackResult, *, problems: Sequence[Problem], recovered: torch.Tensor) -> list[Row]:
    """`result`'s outcomes split into one row per victim (problems in victim order, one image each)."""
    n = len(problems)
    columns = {f.name: getattr(result.outcomes, f.name) for f in dataclasses.fields(Outcomes)}
    share = result.seconds / n
    return [
        Row(
            problem=problem,
            outcome={
                **{name: _jsonable(values[i]) for name, values in columns.items() if len(values) == n},
                "recovered": int(recovered[i]),
            },
            seconds=share,
        )
        for i, problem in enumerate(problems)
    ]


def joined(rows: Sequence[Row]) -> tuple[Outcomes, torch.Tensor]:
    """Rows (in victim order) as one attack's `Outcomes` and iDLG verdicts; a column some row lacks (one stored
    before it existed) is left unknown, as `Outcomes` allows."""
    values = {}
    for field in dataclasses.fields(Outcomes):
        if all(field.name in row.outcome for row in rows):
            values[field.name] = tuple(math.nan if (v := row.outcome[field.name]) is None else v for row in rows)
    recovered = torch.tensor([row.outcome.get("recovered", -1) for row in rows])
    return Outcomes(**values), recovered


def tabled_attack(
    *,
    table: RowStore,
    policy: Policy,
    victims: Split,
    profile: Profile,
    reference: nn.Module,
    device: torch.device,
    model: nn.Module | None = None,
    cache: AttackCache | None = None,
    threat: ThreatModel | None = None,
    attacker: str = "naive",
    lineup: Split | None = None,
    progress: bool = False,
) -> AttackResult:
    """`evaluation.evaluate.attack_policy` through the attack table: victims whose rows are stored are not
    attacked again; the rest are attacked and judged as usual, and their rows stored. Reconstructions come from
    the local attack cache; where it lacks one, the result's images are NaN (its numbers are all there)."""
    model = (model or build_model(width=profile.width, norm=profile.norm, seed=profile.seed)).to(device).eval()
    transformed = transform_split(victims, policy, seed=profile.seed)
    keys, _ = attack_keys(
        policy=policy, victims=victims, transformed=transformed, profile=profile, model=model, attacker=attacker
    )
    judge = model_digest(reference, length=DIGEST_LENGTH)
    problems = [
        Problem(attack=key, cell=str(policy.cells[y]), attacker=attacker, judge=judge)
        for key, y in zip(keys, victims.labels.tolist(), strict=True)
    ]
    stored = table.read(problems)
    common = dict(policy=policy, victims=victims, profile=profile, device=device, model=model, attacker=attacker)
    if len(stored) < len(problems) or (cache is not None and all(cache.get(k) is not None for k in keys)):
        found = reconstruct_policy(**common, cache=cache, threat=threat, progress=progress)
        fresh = judge_reconstructions(found, profile=profile, reference=reference, device=device, lineup=lineup)
        rows = rows_of(fresh, problems=problems, recovered=found.recovered)
        table.write([row for row in rows if row.problem.key not in stored])
        if not stored:
            return fresh
        images, seconds, cached = fresh.reconstructions, fresh.seconds, fresh.cached
        rows = [stored.get(row.problem.key, row) for row in rows]
    else:  # every number is stored, and the images are not here
        images = torch.full(victims.images.shape, math.nan)
        seconds, cached, rows = 0.0, len(problems), [stored[p.key] for p in problems]
    outcomes, recovered = joined(rows)
    return attack_result(
        outcomes,
        recovered=recovered,
        lineup=0 if lineup is None else len(lineup),
        victims=victims,
        transformed=transformed,
        reconstructions=images,
        seconds=seconds,
        cached=cached,
        judge=judge,
    )


def _jsonable(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value
