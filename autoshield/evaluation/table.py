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
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from autoshield.core.config import Profile
from autoshield.core.runtime import phase
from autoshield.data.cifar import Split
from autoshield.data.policy import Policy, transform_split
from autoshield.evaluation.judge import AttackResult, attack_result, judge_reconstructions
from autoshield.evaluation.reconstruct import attack_keys, inverts_through, reconstruct_policy
from autoshield.learn.models import build_model
from autoshield.privacy.cache import AttackCache, model_digest
from autoshield.privacy.judge_file import DIGEST_LENGTH
from autoshield.privacy.learned import LearnedInverse
from autoshield.privacy.paired import Outcomes
from autoshield.privacy.threat import ThreatModel

WAIT_SECONDS = 5.0  # between looks at rows (or a builder's chunks) that another worker is computing


@dataclass(frozen=True)
class Problem:
    """What one row's result depends on: `attack` is the attack cache's key; the cell and the attacker say what was
    done with the reconstruction (the learned attacker's name carries its network's recipe), and `judge` who scored
    it."""

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
    seconds: float  # its attack's share of the wall time of the batch that computed it (0: unknown)


class RowStore(Protocol):
    """Where rows are kept: `study.attack_table` on the study's storage."""

    def read(self, problems: Sequence[Problem]) -> dict[str, Row]:
        """The stored rows of `problems`, by key."""
        ...

    def write(self, rows: Sequence[Row]) -> int:
        """Store `rows`, keeping any row already stored; returns how many were new."""
        ...

    def claim(self, keys: Sequence[str]) -> list[str]:
        """Of the attack keys `keys`, those this process may attack: no other live worker holds or has finished
        them."""
        ...

    def unfinished(self, keys: Sequence[str]) -> list[str]:
        """Of the attack keys `keys`, those no worker has finished."""
        ...

    def finish(self, keys: Sequence[str]) -> None:
        """This process's claims on the attack keys `keys` are done: their rows are stored."""
        ...

    def holding(self) -> AbstractContextManager[None]:
        """Keep this process's claims live while the block runs (a heartbeat)."""
        ...


