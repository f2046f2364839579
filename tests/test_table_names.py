"""`benchmarks/table_names.py`: a table file's rows brought to today's names (learned rows by recipe; an adaptive
row that is the naive attack out of the table)."""

from __future__ import annotations

import csv
import dataclasses
import sys
from pathlib import Path

import pytest

from autoshield.core.config import load_profile
from autoshield.data.policy import Cell
from autoshield.evaluation.table import Problem, Row
from autoshield.privacy import learned
from autoshield.study.table_file import TableIdentity, read_table_file, write_table_file

ROOT = Path(__file__).resolve().parent.parent


def test_a_table_files_rows_are_brought_to_todays_names(data, tmp_path, monkeypatch, capsys):
    """`benchmarks/table_names.py`: a learned row named by its network is renamed by its recipe and keeps the
    network; an adaptive row that is a naive row's attack leaves the table for the CSV; other rows stay as they
    were, and a second run changes nothing."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import table_names

    path, identity = tmp_path / "t.jsonl.gz", TableIdentity(data=data.fingerprint, judge="j", settings="s")
    old = Row(problem=Problem("a1", "Solarize:9", "learned@61349f90d137", "j"), outcome={"x": 1}, seconds=2.0)
    naive = Row(problem=Problem("a1", "Solarize:9", "naive", "j"), outcome={"x": 0}, seconds=2.0)
    twin = Row(problem=Problem("a2", "Identity", "adaptive", "j"), outcome={"x": 5, "victims": 7}, seconds=3.0)
    alone = Row(problem=Problem("a3", "Identity", "adaptive", "j"), outcome={"x": 6}, seconds=3.0)  # no naive row
    twins_naive = dataclasses.replace(twin, problem=Problem("a2", "Identity", "naive", "j"))
    write_table_file(path=path, identity=identity, rows=[old, naive, twin, alone, twins_naive])
    monkeypatch.setattr(sys, "argv", ["table_names.py", str(path), "--profile", "smoke"])
    with pytest.raises(SystemExit, match="1 adaptive rows are the naive attack's: give --dropped"):
        table_names.main()
    dropped = tmp_path / "dropped.csv"
    monkeypatch.setattr(sys, "argv", [*sys.argv, "--dropped", str(dropped)])
    table_names.main()
    assert "1 of 4 rows renamed, 1 dropped" in capsys.readouterr().out
    header, rows = read_table_file(path)
    recipe = learned.recipe_key(cell=Cell.parse("Solarize:9"), profile=load_profile("smoke"), data=data.fingerprint)
    assert TableIdentity(**header["identity"]) == identity and naive in rows and alone in rows and twin not in rows
    new = next(r for r in rows if r.problem.attacker.startswith("learned@"))
    assert new.problem == Problem("a1", "Solarize:9", f"learned@{recipe}", "j") and new.seconds == 2.0
    assert new.outcome == {"x": 1, "network": "61349f90d137"}
    with dropped.open() as f:
        assert [(r["attacker"], r["victims"], r["x"]) for r in csv.DictReader(f)] == [("adaptive", "7", "5")]
    table_names.main()
    assert "0 of 4 rows renamed, 0 dropped" in capsys.readouterr().out
