"""The attack table lives in the study's storage, once per problem, and moves between machines as a checked file
(issue #35)."""

from __future__ import annotations

import gzip
import multiprocessing
import types
import uuid
from pathlib import Path

import pytest
import torch

from autoshield.cli import main
from autoshield.core.config import load_profile
from autoshield.core.errors import AutoshieldError
from autoshield.data.policy import Policy
from autoshield.evaluation.evaluate import attack_policy, attack_with, victims
from autoshield.evaluation.lineup import pool_lineup
from autoshield.evaluation.prefill import pending, prefill
from autoshield.evaluation.reconstruct import reconstruct_policy
from autoshield.evaluation.table import Problem, Row
from autoshield.privacy.cache import AttackCache
from autoshield.privacy.reference import reference_classifier
from autoshield.study import claims
from autoshield.study.attack_table import StudyTable, all_rows, read_rows, write_rows
from autoshield.study.records import EvaluationRecord
from autoshield.study.table_file import TableIdentity, export_table, import_table, read_table_file

from .conftest import kill_when
from .test_distributed import POSTGRES, _cli, needs_postgres
from .test_study import _args, _trials

CPU = torch.device("cpu")
KINDS = ["sqlite", "journal", pytest.param("postgres", marks=needs_postgres)]


def _url(kind: str, tmp_path, name: str = "s") -> str:
    return {"sqlite": f"sqlite:///{tmp_path / f'{name}.db'}", "journal": f"journal:{tmp_path / f'{name}.log'}"}.get(
        kind, POSTGRES
    )


def _rows(judge: str, n: int = 6) -> list[Row]:
    """`n` victims' results under two cells, the first victim's metrics failed (None, as stored)."""
    rows = []
    for i in range(n):
        problem = Problem(
            attack=f"{judge}-attack-{i}", cell="Solarize:9" if i % 2 else "Identity", attacker="naive", judge=judge
        )
        outcome = {
            "victims": i,
            "labels": i % 10,
            "recognised": bool(i % 3),
            "psnr_original": None if i == 0 else 18.5 + i,
        }
        rows.append(Row(problem=problem, outcome=outcome, seconds=1.25 * i))
    return rows


@pytest.mark.parametrize("kind", KINDS)
def test_a_problem_is_stored_once_and_read_back_as_written(tmp_path, kind):
    url, judge = _url(kind, tmp_path), uuid.uuid4().hex
    rows = _rows(judge)
    assert read_rows(url=url, problems=[r.problem for r in rows]) == {}  # no table yet: nothing, not an error
    assert write_rows(url=url, rows=rows[:4]) == 4
    assert write_rows(url=url, rows=rows) == 2  # the first four are kept as they were
    found = read_rows(url=url, problems=[r.problem for r in rows])
    assert found == {r.problem.key: r for r in rows}
    assert [r.problem.key for r in all_rows(url=url, judge=judge)] == sorted(r.problem.key for r in rows)


