"""Bring a table file's rows to today's names, in place (two rules, both of 2026-12-05).

- **The learned attacker by its recipe.** A learned row was named by its network's weights (`learned@<digest>`).
  One recipe trains other weights on each machine class (class C 90f9adee388c, class A 61349f90d137, class B
  87a04d2c9176 for Solarize:9 at `quick`), so a table continued on another class recomputed every such row (its
  reconstructions are in the other machine's cache only). Rows are now named by the recipe
  (`privacy.learned.recipe_key`), as the attack is named by its settings and not by the machine that rounded it,
  and each keeps its network's digest as `network`.
- **An adaptive attack with nothing to invert through is the naive one.** It has the naive attack's key, and now
  reads and writes the naive rows. A row named `adaptive` of such an attack (the same attack key, cell and judge
  as a naive row) is another machine's sample of the naive attack, computed for want of the name: it leaves the
  table, which keeps the naive row stored first, and goes to `--dropped FILE` (CSV, as `table_csv.py` writes).

Rows are written in key order, as an export writes them; a second run changes nothing.

    python benchmarks/table_names.py reports/leakage-show/table.jsonl.gz --profile quick \\
        --dropped reports/leakage-show/dropped.csv
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from table_csv import write_csv

from autoshield.core.config import load_profile
from autoshield.data.policy import Cell
from autoshield.evaluation.table import Row
from autoshield.privacy.learned import recipe_key
from autoshield.study.table_file import TableIdentity, read_table_file, write_table_file

PREFIX = "learned@"


def renamed(row: Row, *, recipe: str) -> Row:
    """`row` under the learned attacker's recipe name, keeping the network it was named by."""
    network = row.problem.attacker.removeprefix(PREFIX)
    problem = dataclasses.replace(row.problem, attacker=PREFIX + recipe)
    return dataclasses.replace(row, problem=problem, outcome={**row.outcome, "network": network})


def naive_twins(rows: list[Row]) -> list[Row]:
    """The rows named `adaptive` whose attack is a naive row's (the same attack key, cell and judge)."""
    naive = {(r.problem.attack, r.problem.cell, r.problem.judge) for r in rows if r.problem.attacker == "naive"}
    return [
        r
        for r in rows
        if r.problem.attacker == "adaptive" and (r.problem.attack, r.problem.cell, r.problem.judge) in naive
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("table", type=Path, help="a file written by `autoshield table export`")
    p.add_argument("--profile", default="quick", help="the profile its study was made with (quick)")
    p.add_argument("--dropped", type=Path, help="where the rows that leave the table go (CSV); required if any do")
    args = p.parse_args()
    header, rows = read_table_file(args.table)
    identity = TableIdentity(**header["identity"])
    profile = load_profile(args.profile)
    twins = naive_twins(rows)
    if twins and args.dropped is None:
        raise SystemExit(f"{len(twins)} adaptive rows are the naive attack's: give --dropped FILE to keep them there")
    if twins:
        write_csv(twins, args.dropped)
    out, changed, gone = [], 0, {r.problem.key for r in twins}
    for row in (r for r in rows if r.problem.key not in gone):
        if row.problem.attacker.startswith(PREFIX) and "network" not in row.outcome:
            recipe = recipe_key(cell=Cell.parse(row.problem.cell), profile=profile, data=identity.data)
            row, changed = renamed(row, recipe=recipe), changed + 1
        out.append(row)
    written = write_table_file(path=args.table, identity=identity, rows=sorted(out, key=lambda r: r.problem.key))
    print(f"{changed} of {written} rows renamed, {len(twins)} dropped, in {args.table}")


if __name__ == "__main__":
    main()
