"""The judge belongs to the study: stored with it under its SHA-256, fetched by every worker on any machine, moved
between machines and studies as a file, and refused when it does not fit."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import optuna
import pytest
import torch

from autoshield.cli import main
from autoshield.cli.judge import study_reference
from autoshield.core.config import load_profile
from autoshield.core.errors import AutoshieldError
from autoshield.core.runtime import resolve_device
from autoshield.data.spaces import load_search_space
from autoshield.privacy import reference
from autoshield.privacy.judge_file import JudgeIdentity, check_fits, judge_bytes, judge_file, read_judge
from autoshield.privacy.reference import install_judge, local_judge
from autoshield.study import launch
from autoshield.study.catalog import completed, open_study
from autoshield.study.jobs import GridJob
from autoshield.study.judges import stored_judge, study_judge
from autoshield.study.records import EvaluationRecord, StudyInfo
from autoshield.study.storage import open_storage

from .test_distributed import POSTGRES, needs_postgres
from .test_study import _args

CPU = torch.device("cpu")


@pytest.fixture
def smoke():
    return load_profile("smoke")


def _other_judge(judge):
    """The same network with other weights: what another machine's retrained judge is."""
    model = judge.model(seed=0, device=CPU)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.01)
    return judge_file(model=model, accuracy=judge.accuracy, identity=judge.identity)


def test_a_judge_survives_bytes_and_its_digest_names_its_weights(data, smoke):
    judge = local_judge(data, smoke, device=CPU)
    back = read_judge(judge_bytes(judge), source="f")
    assert back.digest == judge.digest and len(judge.digest) == 64
    assert back.accuracy == judge.accuracy and back.identity == JudgeIdentity.of(data, smoke)
    assert _other_judge(judge).digest != judge.digest


def test_a_file_that_is_not_a_judge_or_judges_another_setting_is_refused(data, smoke):
    with pytest.raises(AutoshieldError, match=r"^x\.pt is not an autoshield judge$"):
        read_judge(b"not a judge", source="x.pt")
    judge = local_judge(data, smoke, device=CPU)
    wider = load_profile("smoke", overrides=("reference_width=4",))
    with pytest.raises(AutoshieldError, match=r"x\.pt judges another setting: width 8, not 4"):
        check_fits(judge, JudgeIdentity.of(data, wider), source="x.pt")
    pool = load_profile("smoke", overrides=("victim_pool_per_label=7",))
    with pytest.raises(AutoshieldError, match="pool_per_label"):
        install_judge(judge, data=data, profile=pool, source="x.pt")


@pytest.mark.parametrize("kind", ["sqlite", "journal", pytest.param("postgres", marks=needs_postgres)])
def test_the_first_judge_stored_is_every_later_workers(tmp_path, data, smoke, kind):
    url = {"sqlite": f"sqlite:///{tmp_path / 's.db'}", "journal": f"journal:{tmp_path / 'j.log'}"}.get(kind, POSTGRES)
    name = f"judges-{uuid.uuid4().hex[:8]}"
    open_storage(url)
    mine = local_judge(data, smoke, device=CPU)
    identity = JudgeIdentity.of(data, smoke)
    assert stored_judge(url=url, name=name) is None
    first, stored_now = study_judge(url=url, name=name, identity=identity, local=lambda: mine)
    assert stored_now and first.digest == mine.digest

    def never():
        raise AssertionError("a later worker trained or loaded its own judge")

    later, stored_now = study_judge(url=url, name=name, identity=identity, local=never)
    assert not stored_now and later.digest == mine.digest
    # two workers storing at once: the second finds the first's
    other_name = f"{name}-race"
    study_judge(url=url, name=other_name, identity=identity, local=lambda: mine)
    theirs, stored_now = study_judge(url=url, name=other_name, identity=identity, local=lambda: _other_judge(mine))
    assert theirs.digest == mine.digest


def _search(db: Path, data_root: Path, space: Path, trials: int) -> list[str]:
    return _args("search", db, data_root, space, "--trials", str(trials), "--utility", "recognizability")