def _write(url: str, rows: list[Row], out) -> None:
    out.put(write_rows(url=url, rows=rows))


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=needs_postgres)])
def test_two_workers_writing_the_same_problems_store_each_once(tmp_path, kind):
    url, judge = _url(kind, tmp_path), uuid.uuid4().hex
    rows = _rows(judge, 40)
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    workers = [context.Process(target=_write, args=(url, rows, out)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [w.exitcode for w in workers] == [0, 0]
    assert sum(out.get(timeout=10) for _ in workers) == 40  # every problem inserted by exactly one of them
    assert len(list(all_rows(url=url, judge=judge))) == 40


def test_a_table_moves_to_another_study_through_a_file(tmp_path):
    judge = uuid.uuid4().hex
    identity = TableIdentity(data="d" * 16, judge=judge, settings="s" * 16)
    first, second = _url("sqlite", tmp_path, "a"), _url("journal", tmp_path, "b")
    rows = _rows(judge)
    write_rows(url=first, rows=rows)
    write_rows(url=first, rows=_rows(uuid.uuid4().hex, 3))  # another judge's rows stay behind
    path = tmp_path / "table.jsonl.gz"
    assert export_table(url=first, path=path, identity=identity) == 6
    moved = import_table(url=second, path=path, identity=identity)
    assert (moved.rows, moved.new) == (6, 6)
    assert list(all_rows(url=second)) == sorted(rows, key=lambda r: r.problem.key)
    assert import_table(url=second, path=path, identity=identity).new == 0  # importing twice adds nothing


def _exported(tmp_path: Path) -> tuple[str, TableIdentity, Path]:
    """A SQLite table of six rows and its export: (url, identity, file)."""
    identity = TableIdentity(data="d" * 16, judge=uuid.uuid4().hex, settings="s" * 16)
    url = _url("sqlite", tmp_path)
    write_rows(url=url, rows=_rows(identity.judge))
    path = tmp_path / "t.gz"
    export_table(url=url, path=path, identity=identity)
    return url, identity, path


@pytest.mark.parametrize("field", ["data", "judge", "settings"])
def test_an_import_of_another_identity_is_refused_in_one_line(tmp_path, field):
    _, identity, path = _exported(tmp_path)
    other = TableIdentity(**{**identity.__dict__, field: "x" * 16})
    target = _url("sqlite", tmp_path, "target")
    with pytest.raises(AutoshieldError, match=f"holds attacks of another {field}") as refused:
        import_table(url=target, path=path, identity=other)
    assert "\n" not in str(refused.value)
    assert list(all_rows(url=target)) == []


def test_a_damaged_or_foreign_file_is_refused(tmp_path):
    url, identity, path = _exported(tmp_path)
    text = gzip.decompress(path.read_bytes())
    damaged = tmp_path / "damaged.gz"
    damaged.write_bytes(gzip.compress(text.replace(b"Solarize:9", b"Solarize:8", 1)))
    with pytest.raises(AutoshieldError, match="is damaged: its rows do not match the checksum"):
        read_table_file(damaged)
    plain = tmp_path / "plain.csv"
    plain.write_text("victim,recognised\n1,0\n")
    with pytest.raises(AutoshieldError, match="is not an attack table"):
        read_table_file(plain)
    foreign = tmp_path / "foreign.gz"
    foreign.write_bytes(gzip.compress(b'{"format": "something else"}\n'))
    with pytest.raises(AutoshieldError, match="no autoshield-attack-table header"):
        read_table_file(foreign)
    with pytest.raises(AutoshieldError, match="no table file at"):
        read_table_file(tmp_path / "missing.gz")
    with pytest.raises(AutoshieldError, match="cannot write"):
        export_table(url=url, path=tmp_path / "plain.csv" / "t.gz", identity=identity)


def test_an_attack_through_the_table_is_computed_once_for_every_machine(data, tmp_path):
    """A second machine (its own empty cache) reads every victim's numbers from the study's table and attacks
    nothing; the first machine, whose cache holds the reconstructions, gets its images back with the same numbers.
    Every attacker's rows are its own."""
    profile = load_profile("smoke", overrides=("attack.iterations=30",))
    reference = reference_classifier(data, profile, device=CPU).model
    table = StudyTable(f"sqlite:///{tmp_path / 's.db'}")
    policy = Policy.parse("Solarize:9")
    kwargs = dict(policy=policy, victims=victims(data, profile), profile=profile, reference=reference, device=CPU)
    lineup = pool_lineup(data.train, profile)
    first = attack_with(["naive", "posthoc"], **kwargs, cache=AttackCache(tmp_path / "a"), lineup=lineup, table=table)
    assert first["naive"].seconds > 0 and len(list(all_rows(url=table.url))) == 20
    elsewhere = attack_policy(**kwargs, cache=AttackCache(tmp_path / "b"), lineup=lineup, table=table)
    assert elsewhere.seconds == 0 and elsewhere.cached == 10 and not list((tmp_path / "b").rglob("*.pt"))
    assert elsewhere.outcomes == first["naive"].outcomes and elsewhere.overall == first["naive"].overall
    assert torch.isnan(elsewhere.reconstructions).all()  # the numbers travel, the images do not
    back = attack_policy(**kwargs, cache=AttackCache(tmp_path / "a"), attacker="posthoc", lineup=lineup, table=table)
    assert back.outcomes == first["posthoc"].outcomes
    assert torch.equal(back.reconstructions, first["posthoc"].reconstructions)
    assert back.outcomes != first["naive"].outcomes


def test_a_trial_waits_for_the_attack_a_builder_elsewhere_holds_and_attacks_nothing(data, tmp_path, monkeypatch):
    """A builder on another machine has claimed a chunk's attacks (by attack key) and is computing them. A trial
    that needs the same victims, with its own cache, waits for the builder's rows instead of attacking: its claim
    names the same attack, not a row of its own. The builder's held table leaves the finishing to the builder."""
    profile = load_profile("smoke", overrides=("attack.iterations=20",))
    reference = reference_classifier(data, profile, device=CPU).model
    url = f"sqlite:///{tmp_path / 's.db'}"
    policy = Policy.parse("Solarize:9")
    scored = victims(data, profile)
    kwargs = dict(policy=policy, victims=scored, profile=profile, reference=reference, device=CPU)
    keys = [q.key for q in pending(policies=[policy], victims=scored, profile=profile, cache=AttackCache(tmp_path))]
    elsewhere = "another-boot:1:elsewhere"
    assert claims.claim(url=url, keys=keys, owner=elsewhere) == keys
    built = []

    def builder_at_work(_: float) -> None:
        """The trial's first wait: meanwhile the builder computes its chunk's rows, then marks it done."""
        if not built:
            held = StudyTable(url, owner=elsewhere, held=True)
            built.append(attack_policy(**kwargs, cache=AttackCache(tmp_path / "builder"), table=held))
            assert claims.unfinished(url=url, keys=keys) == keys  # the rows are in; the builder finishes, not them
            claims.finish(url=url, keys=keys, owner=elsewhere)

    monkeypatch.setattr("autoshield.evaluation.table.time", types.SimpleNamespace(sleep=builder_at_work))
    waited = attack_policy(**kwargs, cache=AttackCache(tmp_path / "trial"), table=StudyTable(url))
    assert built and not list((tmp_path / "trial").rglob("*.pt"))  # the trial waited and attacked nothing
    assert waited.outcomes == built[0].outcomes


def test_a_grid_on_another_machine_reads_the_exported_table_and_attacks_nothing(
    tmp_path, data_root, space, monkeypatch, capsys
):
    """Machine A runs a grid and exports its table; machine B (its own storage and cache, the same judge since it
    retrains it alike) imports the file before its grid, whose trials then attack nothing and score as A's did.
    An export under another profile is refused in one line."""
    file = tmp_path / "table.jsonl.gz"
    grids = {}
    for machine in ("a", "b"):
        monkeypatch.setenv("AUTOSHIELD_CACHE", str(tmp_path / f"cache-{machine}"))
        db = tmp_path / f"{machine}.db"
        short = ("--set", "attack.iterations=10")
        store = ["--storage", f"sqlite:///{db}", "--profile", "smoke", "--data-root", str(data_root), *short]
        if machine == "b":
            assert main(["table", "import", str(file), *store]) == 0
            out = capsys.readouterr().out  # 3 cells x 10 victims, all new to B's table
            assert "30 rows read from" in out and ", 30 new to the attack table" in out
        assert main(_args("grid", db, data_root, space, *short, "--n-jobs", "1")) == 0
        if machine == "a":
            assert main(["table", "export", str(file), *store, "--set", "attack.restarts=2"]) == 2
            assert "made with another profile" in capsys.readouterr().err
            assert main(["table", "export", str(file), *store]) == 0
            assert "30 rows of study 'autoshield'" in capsys.readouterr().out
        grids[machine] = sorted(tuple(t.values) for t in _trials(db, "autoshield-grid"))
    assert not list((tmp_path / "cache-b" / "attacks").rglob("*.pt"))  # B attacked nothing
    assert grids["a"] == grids["b"] and len(grids["a"]) == 3


def test_a_batch_that_mixes_cells_reconstructs_as_each_cell_alone(data, tmp_path):
    """The chunks of `table build` mix cells and cut across them; each problem still ends where a trial attacking
    its cell alone ends, to float tolerance, and under the key that trial looks up."""
    profile = load_profile("smoke", overrides=("attack.iterations=15", "attack.batch_size=7"))
    scored = victims(data, profile)
    policies = [Policy.identity(), Policy.parse("Solarize:9"), Policy.parse("Rotate:9")]
    mixed = AttackCache(tmp_path / "mixed")
    todo = pending(policies=policies, victims=scored, profile=profile, cache=mixed)
    assert len(todo) == 30
    done = []
    prefill(todo, profile=profile, device=CPU, cache=mixed, chunk=13, on_chunk=lambda part, _: done.append(len(part)))
    assert done == [13, 13, 4] and pending(policies=policies, victims=scored, profile=profile, cache=mixed) == []
    for policy in policies:
        alone = reconstruct_policy(policy=policy, victims=scored, profile=profile, device=CPU)
        served = reconstruct_policy(policy=policy, victims=scored, profile=profile, device=CPU, cache=mixed)
        assert served.cached == 10 and served.seconds == 0
        assert torch.allclose(served.images, alone.images, atol=1e-5)
        assert torch.equal(served.restart, alone.restart)


def test_table_build_fills_what_a_grid_and_its_confirmation_then_only_read(
    tmp_path, data_root, space, monkeypatch, capsys
):
    """`build` fills the study's slots, and with `--slots` the fresh ones a confirmation will score: the grid and
    then `confirm`, on another machine (a cache of its own), only read the table."""
    db = tmp_path / "s.db"
    short = ("--set", "attack.iterations=10")
    common = ["--storage", f"sqlite:///{db}", "--profile", "smoke", "--data-root", str(data_root), *short]
    assert main(["table", "build", "--space", str(space), "--chunk", "12", *common]) == 0
    out = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    assert "3 cells x 10 victims, 30 problems to attack in chunks of 12" in out
    assert "the table holds 30 rows under this judge" in out
    assert all(row.seconds > 0 for row in all_rows(url=f"sqlite:///{db}"))  # read from the cache, costs and all
    assert main(["table", "build", "--space", str(space), *common]) == 0  # again: nothing left to attack
    assert " 0 problems to attack" in " ".join(capsys.readouterr().out.split())
    assert main(["table", "build", "--space", str(space), "--slots", "1:3", *common]) == 0
    assert "the table holds 90 rows under this judge" in " ".join(capsys.readouterr().out.split())
    assert main(["table", "build", "--space", str(space), "--slots", "9:11", *common]) == 2
    assert "do not fit a pool of 10 per label" in capsys.readouterr().err
    assert main(_args("grid", db, data_root, space, *short)) == 0
    trials = _trials(db, "autoshield-grid")
    assert len(trials) == 3
    assert all(EvaluationRecord.read(t).attack_seconds == 0 for t in trials)  # every privacy number was read
    monkeypatch.setenv("AUTOSHIELD_CACHE", str(tmp_path / "elsewhere"))
    assert main(["confirm", "--first-slot", "1", "--victims", "2", *common]) == 0
    assert not list((tmp_path / "elsewhere").rglob("*.pt"))  # every confirmation victim was read from the table


def test_an_attack_only_build_fills_the_cache_that_a_judging_build_then_only_judges(
    tmp_path, data_root, space, monkeypatch, capsys
):
    """A machine lent for minutes attacks with no study, storage or judge; its cache, moved to the machine that
    holds the study, leaves that build only judging. A later such machine skips what an exported table judged."""
    monkeypatch.setenv("AUTOSHIELD_CACHE", str(tmp_path / "lent"))
    db = tmp_path / "s.db"
    common = ["--profile", "smoke", "--data-root", str(data_root), "--set", "attack.iterations=10"]
    common += ["--storage", f"sqlite:///{db}"]
    only = ["table", "build", "--space", str(space), "--attack-only", "--chunk", "12", *common]
    assert main(only) == 0
    assert "30 problems to attack" in " ".join(capsys.readouterr().out.split())
    assert not db.exists() and len(list((tmp_path / "lent").rglob("*.pt"))) == 30
    assert main(["table", "build", "--space", str(space), *common]) == 0  # the study's machine: its cache, moved
    out = " ".join(capsys.readouterr().out.split())
    assert " 0 problems to attack" in out and "the table holds 30 rows under this judge" in out
    assert main(["table", "export", str(tmp_path / "t.gz"), *common]) == 0
    monkeypatch.setenv("AUTOSHIELD_CACHE", str(tmp_path / "lent-again"))  # a fresh machine: nothing cached
    assert main([*only, "--skip", str(tmp_path / "t.gz")]) == 0
    assert " 0 problems to attack" in " ".join(capsys.readouterr().out.split())
    (tmp_path / "bad.gz").write_bytes(b"not a table")
    assert main([*only, "--skip", str(tmp_path / "bad.gz")]) == 2
    assert main(["table", "build", "--space", str(space), *common, "--skip", str(tmp_path / "t.gz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "is not an attack table" in err[0] and "--skip goes with --attack-only" in err[1] and len(err) == 2


def test_a_killed_build_resumes_losing_at_most_the_chunk_in_flight(tmp_path, data_root, space, monkeypatch, capsys):
    cache = tmp_path / "cache"
    monkeypatch.setenv("AUTOSHIELD_CACHE", str(cache))
    common = ["--storage", f"sqlite:///{tmp_path / 's.db'}", "--profile", "smoke", "--data-root", str(data_root)]
    build = ["table", "build", "--space", str(space), "--chunk", "5", *common, "--set", "attack.iterations=40"]

    def attacked() -> int:
        return len(list((cache / "attacks").rglob("*.pt"))) if (cache / "attacks").exists() else 0

    kill_when(_cli(*build), lambda: attacked() >= 10)
    kept = attacked()
    assert 10 <= kept < 30  # what each finished chunk attacked is cached; the chunk in flight is what is lost
    assert main(build) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"{30 - kept} problems to attack" in out and "the table holds 30 rows" in out  # nothing cached redone


def test_a_killed_build_keeps_every_finished_batch_of_its_adaptive_pass(tmp_path, data_root, monkeypatch, capsys):
    """The adaptive attack is not mixed into naive chunks; it runs policy by policy after them, and stores its rows
    batch by batch (`attack.batch_size`), so a build stopped there loses only the batch in flight, not the policy's.
    Every attack through the table does so: a trial's, `attack --study`'s and the null's too."""
    monkeypatch.setenv("AUTOSHIELD_CACHE", str(tmp_path / "cache"))
    space = tmp_path / "rotate.toml"
    space.write_text('name = "rotate"\nops = ["Rotate"]\nmagnitudes = [9]\n')
    url = f"sqlite:///{tmp_path / 's.db'}"
    common = ["--storage", url, "--profile", "smoke", "--data-root", str(data_root), "--set", "attack.iterations=40"]
    common += ["--set", "attack.batch_size=5"]
    build = ["table", "build", "--space", str(space), "--attacker", "adaptive", *common]

    def adaptive() -> int:
        rows = all_rows(url=url) if (tmp_path / "s.db").exists() else []
        return sum(r.problem.attacker == "adaptive" and r.problem.cell == "Rotate:9" for r in rows)

    kill_when(_cli(*build), lambda: adaptive() >= 5)
    assert 5 <= adaptive() < 10  # the first batch's rows are stored; the one in flight is lost
    assert main(build) == 0
    # Identity's and Rotate:9's naive rows, Rotate:9's adaptive ones; Identity's adaptive attack is its naive one
    assert adaptive() == 10 and "the table holds 30 rows" in " ".join(capsys.readouterr().out.split())


def test_an_adaptive_attack_with_nothing_to_invert_reads_the_naive_attacks_rows(data, tmp_path):
    """Against Identity the adaptive attacker is the naive attack (one key): a machine with an empty cache reads
    the naive rows of a table filled before any adaptive attack instead of attacking again (a build on class B
    re-attacked 25 of the Show's victims so, 2026-12-05)."""
    profile = load_profile("smoke", overrides=("attack.iterations=20",))
    reference = reference_classifier(data, profile, device=CPU).model
    table = StudyTable(f"sqlite:///{tmp_path / 's.db'}")
    kwargs = dict(policy=Policy.identity(), victims=victims(data, profile), profile=profile, reference=reference)
    naive = attack_policy(**kwargs, device=CPU, cache=AttackCache(tmp_path / "a"), table=table)
    adaptive = attack_policy(**kwargs, device=CPU, cache=AttackCache(tmp_path / "b"), attacker="adaptive", table=table)
    assert adaptive.seconds == 0 and adaptive.outcomes == naive.outcomes
    assert {r.problem.attacker for r in all_rows(url=table.url)} == {"naive"}


def test_a_calibrated_table_build_also_fills_the_calibration_slots(tmp_path, data_root, capsys):
    """`--attacker calibrated` needs every attacker's rows on the calibration victims too (the pool's last slot at
    `smoke`): the build lists them beside the scored ones."""
    space = tmp_path / "identity.toml"
    space.write_text('name = "identity"\nops = ["Identity"]\nmagnitudes = [9]\n')
    db = tmp_path / "s.db"
    common = ["--storage", f"sqlite:///{db}", "--profile", "smoke", "--data-root", str(data_root)]
    args = ["table", "build", "--space", str(space), "--attacker", "calibrated", "--set", "attack.iterations=5"]
    assert main([*args, *common]) == 0
    assert "1 cells x 20 victims" in " ".join(capsys.readouterr().out.split())
    rows = list(all_rows(url=f"sqlite:///{db}"))
    # the learned attacker's rows are the post-hoc one's where no network undoes the cell, and the adaptive one's
    # the naive one's where it inverts through nothing, as for Identity
    assert {r.problem.attacker for r in rows} == {"naive", "posthoc"} and len(rows) == 40
    assert sorted({r.outcome["slots"] for r in rows}) == [0, 9]
