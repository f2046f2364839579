"""Builders on several machines attack each problem of a table exactly once: claims in the study's storage, taken
over only from a builder that is gone (issue #35)."""

from __future__ import annotations

import dataclasses
import os
import random
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch

from autoshield.core.config import load_profile
from autoshield.data.policy import Policy
from autoshield.evaluation.evaluate import attack_policy, victims
from autoshield.evaluation.prefill import pending
from autoshield.privacy.cache import AttackCache
from autoshield.privacy.reference import reference_classifier
from autoshield.study.attack_table import StudyTable, all_rows
from autoshield.study.claims import beat, builder_id, claim, finish, unfinished

from .test_distributed import POSTGRES, needs_postgres

KINDS = ["sqlite", pytest.param("postgres", marks=needs_postgres)]


def _url(kind: str, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'claims.db'}" if kind == "sqlite" else POSTGRES


def _elsewhere() -> str:
    """A builder on another machine: this check cannot see its process, only its beats."""
    return f"another-boot:1:{uuid.uuid4().hex[:6]}"


@pytest.mark.parametrize("kind", KINDS)
def test_a_live_claim_is_never_granted_twice_and_a_done_one_never_again(tmp_path, kind):
    url, keys = _url(kind, tmp_path), [uuid.uuid4().hex for _ in range(4)]
    first, second = _elsewhere(), builder_id()
    assert claim(url=url, keys=keys[:3], owner=first) == keys[:3]
    assert claim(url=url, keys=keys, owner=second) == keys[3:]  # the first still beats: its keys stay its own
    beat(url=url, owner=first)
    finish(url=url, keys=keys[:1], owner=first)
    assert unfinished(url=url, keys=keys) == keys[1:]
    # the first falls silent: its open claims pass to the next that asks, its finished one to no one (and the
    # second's own open claim stays the second's)
    assert claim(url=url, keys=keys, owner=second, stale=0) == keys[1:]
    finish(url=url, keys=keys[1:], owner=second)
    assert unfinished(url=url, keys=keys) == []
    assert claim(url=url, keys=keys, owner=_elsewhere(), stale=0) == []


def test_a_builder_may_claim_its_own_open_claims_again(tmp_path):
    """A trial that failed after claiming leaves its claims open; the next trial of the same worker that needs those
    rows must not wait for itself."""
    url, keys, me = _url("sqlite", tmp_path), [uuid.uuid4().hex for _ in range(2)], builder_id()
    assert claim(url=url, keys=keys, owner=me) == keys
    finish(url=url, keys=keys[:1], owner=me)
    assert claim(url=url, keys=keys, owner=me) == keys[1:]


def test_a_claim_of_a_process_gone_from_this_machine_is_taken_over_at_once(tmp_path):
    """A builder killed here (kill -9 between chunks) need not wait out the stale time to resume its own chunk."""
    url, keys = _url("sqlite", tmp_path), [uuid.uuid4().hex for _ in range(2)]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    boot = builder_id().partition(":")[0]
    assert claim(url=url, keys=keys, owner=f"{boot}:{int(dead.stdout)}:here") == keys
    assert claim(url=url, keys=keys, owner=builder_id()) == keys
    assert claim(url=url, keys=keys, owner=f"{boot}:{os.getppid()}:here") == []  # a live process keeps its own


def _two_builders(tmp_path: Path, data_root: Path, space: Path, *args: str) -> tuple[list[str], list[set[str]]]:
    """Two `table build` processes at once on one fresh PostgreSQL study, each with its own attack cache (two
    machines): what each printed, and the problems each attacked."""
    seed = random.randrange(2**31)  # a fresh judge and fresh keys in a database earlier runs wrote to
    command = [sys.executable, "-m", "autoshield.cli", "table", "build", "--space", str(space), *args]
    command += ["--storage", POSTGRES, "--study", f"claims-{uuid.uuid4().hex[:8]}", "--profile", "smoke"]
    command += ["--data-root", str(data_root), "--set", "attack.iterations=30", "--set", f"seed={seed}"]
    caches = [tmp_path / "a", tmp_path / "b"]
    # one thread each, as on two machines: two torch processes sharing the cores slow each other down tenfold
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    builders = [
        subprocess.Popen(command, env={**env, "AUTOSHIELD_CACHE": str(c)}, stdout=subprocess.PIPE, text=True)
        for c in caches
    ]
    outs = [b.communicate(timeout=600)[0] for b in builders]
    assert [b.returncode for b in builders] == [0, 0], outs
    return outs, [{p.stem for p in (c / "attacks").rglob("*.pt")} for c in caches]


