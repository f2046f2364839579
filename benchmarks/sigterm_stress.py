"""SIGTERM at random moments of a two-worker search: does every stop end in one line, exit 143, no trial running?

The test suite stops a search at one moment (0.5 s after the first complete trial), so it rarely sees a signal
land inside Optuna's bookkeeping or a commit. This stops `--runs` searches, each after a random delay, and counts
the runs whose stderr held more than the one line `main` prints, whose exit was not 143, that hung, or that left a
trial RUNNING. Timing-dependent, so it lives here and not in the tests.

On the tests' synthetic data and three-cell space (Identity, Rotate:9, Invert), from benchmarks/:
    python -c "import sys; sys.path.insert(0, '..'); from pathlib import Path; from tests.conftest import \
        write_image_folder; write_image_folder(Path('../studies/synthetic'))"
    printf 'name = "three"\nops = ["Identity", "Rotate", "Invert"]\nmagnitudes = [9]\n' > ../studies/three.toml
    python sigterm_stress.py --space ../studies/three.toml --data-root ../studies/synthetic --runs 16
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from common import machine, parser

from autoshield.cli.app import stopped_line
from autoshield.core.interrupts import EXIT_TERMINATED, Terminated

LINE = stopped_line(Terminated())


def one_run(folder: Path, *, args: list[str], delay: float, patience: float) -> str:
    """What one search stopped after `delay` seconds did: "clean", or what went wrong."""
    db = folder / "s.db"
    command = [sys.executable, "-m", "autoshield.cli", "search", "--storage", f"sqlite:///{db}", *args]
    env = {**os.environ, "AUTOSHIELD_CACHE": str(folder.parent / "cache")}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(delay)
    process.send_signal(signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=patience)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        return f"hung for {patience:.0f} s"
    if process.returncode != EXIT_TERMINATED or err.strip() != LINE:
        (folder / "stderr.txt").write_text(err)
        return f"exit {process.returncode}, stderr {len(err.splitlines())} lines ({folder / 'stderr.txt'})"
    with sqlite3.connect(db) as connection:
        running = connection.execute("select count(*) from trials where state = 'RUNNING'").fetchone()[0]
    return f"{running} trials left running" if running else "clean"


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--space", type=Path, required=True, help="a search space file")
    p.add_argument("--profile", default="smoke")
    p.add_argument("--runs", type=int, default=16)
    p.add_argument("--delays", type=float, nargs=2, default=(3.0, 25.0), help="uniform range of the stop, seconds")
    p.add_argument("--patience", type=float, default=150.0, help="seconds a stopped search may take to exit")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, default=Path("studies/sigterm-stress"), help="each run's study and stderr")
    args = p.parse_args()
    draw = random.Random(args.seed)
    search = ["--profile", args.profile, "--space", str(args.space), "--data-root", str(args.data_root)]
    search += ["--trials", "50", "--n-jobs", "2"]
    print(f"machine: {machine()}")
    outcomes = []
    for run in range(args.runs):
        folder = args.work / f"run{run}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "s.db").unlink(missing_ok=True)
        delay = draw.uniform(*args.delays)
        outcomes.append(one_run(folder, args=search, delay=delay, patience=args.patience))
        print(f"run {run}: stopped after {delay:.1f} s: {outcomes[-1]}", flush=True)
    print(f"{sum(o != 'clean' for o in outcomes)} of {len(outcomes)} runs did not stop cleanly")


if __name__ == "__main__":
    main()
