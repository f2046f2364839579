"""Does a per-victim result move between machines? The same setting, victims and starts in two committed runs.

The attack ends bit-identical when rerun on one machine, yet two machines of the same kind round differently and
the sign-Adam inversion amplifies it (RESULTS.md, 2026-12-03). This pairs two `victims.csv` files (from
`attack_budget.py`) by training index for one setting and prints what moved: the PSNR (no judge involved), the
verdicts (each run's own judge, named in its budget.csv) and the line-up rank. A budget whose per-victim verdicts
hold across machines measures the images, not the rounding.

python benchmarks/machines.py reports/saturation-2026-12-03T1835/victims.csv \\
    reports/saturation-2026-12-03T2245/victims.csv --setting attack.iterations=3000

With `--second-setting` it pairs two settings instead (one per file, or both in one file), so a setting measured on
one machine is compared with another measured on the same machine in another session. A `network_choice.py` file
names its rows by `candidate` where `attack_budget.py` names them by `setting`; both are read.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from common import read_rows

from autoshield.privacy.paired import mcnemar_exact, wilcoxon


def _run(path: Path, setting: str) -> dict[str, dict[str, str]]:
    """One setting's rows of a victims.csv, by training index."""
    return {r["index"]: r for r in read_rows(path) if r.get("setting", r.get("candidate")) == setting}


def paired(
    first: Path, second: Path, *, setting: str, second_setting: str | None = None
) -> list[tuple[dict[str, str], dict[str, str]]]:
    """The victims attacked under `setting` in `first` and under `second_setting` (by default the same) in
    `second`, as (first's row, second's row)."""
    runs = [_run(first, setting), _run(second, second_setting or setting)]
    return [(runs[0][i], runs[1][i]) for i in sorted(runs[0].keys() & runs[1].keys(), key=int)]


def summary(pairs: list[tuple[dict[str, str], dict[str, str]]]) -> dict[str, object]:
    """What moved between the two runs, victim by victim."""
    moved = [float(b["psnr"]) - float(a["psnr"]) for a, b in pairs if a["psnr"] and b["psnr"]]
    only_first = sum(a["recognised"] == "1" and b["recognised"] == "0" for a, b in pairs)
    only_second = sum(a["recognised"] == "0" and b["recognised"] == "1" for a, b in pairs)
    counts = [sum(row["recognised"] == "1" for row in run) for run in zip(*pairs, strict=True)]
    ranked = all(a.get("rank") and b.get("rank") for a, b in pairs)
    return {
        "victims": len(pairs),
        "recognised": f"{counts[0]} / {counts[1]}",
        "verdicts split": f"{only_first} / {only_second} (McNemar p = {mcnemar_exact(only_first, only_second):.3g})",
        "PSNR identical (to 0.01 dB)": sum(abs(d) < 0.01 for d in moved),
        "PSNR within 0.5 dB": sum(abs(d) <= 0.5 for d in moved),
        "|PSNR difference| median / max": f"{statistics.median(map(abs, moved)):.2f} / {max(map(abs, moved)):.2f} dB",
        "PSNR second − first, mean / median": f"{statistics.fmean(moved):+.2f} / {statistics.median(moved):+.2f} dB"
        f" (Wilcoxon p = {wilcoxon(moved):.2g})",
    } | ({"rank 1 in both": sum(a["rank"] == b["rank"] == "1" for a, b in pairs)} if ranked else {})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("first", type=Path, help="one run's victims.csv")
    p.add_argument("second", type=Path, help="the other run's victims.csv")
    p.add_argument("--setting", required=True, help="the setting (or candidate) to pair, e.g. attack.iterations=1500")
    p.add_argument("--second-setting", help="the second file's setting, when it differs from --setting")
    args = p.parse_args()
    pairs = paired(args.first, args.second, setting=args.setting, second_setting=args.second_setting)
    if not pairs:
        raise SystemExit(f"no victim was attacked under {args.setting!r} / {args.second_setting!r} in the files")
    for key, value in summary(pairs).items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
