"""Findings a reader can check: per-victim export, and the ledger recomputed from it (issue #31)."""

from __future__ import annotations

import csv
import importlib.util
import shutil
import sys
from pathlib import Path

import optuna
import pytest

from autoshield.cli import main
from autoshield.data.cifar import CLASSES
from autoshield.privacy.paired import compare, holm
from autoshield.report.victims import COLUMNS
from autoshield.study.records import EvaluationRecord
from autoshield.study.storage import open_storage

ROOT = Path(__file__).resolve().parent.parent


def _recompute():
    """benchmarks/recompute.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("recompute", ROOT / "benchmarks" / "recompute.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["recompute"] = module
    spec.loader.exec_module(module)
    return module


recompute = _recompute()


@pytest.fixture
def grid(worst_grid) -> Path:
    """The shared smoke grid of Identity, Rotate:9 and Invert, scored by all four attackers."""
    return worst_grid


def _records(db: Path) -> dict[str, EvaluationRecord]:
    study = optuna.load_study(study_name="autoshield-grid", storage=open_storage(f"sqlite:///{db}", heartbeat=False))
    return {
        str(r.policy): r
        for r in map(EvaluationRecord.read, study.get_trials(states=[optuna.trial.TrialState.COMPLETE]))
    }


def _export(db: Path, path: Path) -> list[dict[str, str]]:
    assert main(["export", "--victims", "-o", str(path), "--storage", f"sqlite:///{db}"]) == 0
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_export_writes_one_row_per_victim_and_attacker(grid, tmp_path, capsys):
    rows = _export(grid, tmp_path / "victims.csv")
    assert "victim rows from 12 attacks" in capsys.readouterr().out  # 3 cells x 4 attackers
    assert tuple(rows[0]) == COLUMNS
    records = _records(grid)
    assert len(rows) == sum(len(o.victims) for r in records.values() for o in (a.outcomes for a in r.attacks.values()))
    for policy, record in records.items():
        for attacker, attack in record.attacks.items():
            mine = [r for r in rows if r["source"] == policy and r["attacker"] == attacker]
            assert [int(r["index"]) for r in mine] == list(attack.outcomes.victims)
            assert [r["recognised"] == "1" for r in mine] == list(attack.outcomes.recognised)
            assert all(r["cell"] == policy and r["slot"] == "0" for r in mine)  # smoke scores pool slot 0
            for row in mine:  # the judge's verdict and its confidence agree: recognised means the true label won
                assert (row["judged"] == row["label"]) == (row["recognised"] == "1")
                assert 0 <= float(row["p_true"]) <= 1
                assert 1 <= int(row["rank"]) <= 100  # smoke's line-up: the pool's 10 slots of 10 labels
    assert {r["sign_right"] for r in rows if r["source"] == "Rotate:9" and r["attacker"] == "adaptive"} <= {"0", "1"}
    assert {r["label"] for r in rows} == set(CLASSES)


@pytest.mark.parametrize("where", ["no-study", "empty", "unwritable"])
def test_export_victims_bad_input_is_one_line(grid, tmp_path, where, capsys):
    study, output, db = "autoshield", tmp_path / "v.csv", tmp_path / "s.db"
    shutil.copy(grid, db)  # the shared study stays as it was
    if where == "no-study":
        study = "nothing"
    if where == "empty":
        storage = open_storage(f"sqlite:///{db}", heartbeat=False)
        optuna.create_study(study_name="empty-grid", storage=storage, directions=["maximize", "minimize"])
        study = "empty"
    if where == "unwritable":
        (tmp_path / "a-file").write_text("")
        output = tmp_path / "a-file" / "v.csv"
    assert main(["export", "--victims", "-o", str(output), "--storage", f"sqlite:///{db}", "--study", study]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert {"no-study": "no study", "empty": "no per-victim attack results", "unwritable": "is a file"}[where] in err
    assert not output.exists()


def test_the_ledger_recomputes_on_main():
    """Every k/n, p and status in benchmarks/findings.toml, and FINDINGS.md's tables, as committed."""
    assert recompute.main([]) == 0


