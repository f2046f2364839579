"""Hostile input: one clear line, a non-zero exit, never a traceback, and existing studies intact."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest

from autoshield.cli import main
from autoshield.core.files import file_stem
from autoshield.data.cifar import CLASSES
from autoshield.study.storage import open_storage, redact

from .conftest import THREE_CELLS


def write_bad_files(folder: Path, data_root: Path) -> None:
    """The broken inputs the cases point at: malformed JSON, TOML and space, a corrupt and a foreign database, and
    a study optimised in other directions, a data set with an image that does not decode."""
    (folder / "bad.json").write_text('{"cat": "Rotate:5",')
    (folder / "bad.toml").write_text("width = [")
    (folder / "bad_space.toml").write_text('ops = ["Rotate", "Warp"]\nmagnitudes = [3]\n')
    (folder / "corrupt.db").write_bytes(b"garbage" * 500)
    with sqlite3.connect(folder / "foreign.db") as connection:
        connection.execute("create table invoices (id integer)")
    other = optuna.create_study(
        storage=open_storage(f"sqlite:///{folder / 'other.db'}", heartbeat=False),
        study_name="autoshield-search",
        directions=["minimize", "minimize"],
    )
    other.add_trial(optuna.trial.create_trial(values=[1.0, 1.0]))
    (folder / "binary.json").write_bytes(bytes(range(256)) * 4)
    (folder / "binary.toml").write_bytes(bytes(range(256)) * 4)
    (folder / "twice.json").write_text('{"cat": "Rotate:5", "cat": "Invert"}')
    (folder / "bad.JSON").write_text('{"cat": "Rotate:5",')
    broken = folder / "broken_data"
    shutil.copytree(data_root, broken)
    (broken / "train" / CLASSES[3] / "0000.png").write_bytes(b"\x89PNG not really")


@pytest.fixture(scope="module")
def world(tmp_path_factory, data_root):
    """A storage with a finished grid, plus broken files next to it."""
    folder = tmp_path_factory.mktemp("hostile")
    space = folder / "three.toml"
    space.write_text(THREE_CELLS)
    db = folder / "s.db"
    common = ["--profile", "smoke", "--storage", f"sqlite:///{db}", "--data-root", str(data_root)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUTOSHIELD_CACHE", str(folder / "cache"))
        assert main(["grid", "--space", str(space), "--utility", "recognizability", *common]) == 0
    write_bad_files(folder, data_root)
    return folder


def _count(db: Path, name: str) -> int:
    return len(optuna.load_study(study_name=name, storage=open_storage(f"sqlite:///{db}", heartbeat=False)).trials)


CASES = {
    "policy without magnitude": (["attack", "--policy", "cat=Rotate"], "needs a magnitude"),
    "policy with bad separator": (["attack", "--policy", "cat:Rotate:5"], "is not an integer"),
    "malformed policy JSON": (["attack", "--policy", "{F}/bad.json"], "policy JSON is malformed"),
    "unknown op": (["train", "--policy", "cat=Warp:3"], "unknown operation 'Warp'"),
    "unknown label": (["train", "--policy", "zebra=Rotate:3"], "unknown label 'zebra'"),
    "magnitude out of range": (["train", "--policy", "cat=Rotate:42"], "from 0 to 10, got 42"),
    "negative trials": (["search", "--trials", "-3"], "--trials must be from 1 to 100,000"),
    "non-numeric trials": (["search", "--trials", "many"], "invalid int value: 'many'"),
    "unknown profile key": (["search", "--set", "depth=3"], "unknown profile key 'depth'"),
    "unknown profile": (["grid", "--profile", "gigantic"], "unknown profile 'gigantic'"),
    "corrupt profile file": (["grid", "--config", "{F}/bad.toml"], "not valid TOML"),
    "missing data": (["grid", "--data-root", "{F}/nowhere"], "does not exist"),
    "corrupt image": (["data", "--data-root", "{F}/broken_data"], "cannot decode image"),
    "corrupt SQLite": (["grid", "--storage", "sqlite:///{F}/corrupt.db"], "not a usable SQLite database"),
    "foreign SQLite": (["search", "--storage", "sqlite:///{F}/foreign.db"], "another program"),
    "unreachable database": (["grid", "--storage", "postgresql+psycopg://u:pw@127.0.0.1:9/x"], "cannot open storage"),
    "other directions": (["search", "--storage", "sqlite:///{F}/other.db"], "exists with directions"),
    "unknown op in space": (["grid", "--space", "{F}/bad_space.toml"], "unknown operation 'Warp'"),
    "bad sigma": (["baseline", "--sigma", "-0.5"], "--sigma must be in"),
    "bad sampler": (["search", "--sampler", "annealing"], "unknown sampler 'annealing'"),
    # issue #18
    "data root is a file": (["data", "--data-root", "{F}/bad.json"], "is a file, not a folder"),
    "report under a file": (["report", "--out", "{F}/bad.json/report"], "cannot write in"),
    "export under a file": (["export", "--kind", "grid", "-o", "{F}/bad.json/p.json"], "cannot write in"),
    "artifacts under a file": (["search", "--artifacts", "{F}/bad.json/art"], "cannot write in"),
    "image index too large": (["ops", "--sheet", "{F}/o.png", "--image", "99999"], "--image must be a test-set"),
    "negative image index": (["ops", "--sheet", "{F}/o.png", "--image", "-1"], "--image must be a test-set"),
    "absurd trial count": (["search", "--trials", "100000000000000000000"], "--trials must be from 1 to 100,000"),
    "mistyped storage for report": (["report", "--storage", "sqlite:///{F}/typo.db"], "no study database at"),
    "sheet under a file": (["attack", "--sheet", "{F}/bad.json/s.png"], "bad.json is a file, not a folder"),
    "negative tolerance": (["grid", "--tolerance", "-1"], "expected a number from 0 to 1, got -1"),
    # issue #32: checked before any work
    "study name escapes its folder": (["grid", "--study", "hq/../../esc"], "a study name is a name, not a path"),
    "study name no file can carry": (["grid", "--study", "x" * 300], "at most 100 bytes"),
    "study name with a bell": (["grid", "--study", "a\x07b"], "cannot hold control characters"),
    "more workers than cores": (["grid", "--n-jobs", "4096"], "must be from 1 to"),
    "attack iterations without bound": (["grid", "--set", "attack.iterations=1000000000000"], "from 1 to 100,000"),
    "a width no memory holds": (["attack", "--set", "width=100000"], "width must be from 1 to 256, got 100000"),
    "NaN learning rate": (["train", "--set", "train.lr=nan"], "train.lr must be from 1e-08 to 1,000, got nan"),
    "binary policy file": (["attack", "--policy", "{F}/binary.json"], "is not UTF-8 text"),
    "binary profile file": (["grid", "--config", "{F}/binary.json"], "is not UTF-8 text"),
    "binary search space": (["grid", "--space", "{F}/binary.toml"], "is not UTF-8 text"),
    "a label twice in a policy file": (["attack", "--policy", "{F}/twice.json"], "label 'cat' appears twice"),
    "upper-case .JSON is JSON": (["attack", "--policy", "{F}/bad.JSON"], "policy JSON is malformed"),
    "a policy file that is a folder": (["attack", "--policy", "{F}/broken_data.json"], "does not exist"),
    "port out of range": (["dashboard", "--port", "70000"], "must be from 1 to 65,535, got 70,000"),
    "workers that cannot fit in memory": (
        [
            "grid",
            "--n-jobs",
            "2",
            "--set",
            "width=256",
            "--set",
            "images_per_label=10",
            "--set",
            "attack.batch_size=100",
        ],
        "GB available: use --n-jobs 1",
    ),
    "a device that is a path": (["train", "--set", "device='../x'"], "unknown device '../x'"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_input(case, world, data_root, capsys):
    args, message = CASES[case]
    args = [a.replace("{F}", str(world)) for a in args]
    defaults = {"--profile": "smoke", "--storage": f"sqlite:///{world / 's.db'}", "--data-root": str(data_root)}
    if args[0] in ("data", "ops"):
        defaults = {k: v for k, v in defaults.items() if k == "--data-root"}
    if args[0] in ("report", "export", "dashboard"):
        defaults = {k: v for k, v in defaults.items() if k == "--storage"}
    if args[0] in ("train", "attack"):
        defaults.pop("--storage")
    if args[0] in ("grid", "search"):
        defaults["--space"] = str(world / "three.toml")
    extra = [item for key, value in defaults.items() if key not in args for item in (key, value)]
    before = _count(world / "s.db", "autoshield-grid")
    code = main([*args, *extra])
    err = capsys.readouterr().err
    assert code != 0
    assert message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err and "pw" not in err
    assert _count(world / "s.db", "autoshield-grid") == before
    assert _count(world / "other.db", "autoshield-search") == 1
    with sqlite3.connect(world / "foreign.db") as connection:
        assert [r[0] for r in connection.execute("select name from sqlite_master")] == ["invoices"]
    assert not (world / "typo.db").exists()


def _write_protect(path: Path) -> Callable[[], None] | None:
    """Make `path` read-only even for root (the immutable flag), else by its mode for anyone else; None where
    neither works. Returns what undoes it."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        return lambda: path.chmod(0o644)
    if shutil.which("chattr") and subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0:
        return lambda: subprocess.run(["chattr", "-i", str(path)], check=True)
    return None


