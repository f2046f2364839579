"""Study bookkeeping: per-trial overhead beyond training and attack, and worker scaling on a storage.

python benchmarks/bench_study.py overhead --profile quick --trials 3
python benchmarks/bench_study.py overhead --study autoshield-search --storage sqlite:///studies/autoshield.db
python benchmarks/bench_study.py scaling --storage postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import optuna
from common import machine, parser

from autoshield.study.catalog import completed
from autoshield.study.records import EvaluationRecord, StudyInfo
from autoshield.study.storage import open_storage

SPACE = "randaugment14"  # built in


def _search(storage: str, name: str, trials: int, profile: str, data_root: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "autoshield.cli",
        "search",
        "--trials",
        str(trials),
        "--profile",
        profile,
        "--storage",
        storage,
        "--study",
        name,
        "--data-root",
        str(data_root),
        "--space",
        str(SPACE),
        *extra,
    ]


def _report_overhead(study: optuna.Study, profile: str) -> None:
    rows = []
    for trial in completed(study):
        total = trial.duration.total_seconds()
        record = EvaluationRecord.read(trial)
        work = record.train_seconds + record.attack_seconds
        rows.append((total, work))
    print(f"machine: {machine()}; profile {profile}; {len(rows)} trials of {study.study_name}")
    for total, work in rows:
        print(
            f"  trial {total:.1f} s, training+attack {work:.1f} s, overhead {total - work:.2f} s "
            f"({100 * (total - work) / total:.1f} %)"
        )
    wall = sum(total for total, _ in rows)
    spent = wall - sum(work for _, work in rows)
    print(f"overhead over all trials: {spent:.1f} s of {wall:.1f} s = {100 * spent / wall:.1f} %")


def overhead(args) -> None:
    """Time a fresh search, or (--study) read the trials of one that already ran."""
    if args.study:
        study = optuna.load_study(study_name=args.study, storage=open_storage(args.storage, heartbeat=False))
        info = StudyInfo.read(study)
        _report_overhead(study, info.profile if info else "?")
        return
    with tempfile.TemporaryDirectory() as folder:
        storage = f"sqlite:///{folder}/s.db"
        subprocess.run(_search(storage, "bench", args.trials, args.profile, args.data_root), check=True)
        _report_overhead(
            optuna.load_study(study_name="bench-search", storage=open_storage(storage, heartbeat=False)), args.profile
        )


def scaling(args) -> None:
    rates = {}
    warm = f"bench-{uuid.uuid4().hex[:8]}"  # trains and caches the reference classifier outside the timing
    subprocess.run(_search(args.storage, warm, 1, "smoke", args.data_root, "--utility", "recognizability"), check=True)
    optuna.delete_study(study_name=f"{warm}-search", storage=open_storage(args.storage, heartbeat=False))
    for workers in (1, 2):
        name = f"bench-{uuid.uuid4().hex[:8]}"
        command = _search(args.storage, name, args.trials, "smoke", args.data_root, "--utility", "recognizability")
        start = time.perf_counter()
        processes = [subprocess.Popen(command, env=os.environ.copy()) for _ in range(workers)]
        for process in processes:
            process.wait()
        minutes = (time.perf_counter() - start) / 60
        storage = open_storage(args.storage, heartbeat=False)
        study = optuna.load_study(study_name=f"{name}-search", storage=storage)
        done = len(completed(study))
        rates[workers] = done / minutes
        optuna.delete_study(study_name=f"{name}-search", storage=storage)
        print(f"{workers} worker(s): {done} trials in {minutes:.2f} min = {rates[workers]:.1f}/min")
    print(f"machine: {machine()}; scaling 2 vs 1 workers: {rates[2] / rates[1]:.2f}x")


def main() -> None:
    p = parser(__doc__)
    p.add_argument("what", choices=("overhead", "scaling"))
    p.add_argument("--profile", default="quick")
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--storage", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    p.add_argument("--study", default=None, help="overhead: analyse this existing study in --storage instead")
    args = p.parse_args()
    overhead(args) if args.what == "overhead" else scaling(args)


if __name__ == "__main__":
    main()