def rows_of(
    result: AttackResult,
    *,
    problems: Sequence[Problem],
    recovered: torch.Tensor,
    costs: torch.Tensor,
    provenance: Sequence[dict[str, str]] = (),
) -> list[Row]:
    """`result`'s outcomes split into one row per victim (problems in victim order, one image each), each with
    what its attack cost when it was computed (`Reconstructions.costs`): a table build's rows come from its cache,
    and still say what they cost. `provenance`, per victim: what else its row records (the learned attacker's
    network, `LearnedInverse.provenance`)."""
    n = len(problems)
    columns = {f.name: getattr(result.outcomes, f.name) for f in dataclasses.fields(Outcomes)}
    return [
        Row(
            problem=problem,
            outcome={
                **{name: _jsonable(values[i]) for name, values in columns.items() if len(values) == n},
                "recovered": int(recovered[i]),
                **(provenance[i] if provenance else {}),
            },
            seconds=float(costs[i]),
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
    inverse: LearnedInverse | None = None,
    lineup: Split | None = None,
    as_victims: Split | None = None,
    progress: bool = False,
) -> AttackResult:
    """`evaluation.evaluate.attack_policy` through the attack table: victims whose rows are stored are not
    attacked again; the rest are attacked and judged as usual, and their rows stored. Reconstructions come from
    the local attack cache; where it lacks one, the result's images are NaN (its numbers are all there).
    `as_victims`: the victims the reconstructions are scored as, position by position (the null's,
    `evaluation.null`: `victims` are then the decoys); its rows are named `null:<attacker>`."""
    model = (model or build_model(width=profile.width, norm=profile.norm, seed=profile.seed)).to(device).eval()
    transformed = transform_split(victims, policy, seed=profile.seed)
    scored = victims if as_victims is None else as_victims
    keys, _ = attack_keys(
        policy=policy,
        victims=victims,
        transformed=transformed,
        profile=profile,
        model=model,
        attacker=attacker,
        inverse=inverse,
    )
    judge = model_digest(reference, length=DIGEST_LENGTH)
    learned = inverse if attacker == "learned" else None
    # an adaptive attacker with nothing to invert through is the naive attack (the same key): it reads its rows
    own = "naive" if attacker == "adaptive" and not inverts_through(policy, attacker) else attacker
    named = lambda cell: learned.name(cell) if learned else own  # noqa: E731
    problems = [
        Problem(
            attack=key,
            cell=str(policy.cells[y]),
            attacker=named(policy.cells[y]) if as_victims is None else f"null:{named(policy.cells[y])}",
            judge=judge,
        )
        for key, y in zip(keys, victims.labels.tolist(), strict=True)
    ]
    common = dict(
        policy=policy, profile=profile, device=device, model=model, attacker=attacker, inverse=inverse, threat=threat
    )

    stored, spent, computed, only = table.read(problems), 0.0, 0, None
    images = torch.full(victims.images.shape, math.nan)  # the reconstructions this worker makes, where it makes them
    step = profile.attack.batch_size
    with table.holding() if len(stored) < len(problems) else nullcontext():
        # the attack is claimed, not the row, as `table build` claims it: what this worker claims, it computes; what
        # another worker holds, it waits for. An attack finished elsewhere without this attacker's row (a build or
        # trial under another attacker) is computed here too: its reconstruction is in the other machine's cache.
        while missing := [i for i, problem in enumerate(problems) if problem.key not in stored]:
            attacks = sorted({problems[i].attack for i in missing})
            mine = set(table.claim(attacks))
            ready = mine | (set(attacks) - set(table.unfinished(attacks)))
            # a worker writes its rows before it finishes its claim: one finished since `stored` was read has rows
            # that the read missed, and attacking it again would be a silent double attack
            stored = table.read(problems) if ready - mine else stored
            chosen = [i for i in missing if problems[i].attack in ready and problems[i].key not in stored]
            if not chosen:
                phase(f"waiting for {len(missing)} victims' rows that another worker is computing")
                time.sleep(WAIT_SECONDS)
            for start in range(0, len(chosen), step):  # stored batch by batch: a stopped worker loses one batch
                group = chosen[start : start + step]
                part = victims if len(group) == len(victims) else victims.take(group)
                found = reconstruct_policy(**common, victims=part, cache=cache, progress=progress)
                if as_victims is not None:  # each reconstruction scored as its victim's
                    mapped = as_victims.take(group)
                    found = dataclasses.replace(
                        found, victims=mapped, transformed=transform_split(mapped, policy, seed=profile.seed)
                    )
                result = judge_reconstructions(
                    found, profile=profile, reference=reference, device=device, lineup=lineup
                )
                batch = [problems[i] for i in group]
                kept = [learned.provenance(policy.cells[y]) for y in part.labels.tolist()] if learned else ()
                rows = rows_of(result, problems=batch, recovered=found.recovered, costs=found.costs, provenance=kept)
                table.write(rows)
                table.finish(sorted({p.attack for p in batch} & mine))
                images[group] = found.images
                only = result if len(group) == len(problems) else None
                spent, computed = spent + result.seconds, computed + len(group)
            stored = table.read(problems)
    if only is not None:  # one batch of this worker's computed every row
        return only
    rows, cached = [stored[p.key] for p in problems], len(problems) - computed
    if cache is not None and all(cache.holds(k) for k in keys):  # the images are here: read, not attacked or judged
        images = reconstruct_policy(**common, victims=victims, cache=cache).images.nan_to_num(0.0)
    elif computed < len(problems):  # every number is stored, and some images are not here
        images = torch.full(victims.images.shape, math.nan)
    outcomes, recovered = joined(rows)
    return attack_result(
        outcomes,
        recovered=recovered,
        lineup=0 if lineup is None else len(lineup),
        victims=scored,
        transformed=transformed if as_victims is None else transform_split(scored, policy, seed=profile.seed),
        reconstructions=images,
        seconds=spent,
        cached=cached,
        judge=judge,
    )


def _jsonable(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value