def test_a_read_only_database_is_refused_in_one_line_before_any_work(world, data_root, tmp_path, capsys):
    """Issue #32: SQLite opens a write-protected file read-only without a word and fails at the first write, with
    Optuna's guess ("invalid data in the commit") chained above the cause. Writers are refused first; readers
    (`report`, `export`) still read it."""
    db = tmp_path / "ro.db"
    shutil.copy(world / "s.db", db)
    undo = _write_protect(db)
    if undo is None:
        pytest.skip("cannot write-protect a file here (no chattr, or not permitted)")
    try:
        common = ["--profile", "smoke", "--storage", f"sqlite:///{db}", "--data-root", str(data_root)]
        assert main(["grid", "--space", str(world / "three.toml"), *common]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"cannot write the study database {db}" in err and "Traceback" not in err
        assert main(["export", "--victims", "-o", str(tmp_path / "v.csv"), "--storage", f"sqlite:///{db}"]) == 0
    finally:
        undo()


def test_output_files_take_a_safe_form_of_the_study_name():
    assert file_stem("näme with/../x") == "n_me_with_.._x"
    assert file_stem("paired8-v2.1_a") == "paired8-v2.1_a"


@pytest.mark.parametrize("password", ["pl@in", "ngPW@s3cret", "co:lon", "sla/sh", "per%cent", "mi@x:e/d%25"])
def test_no_piece_of_a_password_reaches_the_terminal(password, capsys):
    """Issue #18: a password holding `@`, `:`, `/` or `%` is redacted whole, in our lines and in the driver's."""
    url = f"postgresql+psycopg://nobody:{password}@127.0.0.1:9/none"
    assert redact(url) == "postgresql+psycopg://nobody:***@127.0.0.1:9/none"
    assert main(["report", "--storage", url]) == 2
    err = capsys.readouterr().err
    assert "cannot open storage postgresql+psycopg://nobody:***@127.0.0.1:9/none" in err and err.count("\n") == 1
    for piece in {password, *password.split("@")}:
        assert len(piece) < 3 or piece not in err, piece


def test_the_storage_can_come_from_the_environment(tmp_path, monkeypatch, capsys):
    """Issue #18: $AUTOSHIELD_STORAGE keeps a password out of the process list."""
    monkeypatch.setenv("AUTOSHIELD_STORAGE", f"sqlite:///{tmp_path / 'env.db'}")
    assert main(["report"]) == 2
    assert f"no study database at {tmp_path / 'env.db'}" in capsys.readouterr().err


def test_a_damaged_cache_is_moved_aside_in_one_line_and_rebuilt(data_root, tmp_path, monkeypatch, capsys):
    """Issue #18: a truncated data cache, reference classifier or attack result breaks nothing: it is said once,
    kept aside for inspection, and rebuilt; a file whose checksum no longer matches counts as damaged too."""
    monkeypatch.setenv("AUTOSHIELD_CACHE", str(tmp_path))
    args = ["attack", "--profile", "smoke", "--set", "attack.iterations=2", "--sheet", str(tmp_path / "s.png"),
            "--data-root", str(data_root)]  # fmt: skip
    assert main(args) == 0
    capsys.readouterr()
    data = next(tmp_path.glob("cifar10-*.npz"))
    judge = next((tmp_path / "reference").glob("*.pt"))
    attack = sorted((tmp_path / "attacks").glob("*/*.pt"))
    data.write_bytes(data.read_bytes()[:5000])  # truncated: not a zip file any more
    for damaged in (judge, attack[0]):
        damaged.write_bytes(damaged.read_bytes()[:-1] + b"x")  # one byte changed: only the checksum can tell
    attack[1].write_bytes(attack[1].read_bytes()[:100])  # truncated
    assert main(args) == 0
    err = capsys.readouterr().err
    assert err.count("was damaged; moved it to") == 4 and "Traceback" not in err
    assert len(list(tmp_path.glob("cifar10-*.npz.damaged-*"))) == 1
    assert len(list((tmp_path / "attacks").glob("*/*.pt.damaged-*"))) == 2
    assert all(path.exists() for path in attack[:2])  # recomputed and stored again
    assert main(args) == 0 and "damaged" not in capsys.readouterr().err  # rebuilt and verified


def test_a_storage_failure_mid_run_is_told_by_its_cause(tmp_path):
    """Issue #32: Optuna wraps the driver's error in a guess ("invalid data in the commit"); the user is told the
    deepest cause: a locked database, a full disk, a read-only file."""
    import sqlalchemy.exc
    from optuna.exceptions import StorageInternalError

    from autoshield.study.storage import storage_failure

    for cause in ("database is locked", "database or disk is full", "attempt to write a readonly database"):
        try:
            try:
                try:
                    raise sqlite3.OperationalError(cause)
                except sqlite3.OperationalError as driver:
                    raise sqlalchemy.exc.OperationalError("INSERT ...", {}, driver) from driver
            except sqlalchemy.exc.OperationalError as error:
                raise StorageInternalError(
                    "An exception is raised during the commit. This typically happens "
                    "due to invalid data in the commit, e.g. exceeding max length."
                ) from error
        except StorageInternalError as error:
            assert storage_failure(error) == cause
    assert storage_failure(ValueError("not the storage")) is None
