"""Workers that start together on an empty, shared cache: the first builds each shared artifact, the others wait.

Before unique temporary names and the build lock, two workers decoding the data at once raced on one
temporary file (`cifar10-<key>.tmp.npz`) and one died with FileNotFoundError.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

WORKERS = 4
ROUNDS = 5

# One worker: for every round, wait at the start line until all workers are there, then load the data and the
# reference classifier from that round's (empty) cache folder and report what it got.
CHILD = """
import json, os, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from autoshield.core.config import load_profile
from autoshield.data.cifar import load_cifar10
from autoshield.privacy.reference import reference_classifier

me, rounds, root, data_root = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
for r in range(rounds):
    (root / f"ready-{r}-{me}").touch()
    while not (root / f"go-{r}").exists():
        time.sleep(0.005)
    os.environ["AUTOSHIELD_CACHE"] = str(root / f"cache-{r}")
    data = load_cifar10(data_root)
    profile = load_profile("smoke", overrides=("reference.epochs=2",))  # a short build is enough to race on
    reference = reference_classifier(data, profile, device=torch.device("cpu"))
    print(json.dumps({"round": r, "data": data.fingerprint, "trained": reference.trained_now,
                      "accuracy": reference.accuracy.overall}), flush=True)
"""


def test_workers_starting_together_on_an_empty_cache_never_fail(tmp_path: Path, data_root: Path):
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(i), str(ROUNDS), str(tmp_path), str(data_root)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(WORKERS)
    ]
    for r in range(ROUNDS):
        deadline = time.time() + 240
        while len(list(tmp_path.glob(f"ready-{r}-*"))) < WORKERS and all(w.poll() is None for w in workers):
            assert time.time() < deadline, f"workers did not reach round {r}"
            time.sleep(0.01)
        (tmp_path / f"go-{r}").touch()  # all at the start line: go together
    outcomes = [w.communicate(timeout=600) for w in workers]
    failures = [err[-800:] for w, (_, err) in zip(workers, outcomes, strict=True) if w.returncode != 0]
    assert failures == []
    reports = [json.loads(line) for out, _ in outcomes for line in out.splitlines()]
    assert len(reports) == WORKERS * ROUNDS
    for r in range(ROUNDS):
        this_round = [report for report in reports if report["round"] == r]
        assert sum(report["trained"] for report in this_round) == 1  # trained once, the others waited and read it
        assert len({(report["data"], report["accuracy"]) for report in this_round}) == 1
        cache = tmp_path / f"cache-{r}"
        assert list(cache.rglob("*.tmp")) == []  # no temporary file left behind