@needs_postgres
def test_two_builders_with_their_own_caches_attack_each_problem_once(tmp_path, data_root, space):
    """Every problem is attacked by exactly one of two builders, and the table holds every row once."""
    outs, attacked = _two_builders(tmp_path, data_root, space, "--chunk", "10")
    assert not attacked[0] & attacked[1]  # no problem attacked on both machines
    assert len(attacked[0] | attacked[1]) == 30  # 3 cells x 10 victims, all distinct problems
    assert all("the table holds 30 rows under this judge" in " ".join(out.split()) for out in outs)
    judges = {row.problem.judge for row in all_rows(url=POSTGRES) if row.problem.attack in attacked[0] | attacked[1]}
    assert len(judges) == 1


@needs_postgres
def test_trials_claim_too_so_two_builders_attack_each_adaptive_problem_once(tmp_path, data_root, space):
    """The adaptive attack is not mixed into chunks: each builder scores it policy by policy, as a trial does
    (`evaluation.table.tabled_attack`). Those claim as well, so two builders of the worst-case table attack each
    adaptive problem once; one waits for the other's rows."""
    _, attacked = _two_builders(tmp_path, data_root, space, "--chunk", "10", "--attacker", "worst")
    assert not attacked[0] & attacked[1]  # no problem attacked on both machines
    # 3 cells x 10 victims naive, and Rotate:9's and Invert's 10 each adaptive (Identity's adaptive is its naive)
    assert len(attacked[0] | attacked[1]) == 50
    rows = [row for row in all_rows(url=POSTGRES) if row.problem.attack in attacked[0] | attacked[1]]
    # naive and post-hoc rows (the learned attacker's too: no network here), 30 each, and Rotate:9's and Invert's
    # adaptive ones; Identity's adaptive rows are its naive ones
    assert len(rows) == 80


def test_an_attack_finished_elsewhere_while_a_worker_looks_is_read_not_attacked_again(data, tmp_path):
    """A builder elsewhere holds the attacks; it writes its rows and finishes them just after a trial has read the
    table and before the trial asks what is unfinished. The trial must read those rows, not attack again: CI caught
    two worst-case builders attacking one adaptive problem twice through this gap."""
    cpu = torch.device("cpu")
    profile = load_profile("smoke", overrides=("attack.iterations=20",))
    reference = reference_classifier(data, profile, device=cpu).model
    url, elsewhere, policy = f"sqlite:///{tmp_path / 's.db'}", _elsewhere(), Policy.parse("Solarize:9")
    scored = victims(data, profile)
    kwargs = dict(policy=policy, victims=scored, profile=profile, reference=reference, device=cpu)
    keys = [q.key for q in pending(policies=[policy], victims=scored, profile=profile, cache=AttackCache(tmp_path))]
    assert claim(url=url, keys=keys, owner=elsewhere) == keys
    built = []

    @dataclasses.dataclass(frozen=True)
    class FinishedMeanwhile(StudyTable):
        def unfinished(self, keys: list[str]) -> list[str]:
            if not built:  # the builder's rows land and its claims finish between the trial's read and this ask
                held = StudyTable(url, owner=elsewhere, held=True)
                built.append(attack_policy(**kwargs, cache=AttackCache(tmp_path / "builder"), table=held))
                finish(url=url, keys=keys, owner=elsewhere)
            return super().unfinished(keys)

    trial = attack_policy(**kwargs, cache=AttackCache(tmp_path / "trial"), table=FinishedMeanwhile(url))
    assert built and not list((tmp_path / "trial").rglob("*.pt"))  # read, not attacked again
    assert trial.outcomes == built[0].outcomes and trial.cached == len(keys)
