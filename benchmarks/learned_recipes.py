"""Rename a table file's learned-attacker rows from their network's digest to its recipe, in place.

Until 2026-12-05 a row of the learned attacker was named by its network's weights (`learned@<digest>`). One recipe
trains other weights on each machine class (class C 90f9adee388c, class A 61349f90d137, class B 87a04d2c9176 for
Solarize:9 at `quick`), so a table continued on another class recomputed every such row (its reconstructions are
in the other machine's cache only). Rows are now named by the recipe (`privacy.learned.recipe_key`), as the attack
itself is named by its settings and not by the machine that rounded it, and each row keeps its network's digest
as `network`. This rewrites a file's rows so (their keys change with the name), in key order, as an export writes
them; rows named by a recipe already are left as they are.

    python benchmarks/learned_recipes.py reports/leakage-show/table.jsonl.gz --profile quick
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("table", type=Path, help="a file written by `autoshield table export`")
    p.add_argument("--profile", default="quick", help="the profile its study was made with (quick)")
    args = p.parse_args()
    header, rows = read_table_file(args.table)
    identity = TableIdentity(**header["identity"])
    profile = load_profile(args.profile)
    out, changed = [], 0
    for row in rows:
        if row.problem.attacker.startswith(PREFIX) and "network" not in row.outcome:
            recipe = recipe_key(cell=Cell.parse(row.problem.cell), profile=profile, data=identity.data)
            row, changed = renamed(row, recipe=recipe), changed + 1
        out.append(row)
    written = write_table_file(path=args.table, identity=identity, rows=sorted(out, key=lambda r: r.problem.key))
    print(f"{changed} of {written} rows renamed in {args.table}")


if __name__ == "__main__":
    main()