def test_a_worker_on_another_machine_scores_with_the_studys_judge(tmp_path, data_root, data, space, monkeypatch):
    db = tmp_path / "s.db"
    monkeypatch.setenv("AUTOSHIELD_CACHE", str(tmp_path / "machine-a"))
    assert main(_search(db, data_root, space, 1)) == 0
    first = local_judge(data, load_profile("smoke"), device=CPU)
    # machine B has a judge of its own, which it must neither load nor use
    monkeypatch.setenv("AUTOSHIELD_CACHE", str(tmp_path / "machine-b"))
    install_judge(_other_judge(first), data=data, profile=load_profile("smoke"), source="b")

    def forbidden(*args, **kwargs):
        raise AssertionError("machine B trained or loaded its own judge")

    monkeypatch.setattr(reference, "stored_classifier", forbidden)
    fetched = []
    monkeypatch.setattr(launch, "study_judge", lambda **kw: fetched.append(kw["name"]) or study_judge(**kw))
    assert main(_search(db, data_root, space, 3)) == 0
    assert len(fetched) == 1  # the first worker uses the judge its caller fetched to prepare the study
    study = optuna.load_study(study_name="autoshield-search", storage=open_storage(f"sqlite:///{db}"))
    assert StudyInfo.read(study).judge == first.digest
    trials = completed(study)
    assert len(trials) == 3
    assert {a.judge for t in trials for a in EvaluationRecord.read(t).attacks.values()} == {first.digest}
    assert main(["report", "--storage", f"sqlite:///{db}", "--out", str(tmp_path / "r")]) == 0
    report = (tmp_path / "r" / "report.md").read_text()
    assert f"Judge `{first.digest[:12]}`" in report and "autoshield-search design: " in report


def test_judge_export_and_import_move_it_between_machines_and_studies(tmp_path, data_root, capsys, monkeypatch):
    common = ["--profile", "smoke", "--data-root", str(data_root)]
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert main(["judge", "export", str(tmp_path / "a.pt"), *common]) == 0
    assert main(["judge", "import", str(tmp_path / "a.pt"), "--study", "s", "--storage", url, *common]) == 0
    assert main(["judge", "export", str(tmp_path / "b.pt"), "--study", "s", "--storage", url, *common]) == 0
    a, b = (read_judge((tmp_path / n).read_bytes(), source=n) for n in ("a.pt", "b.pt"))
    assert a.digest == b.digest
    # another machine makes it its own
    monkeypatch.setenv("AUTOSHIELD_CACHE", str(tmp_path / "elsewhere"))
    assert main(["judge", "import", str(tmp_path / "b.pt"), *common]) == 0
    profile = load_profile("smoke")
    from autoshield.data.cifar import load_cifar10

    here = reference.reference_classifier(load_cifar10(data_root), profile, device=resolve_device("cpu"))
    assert not here.trained_now and here.digest == a.digest
    capsys.readouterr()
    # refused in one line: not a judge, another width, a study that has another judge
    (tmp_path / "junk.pt").write_text("junk")
    assert main(["judge", "import", str(tmp_path / "junk.pt"), *common]) == 2
    assert main(["judge", "export", str(tmp_path / "w.pt"), *common, "--set", "reference_width=4"]) == 0
    assert main(["judge", "import", str(tmp_path / "w.pt"), *common]) == 2
    other = _other_judge(a)
    (tmp_path / "o.pt").write_bytes(judge_bytes(other))
    assert main(["judge", "import", str(tmp_path / "o.pt"), "--study", "s", "--storage", url, *common]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "Traceback" not in "".join(err)
    assert "junk.pt is not an autoshield judge" in err[0]
    assert "width 4, not 8" in err[1]
    assert f"is scored by judge {a.digest[:12]}" in err[2]


def test_a_run_its_study_refuses_stores_no_judge_and_a_lost_judge_is_named(tmp_path, data, data_root, space):
    url = f"sqlite:///{tmp_path / 's.db'}"
    job = GridJob(
        space=load_search_space(str(space)),
        storage=url,
        name="s",
        profile=load_profile("smoke"),
        data_root=str(data_root),
        artifacts=str(tmp_path / "a"),
    )
    storage = open_storage(url)
    open_study(storage, name="s", info=dataclasses.replace(job.info(data), profile_fingerprint="other"))
    with pytest.raises(AutoshieldError, match="refusing to mix results"):
        launch.the_judge(job, data, device=CPU)
    assert stored_judge(url=url, name="s") is None
    open_study(storage, name="t", info=dataclasses.replace(job.info(data), judge="a" * 64))
    with pytest.raises(AutoshieldError, match="no longer holds: put it back with `autoshield judge import"):
        launch.the_judge(dataclasses.replace(job, name="t"), data, device=CPU)
    assert stored_judge(url=url, name="t") is None
    with pytest.raises(AutoshieldError, match="no study named 'u'"):
        study_reference(url=url, name="u", data=data, profile=load_profile("smoke"), device=CPU)
