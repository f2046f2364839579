"""An exported attack table (`autoshield table export`) as one CSV row per (victim, cell, attacker): the per-victim
file a claim read from a table before any grid has run is recomputed from. Each row names its victim by dataset
index and label, its cell, attacker and judge, every outcome the table stores, and the seconds its attack cost
when it was computed (0: rows of a table build before costs were kept, 2026-12-05).

    python benchmarks/table_csv.py reports/leakage-show/table.jsonl.gz -o reports/leakage-show/rows.csv
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from autoshield.evaluation.table import Row
from autoshield.study.table_file import read_table_file

FIRST = ("victims", "labels", "cell", "attacker", "judge")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("table", type=Path, help="a file written by `autoshield table export`")
    p.add_argument("-o", "--out", type=Path, required=True, help="the CSV to write")
    args = p.parse_args()
    _, rows = read_table_file(args.table)
    print(f"{write_csv(rows, args.out)} rows to {args.out}")


def write_csv(rows: list[Row], path: Path) -> int:
    """`rows` as one CSV row each, sorted by cell, attacker and victim; returns how many."""
    outcomes = sorted({name for row in rows for name in row.outcome} - set(FIRST))
    records = [
        {
            **{k: row.outcome.get(k) for k in ("victims", "labels")},
            "cell": row.problem.cell,
            "attacker": row.problem.attacker,
            "judge": row.problem.judge,
            **{k: row.outcome.get(k) for k in outcomes},
            "seconds": f"{row.seconds:.2f}",
            "attack_key": row.problem.attack,
        }
        for row in rows
    ]
    records.sort(key=lambda r: (r["cell"], r["attacker"], r["victims"]))
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=[*FIRST, *outcomes, "seconds", "attack_key"])
        writer.writeheader()
        writer.writerows(records)
    return len(records)


if __name__ == "__main__":
    main()