def _claim(**values) -> dict:
    base = {
        "id": "c",
        "topic": "t",
        "claim": "the arm protects",
        "direction": "fewer",
        "arm": "arm",
        "baseline": "Identity",
        "family": "f",
        "confirmed_by": "",
        "why": "",
        "attacker": "naive",
        "judge": "smoke judge",
        "profile": "smoke",
        "fingerprint": "-",
        "slots": "0",
        "command": "autoshield grid",
        "date": "2026-12-03",
        "commit": "-",
        "machine": "test",
        "report": "-",
        "victims_csv": "",
        "pairs": "counted from the test's records",
    }
    return {**base, **values}


def _toml(claims: list[dict], families: tuple[str, ...] = ("f",)) -> str:
    def value(v) -> str:
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        if isinstance(v, bool):
            return "true" if v else "false"
        return f'"{v}"' if isinstance(v, str) else repr(v)

    text = "".join(f'[[family]]\nid = "{f}"\ntitle = "a family"\nwhy = "a test"\n\n' for f in families)
    for claim in claims:
        text += "[[claim]]\n" + "".join(f"{k} = {value(v)}\n" for k, v in claim.items()) + "\n"
    return text


def _check(folder: Path, claims: list[dict], families: tuple[str, ...] = ("f",)) -> list[str]:
    (folder / "findings.toml").write_text(_toml(claims, families))
    return recompute.check(*recompute.load(folder / "findings.toml"), root=folder)


def _paired_claim(db: Path) -> dict:
    """Rotate:9 against Identity under the naive attacker, counted from the stored records (not from the CSV)."""
    records = _records(db)
    test = compare(records["Rotate:9"].attacks["naive"].outcomes, records["Identity"].attacks["naive"].outcomes)
    significant = test.only_baseline > test.only_cell and test.p_mcnemar < 0.05
    return _claim(
        k=test.cell_recognised,
        n=test.n,
        baseline_k=test.baseline_recognised,
        baseline_n=test.n,
        only_arm=test.only_cell,
        only_baseline=test.only_baseline,
        p=recompute.two_digits(test.p_mcnemar),
        p_family=recompute.two_digits(test.p_mcnemar),
        status="withheld" if significant else "not supported",
        why="ten victims: an anecdote",
        victims_csv="victims.csv",
        arm_rows={"source": "Rotate:9", "attacker": "naive"},
        baseline_rows={"source": "Identity", "attacker": "naive"},
    )


