"""Many workers on one study (PostgreSQL and SQLite), killed workers, interrupted grids and baselines."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections import Counter

import optuna
import pytest
from optuna.trial import TrialState

from autoshield.cli import main
from autoshield.core.config import load_profile
from autoshield.core.runtime import resolve_device
from autoshield.data.cifar import load_cifar10
from autoshield.privacy.reference import reference_classifier
from autoshield.study.marks import fail_reason
from autoshield.study.params import cell_of, sigma_of
from autoshield.study.storage import open_storage

from .conftest import kill_when

POSTGRES = os.environ.get("AUTOSHIELD_TEST_POSTGRES")


def _postgres_reachable() -> str | None:
    if not POSTGRES:
        return "AUTOSHIELD_TEST_POSTGRES is not set (.ci/run sets it)"
    try:
        import psycopg

        psycopg.connect(POSTGRES.replace("postgresql+psycopg", "postgresql"), connect_timeout=3).close()
    except Exception as error:
        return f"no PostgreSQL at {POSTGRES}: {error}"
    return None


needs_postgres = pytest.mark.skipif(_postgres_reachable() is not None, reason=str(_postgres_reachable()))


@pytest.fixture
def reference_ready(data_root):
    """Train the smoke reference classifier once, so that concurrent workers only load it."""
    reference_classifier(load_cifar10(data_root), load_profile("smoke"), device=resolve_device("cpu"))


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "autoshield.cli", *args]


def _study(storage: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(storage, heartbeat=False))


def _states(study: optuna.Study) -> Counter:
    return Counter(t.state for t in study.get_trials(deepcopy=False))


def _workers(commands: list[list[str]], timeout: float = 400) -> None:
    processes = [subprocess.Popen(c, env=os.environ.copy(), stderr=subprocess.PIPE, text=True) for c in commands]
    for process in processes:
        _, err = process.communicate(timeout=timeout)
        assert process.returncode == 0, err


@needs_postgres
def test_three_workers_on_postgres_complete_exactly(data_root, space, reference_ready):
    name = f"test-{uuid.uuid4().hex[:8]}"
    args = [
        "search",
        "--trials",
        "12",
        "--profile",
        "smoke",
        "--utility",
        "recognizability",
        "--space",
        str(space),
        "--storage",
        POSTGRES,
        "--study",
        name,
        "--data-root",
        str(data_root),
        "--artifacts",
        str(data_root.parent / "art"),
    ]
    _workers([_cli(*args)] * 3)
    study = _study(POSTGRES, f"{name}-search")
    try:
        states = _states(study)
        assert states[TrialState.COMPLETE] == 12 and states[TrialState.FAIL] == 0
        identity = [
            t for t in study.trials if set(t.params.values()) == {"Identity"} and t.state == TrialState.COMPLETE
        ]
        assert len([t for t in identity if "fixed_params" in t.system_attrs]) == 1  # enqueued once, not per worker
    finally:
        optuna.delete_study(study_name=f"{name}-search", storage=open_storage(POSTGRES, heartbeat=False))


def test_two_jobs_on_sqlite_complete_exactly(tmp_path, data_root, space, reference_ready, capsys):
    db = f"sqlite:///{tmp_path / 's.db'}"
    args = ["search", "--trials", "6", "--n-jobs", "2", "--profile", "smoke", "--utility", "recognizability",
            "--space", str(space), "--storage", db, "--data-root", str(data_root)]  # fmt: skip
    assert main(args) == 0
    states = _states(_study(db, "autoshield-search"))
    assert states[TrialState.COMPLETE] == 6 and states[TrialState.FAIL] == 0
    assert "6/6" in capsys.readouterr().out  # the bar counts the other worker's last trials too


def _some_complete(storage: str, name: str) -> bool:
    try:
        return _states(_study(storage, name))[TrialState.COMPLETE] >= 1
    except KeyError:
        return False


def test_killed_grid_finishes_only_missing_cells(tmp_path, data_root, space, reference_ready, fast_heartbeat):
    db = f"sqlite:///{tmp_path / 's.db'}"
    args = ["grid", "--profile", "smoke", "--utility", "recognizability", "--space", str(space), "--storage", db,
            "--data-root", str(data_root)]  # fmt: skip
    kill_when(_cli(*args), lambda: _some_complete(db, "autoshield-grid"))
    before = [t for t in _study(db, "autoshield-grid").trials if t.state == TrialState.COMPLETE]
    time.sleep(3.5)
    assert main(args) == 0
    trials = _study(db, "autoshield-grid").trials
    complete = Counter(str(cell_of(t)) for t in trials if t.state == TrialState.COMPLETE)
    assert complete == Counter({"Identity": 1, "Rotate:9": 1, "Invert": 1})  # no cell computed twice
    assert {t.number for t in before} <= {t.number for t in trials if t.state == TrialState.COMPLETE}


def test_killed_baseline_finishes_only_missing_sigmas(tmp_path, data_root, reference_ready, fast_heartbeat):
    db = f"sqlite:///{tmp_path / 's.db'}"
    args = ["baseline", "--sigma", "0.5", "1.0", "--profile", "smoke", "--storage", db, "--data-root", str(data_root)]
    kill_when(_cli(*args), lambda: _some_complete(db, "autoshield-dpsgd"))
    done_before = {sigma_of(t) for t in _study(db, "autoshield-dpsgd").trials if t.state == TrialState.COMPLETE}
    time.sleep(3.5)
    assert main(args) == 0
    trials = _study(db, "autoshield-dpsgd").trials
    complete = Counter(sigma_of(t) for t in trials if t.state == TrialState.COMPLETE)
    assert complete == Counter({0.5: 1, 1.0: 1}) and done_before


def test_diverging_trials_fail_with_reason_and_stop(tmp_path, data_root, space, reference_ready, capsys):
    db = f"sqlite:///{tmp_path / 's.db'}"
    args = ["search", "--trials", "4", "--profile", "smoke", "--space", str(space), "--storage", db,
            "--data-root", str(data_root), "--set", "train.lr=1000"]  # fmt: skip
    assert main(args) == 2
    assert "3 trials in a row failed" in capsys.readouterr().err
    failed = [t for t in _study(db, "autoshield-search").trials if t.state == TrialState.FAIL]
    assert len(failed) == 3 and all("diverged" in fail_reason(t) for t in failed)