def test_recompute_follows_the_per_victim_file_and_fails_on_one_altered_verdict(grid, tmp_path):
    rows = _export(grid, tmp_path / "victims.csv")
    claim = _paired_claim(grid)
    assert _check(tmp_path, [claim]) == []
    findings = tmp_path / "FINDINGS.md"
    findings.write_text(f"# Findings\n\n{recompute.BEGIN}\n{recompute.END}\n\nprose after\n")
    args = ["--ledger", str(tmp_path / "findings.toml"), "--findings", str(findings), "--root", str(tmp_path)]
    assert recompute.main([*args, "--write"]) == 0
    assert recompute.main(args) == 0 and "prose after" in findings.read_text()
    altered = next(r for r in rows if r["source"] == "Rotate:9" and r["attacker"] == "naive")
    altered["recognised"] = "0" if altered["recognised"] == "1" else "1"
    with (tmp_path / "victims.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    problems = _check(tmp_path, [claim])
    assert any("the per-victim file gives" in p for p in problems), problems
    assert recompute.main(args) == 1


def test_recompute_counts_the_declared_endpoint_singled_out_from_the_line_up_rank(grid, tmp_path):
    _export(grid, tmp_path / "victims.csv")
    records = _records(grid)
    arm, base = (records[cell].attacks["naive"].outcomes for cell in ("Rotate:9", "Identity"))
    first = [(a == 1, b == 1) for a, b in zip(arm.rank, base.rank, strict=True)]
    b, c = sum(x and not y for x, y in first), sum(y and not x for x, y in first)
    p = recompute.two_digits(recompute.mcnemar_exact(b, c))
    claim = _paired_claim(grid)
    claim.update(k=sum(x for x, _ in first), baseline_k=sum(y for _, y in first), only_arm=b, only_baseline=c, p=p)
    claim.update(p_family=p, endpoint="singled out", status="not supported", why="ten victims: an anecdote")
    if b < c and p < 0.05:
        claim["status"] = "withheld"
    assert _check(tmp_path, [claim]) == []
    assert "singled out: arm" in recompute.render(*recompute.load(tmp_path / "findings.toml"))
    assert any("endpoint 'psnr' is not one of" in p for p in _check(tmp_path, [{**claim, "endpoint": "psnr"}]))
    moved = {**claim, "k": claim["k"] + 1, "only_arm": b + 1}  # the judge's count where the ranks were declared
    assert any("the per-victim file gives" in p for p in _check(tmp_path, [moved]))


def test_recompute_catches_a_misread_p_a_short_family_and_an_unearned_status(tmp_path):
    # 5/18 discordant gives 0.011, not the 0.0072 of 4/17
    slip = _claim(k=19, n=50, baseline_k=32, baseline_n=50, only_arm=5, only_baseline=18, p=0.0072, p_family=0.0072)
    slip["status"], slip["why"] = "withheld", "not confirmed"
    assert any("McNemar on 5/18 gives 0.011" in p for p in _check(tmp_path, [slip]))
    claims = []  # eight cells of one family, stated as if Holm had run over six
    for i, (b, c) in enumerate([(0, 16), (3, 13), (4, 8), (5, 8), (5, 5), (2, 2), (0, 0), (1, 1)]):
        claims.append(_claim(id=f"c{i}", k=10 + b, n=50, baseline_k=10 + c, baseline_n=50, only_arm=b, only_baseline=c))
        p = recompute.mcnemar_exact(b, c)
        claims[-1].update(p=recompute.two_digits(p), p_family=recompute.two_digits(min(1.0, p * 6)))
    adjusted = holm([recompute.mcnemar_exact(c["only_arm"], c["only_baseline"]) for c in claims])
    for claim, p in zip(claims, adjusted, strict=True):
        claim["status"] = "withheld" if p < 0.05 else "not supported"
        claim["why"] = "unconfirmed" if p < 0.05 else "not significant over the family"
    problems = _check(tmp_path, claims)
    assert any("c1: p_family" in p and "Holm over f (8)" in p for p in problems), problems
    for claim, p in zip(claims, adjusted, strict=True):
        claim["p_family"] = recompute.two_digits(p)
    assert _check(tmp_path, claims) == []
    claims[0]["status"] = "supported"  # significant, but never re-tested on fresh victims
    assert any("c0: status is 'supported'; its numbers give 'withheld'" in p for p in _check(tmp_path, claims))
    confirmation = _claim(id="fresh", family="g", k=5, n=50, baseline_k=14, baseline_n=50, only_arm=1, only_baseline=10)
    confirmation.update(p=recompute.two_digits(recompute.mcnemar_exact(1, 10)), status="supported", fresh=True)
    confirmation["p_family"] = confirmation["p"]
    claims[0]["confirmed_by"] = "fresh"
    assert _check(tmp_path, [*claims, confirmation], families=("f", "g")) == []


def test_recompute_refuses_a_self_confirmation_an_ambiguous_selection_and_a_malformed_ledger(grid, tmp_path):
    claim = _claim(k=5, n=50, baseline_k=14, baseline_n=50, only_arm=1, only_baseline=10, fresh=False)
    claim.update(p=recompute.two_digits(recompute.mcnemar_exact(1, 10)), status="supported", confirmed_by="c")
    claim["p_family"] = claim["p"]
    assert any("confirmed_by must name another claim" in p for p in _check(tmp_path, [claim]))
    _export(grid, tmp_path / "victims.csv")
    paired = _paired_claim(grid)
    paired["arm_rows"] = {"source": "Rotate:9"}  # four attackers' rows for each victim
    assert any("arm_rows selects 40 rows for 10 victims" in p for p in _check(tmp_path, [paired]))
    malformed = {**claim, "only_arm": -2, "confirmed_by": "", "status": "withheld", "why": "unconfirmed"}
    assert any("only_arm and only_baseline are counts" in p for p in _check(tmp_path, [malformed]))
    (tmp_path / "findings.toml").write_text('family = "x"\n')
    with pytest.raises(SystemExit, match="family must be an array of tables"):
        recompute.load(tmp_path / "findings.toml")
    (tmp_path / "findings.toml").write_text(_toml([{**claim, "k": "2"}]))
    with pytest.raises(SystemExit, match="k must be int"):
        recompute.load(tmp_path / "findings.toml")
