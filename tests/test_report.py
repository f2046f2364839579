"""Reports, DP-SGD baselines through the CLI, exported policies."""

from __future__ import annotations

import dataclasses
import itertools
import json
import random
from pathlib import Path

import optuna
import pytest
import torch
from PIL import Image

from autoshield import load_policy
from autoshield.cli import main
from autoshield.data.ops import random_signs
from autoshield.data.policy import Policy
from autoshield.privacy.paired import Outcomes
from autoshield.report.pareto import dominates, hypervolume
from autoshield.report.studies import Studies, incomparable
from autoshield.report.tables import dominance_lines, per_label_rows
from autoshield.study.confirm import next_fresh_slot
from autoshield.study.dp_records import DPRecord
from autoshield.study.params import sigma_of
from autoshield.study.records import AttackRecord, ConfirmationRecord, EvaluationRecord, StudyInfo
from autoshield.study.storage import open_storage

from .conftest import THREE_CELLS


def _common(db: Path, data_root: Path) -> list[str]:
    return ["--profile", "smoke", "--storage", f"sqlite:///{db}", "--data-root", str(data_root)]


@pytest.fixture(scope="module")
def studies(tmp_path_factory, data_root) -> Path:
    """A grid, DP-SGD baselines and a short search, all at smoke scale, in one SQLite file."""
    folder = tmp_path_factory.mktemp("report")
    space = folder / "three.toml"
    space.write_text(THREE_CELLS)
    db = folder / "s.db"
    common = _common(db, data_root)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUTOSHIELD_CACHE", str(folder / "cache"))
        assert main(["grid", "--space", str(space), "--utility", "recognizability", *common]) == 0
        assert main(["baseline", "--sigma", "0.5", "1.0", *common]) == 0
        assert main(["search", "--space", str(space), "--trials", "5", "--utility", "recognizability", *common]) == 0
    return db


def _trials(db: Path, name: str):
    study = optuna.load_study(study_name=name, storage=open_storage(f"sqlite:///{db}", heartbeat=False))
    return study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))


def test_baseline_records_epsilon_and_both_settings_and_resumes(studies, data_root, capsys):
    trials = _trials(studies, "autoshield-dpsgd")
    assert sorted(sigma_of(t) for t in trials) == [0.5, 1.0]
    records = [DPRecord.read(t) for t in trials]
    for record in records:
        assert record.epsilon > 0 and record.delta == 1e-5 and record.max_grad_norm == 1.0
        assert 0 <= record.noised.attack_accuracy <= 1 and 0 <= record.weights.attack_accuracy <= 1
    low, high = sorted(records, key=lambda r: r.sigma)
    assert low.epsilon > high.epsilon  # more noise, more privacy
    # the no-noise control attacks the same fresh network and victims whatever σ: one result, from the cache
    controls = {(r.control.attack_accuracy, r.control.psnr_original) for r in records}
    assert len(controls) == 1 and high.control.attacks_from_cache == 10
    # like with like (issue #14): the profile's network on both sides, gated by the control
    for record in records:
        assert record.norm == "none" and record.identity == record.control  # target init: Identity is the control
        assert record.comparable("noised") is True and record.comparable("weights") is not None
        assert 0 <= record.nonprivate_accuracy <= 1 and len(record.signal_to_noise) == 10
    assert low.signal_to_noise == pytest.approx(tuple(2 * x for x in high.signal_to_noise))  # σ 0.5 vs 1.0
    assert low.noised.psnr_original != high.noised.psnr_original  # independent noise, not one draw rescaled
    assert main(["baseline", "--sigma", "1.0", "0.1", *_common(studies, data_root)]) == 0
    out = capsys.readouterr().out
    assert sorted(sigma_of(t) for t in _trials(studies, "autoshield-dpsgd")) == [0.1, 0.5, 1.0]
    assert "no meaningful privacy guarantee" in out  # σ = 0.1


@pytest.mark.parametrize("sigma", ["0", "-1", "nan", "inf"])
def test_baseline_rejects_bad_sigma(tmp_path, data_root, sigma, capsys):
    assert main(["baseline", "--sigma", sigma, *_common(tmp_path / "x.db", data_root)]) == 2
    assert "--sigma must be in" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--sigma", "abc"], "argument --sigma: invalid float value: 'abc'"),
        (["--max-grad-norm", "0"], "--max-grad-norm must be finite and > 0, got 0.0"),
        (["--max-grad-norm", "-1"], "--max-grad-norm must be finite and > 0, got -1.0"),
        (["--set", 'norm="batch"'], "DP-SGD cannot train norm 'batch'"),
    ],
)
def test_baseline_bad_input_is_one_line(tmp_path, data_root, arguments, message, capsys):
    assert main(["baseline", *arguments, *_common(tmp_path / "x.db", data_root)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.db").exists()


def test_report_writes_every_file(studies, data_root, tmp_path, capsys):
    assert main(["baseline", "--sigma", "0.1", *_common(studies, data_root)]) == 0  # no-op when already done
    out = tmp_path / "report"
    assert main(["report", "--storage", f"sqlite:///{studies}", "--out", str(out)]) == 0
    for name in ("pareto.png", "hypervolume.png", "reconstructions.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.width >= 500 and image.height >= 300
    with Image.open(out / "pareto.png") as image:  # one panel per utility: recognizability, trained
        assert image.width > 2 * image.height
    text = (out / "report.md").read_text()
    assert "Pareto front" in text and "hypervolume" in text and "DP-SGD baselines" in text
    assert "`three`: 3 of 3 cells evaluated" in text and "Incomplete" not in text
    assert "No meaningful privacy guarantee (ε above 100): σ = 0.1" in text
    assert "no noise %" in text and "'no noise' is the same attack" in text and "non-private %" in text
    assert "autoshield-grid `recognizability`" in text and "autoshield-dpsgd `trained`" in text
    assert "> **`smoke` profile**" in text  # issue #16: what must be read before any figure
    assert "worst label vs Identity (pts)" in text  # issue #37: a per-label shortcut shows on the front
    sheets = sorted(path.name for path in (out / "sheets").iterdir())  # no defence first, then each study's pick
    assert "autoshield-grid-trial-0-reconstructions.png" in sheets  # the enqueued Identity cell
    studies_shown = {name.rsplit("-trial-", 1)[0] for name in sheets}
    assert studies_shown == {"autoshield-grid", "autoshield-search", "autoshield-dpsgd"}
    rows = (out / "per_label.csv").read_text().splitlines()
    assert len(rows) == 11 and "grid cell" in rows[0] and "search cell" in rows[0]
    assert "DP σ" not in rows[0]  # issue #16: one utility per table; DP-SGD's trained accuracy is left out
    assert "left out, as measured on another scale: autoshield-dpsgd (model accuracy `trained`)" in text
    dominance = (out / "dominance.md").read_text()  # the search measured recognizability, DP-SGD trained accuracy
    assert "not comparable: autoshield-search's model accuracy is recognizability" in dominance
    assert "no dominance is claimed" in dominance


def test_hypervolume_matches_brute_force():
    rng = random.Random(0)
    for _ in range(30):
        points = [(rng.random(), rng.random()) for _ in range(rng.randint(1, 8))]
        xs = sorted({0.0, *(p[0] for p in points)})
        ys = sorted({1.0, *(p[1] for p in points)})
        brute = 0.0
        for (x0, x1), (y0, y1) in itertools.product(itertools.pairwise(xs), itertools.pairwise(ys)):
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2  # cell centre dominated by some point?
            if any(p[0] >= cx and p[1] <= cy for p in points):
                brute += (x1 - x0) * (y1 - y0)
        assert hypervolume(points) == pytest.approx(brute)
    assert hypervolume([(1.0, 0.0)]) == 1.0 and hypervolume([]) == 0.0
    assert dominates((0.8, 0.2), (0.7, 0.2)) and not dominates((0.8, 0.3), (0.7, 0.2))


def test_export_round_trips_and_applies_identically(studies, tmp_path):
    path = tmp_path / "policy.json"
    assert main(["export", "--best-tradeoff", "-o", str(path), "--storage", f"sqlite:///{studies}"]) == 0
    policy = Policy.from_json(path.read_text())
    trial_params = json.loads(path.read_text())["policy"]
    assert Policy.from_mapping(trial_params) == policy
    assert Policy.from_json(policy.to_json()) == policy
    transform = load_policy(path)
    images = torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8)
    for label in range(10):
        torch.manual_seed(label)
        out, _ = transform(images[label], label)
        torch.manual_seed(label)
        sign = random_signs(1, generator=torch.default_generator)
        expected = policy.apply(images[label : label + 1], torch.tensor([label]), signs=sign)[0]
        assert torch.equal(out, expected)


def test_bad_report_and_export_input(studies, tmp_path, capsys):
    assert main(["report", "--storage", f"sqlite:///{studies}", "--study", "nothing"]) == 2
    assert "no study named nothing-grid" in capsys.readouterr().err
    assert main(["export", "--trial", "999", "-o", str(tmp_path / "p.json"), "--storage", f"sqlite:///{studies}"]) == 2
    assert "has no trial 999" in capsys.readouterr().err
    storage = open_storage(f"sqlite:///{studies}", heartbeat=False)
    study = optuna.load_study(study_name="autoshield-search", storage=storage)
    failed = study.ask()
    study.tell(failed, state=optuna.trial.TrialState.FAIL)
    args = [
        "export",
        "--trial",
        str(failed.number),
        "-o",
        str(tmp_path / "p.json"),
        "--storage",
        f"sqlite:///{studies}",
    ]
    assert main(args) == 2
    assert "did not complete" in capsys.readouterr().err
    empty = optuna.create_study(study_name="empty-search", storage=storage, directions=["maximize", "minimize"])
    assert empty.study_name == "empty-search"
    assert main(["report", "--storage", f"sqlite:///{studies}", "--study", "empty"]) == 2
    assert "no completed trials" in capsys.readouterr().err


def test_confirm_rescores_on_fresh_victims_and_the_report_heads_with_it(studies, data_root, tmp_path, capsys):
    common = _common(studies, data_root)
    storage = open_storage(f"sqlite:///{studies}", heartbeat=False)

    def snapshot():
        loaded = [optuna.load_study(study_name=f"autoshield-{k}", storage=storage) for k in ("grid", "search")]
        return [(s.user_attrs, len(s.get_trials(deepcopy=False))) for s in loaded]

    before = snapshot()
    bad = [
        (["confirm", "--study", "nothing", "--victims", "2", *common], "no grid or search study named 'nothing'"),
        (["confirm", "--victims", "0", *common], "--victims must be >= 1"),
        (["confirm", "--victims", "10", *common], "more than the victim pool holds"),
        (["confirm", "--set", "width=4", "--victims", "2", *common], "pass the same --profile/--set"),
    ]
    for args, message in bad:
        assert main(args) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert snapshot() == before  # bad input leaves the studies untouched
    assert main(["confirm", "--victims", "2", *common]) == 0
    assert "found vs confirmed on 20 fresh victims" in capsys.readouterr().out
    grid = optuna.load_study(study_name="autoshield-grid", storage=storage)
    records = ConfirmationRecord.read_all(grid)
    assert records[0].source.startswith("Identity") and {r.victims_per_label for r in records} == {2}
    studied = set(EvaluationRecord.read(grid.trials[0]).attack.outcomes.victims)
    fresh = set(records[0].attack.outcomes.victims)
    assert len(fresh) == 20 and not fresh & studied
    assert {r.first_slot for r in records} == {1}
    assert next_fresh_slot(records, study_victims=1) == 3  # the next confirmation meets new victims by default
    for args, message in [
        (["confirm", "--first-slot", "2", "--victims", "2", *common], "were already scored by a confirmation"),
        (["confirm", "--first-slot", "0", *common], "among the study's own victims"),
    ]:
        assert main(args) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    out = tmp_path / "report"
    assert main(["report", "--storage", f"sqlite:///{studies}", "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert "Headline (confirmed on fresh victims)" in text and "found attack %" in text
    assert "floor %" in (out / "cells.md").read_text()


def test_dp_and_policies_compare_only_like_with_like():
    """A DP point and a policy are set against each other only on one network, utility and profile."""

    def study(kind: str, **changes) -> optuna.Study:
        info = StudyInfo(kind, "", (), "quick", "abc", "trained", "d1", norm="none")
        created = optuna.create_study(study_name=f"x-{kind}", directions=["maximize", "minimize"])
        dataclasses.replace(info, **changes).write(created)
        return created

    dp = study("dpsgd")
    assert incomparable(dp, study("search")) is None
    assert incomparable(dp, study("search", norm="batch")) == (
        "not comparable: different networks (DP-SGD norm none, x-search norm batch)"
    )
    assert "model accuracy is recognizability" in incomparable(dp, study("search", utility="recognizability"))
    assert "another profile or data set" in incomparable(dp, study("search", profile_fingerprint="xyz"))


def _record(recognised: list[bool]) -> AttackRecord:
    n = len(recognised)
    outcomes = Outcomes(
        tuple(range(n)), tuple(i % 10 for i in range(n)), tuple(recognised), tuple(range(n)), (False,) * n,
        (False,) * n, (15.0,) * n, (15.0,) * n, (0.3,) * n, (0.3,) * n, (True,) * n,
    )  # fmt: skip
    rate = sum(recognised) / n
    per_label = (rate,) * 10
    return AttackRecord(rate, per_label, (0.0, 1.0), 15.0, per_label, 15.0, 0.3, 0.3, 1.0, per_label, 1.0, 0, 0,
                        outcomes=outcomes)  # fmt: skip


def test_dominance_is_claimed_only_with_paired_significance_on_the_same_victims():
    info = StudyInfo("dpsgd", "", (), "quick", "abc", "trained", "d1", norm="none")
    storage = optuna.storages.InMemoryStorage()
    dp_study = optuna.create_study(study_name="x-dpsgd", storage=storage, directions=["maximize", "minimize"])
    info.write(dp_study)
    search = optuna.create_study(study_name="x-search", storage=storage, directions=["maximize", "minimize"])
    dataclasses.replace(info, kind="search").write(search)
    dp_attack = _record([True] * 12 + [False] * 8)  # 12/20 recognised through DP-SGD's network
    record = DPRecord(0.5, 1.0, 1e-5, 15.0, None, 4, 0.2, (0.2,) * 10, dp_attack, dp_attack, dp_attack, 1.0, 1.0,
                      norm="none", nonprivate_accuracy=0.4, identity=dp_attack)  # fmt: skip
    trial = dp_study.ask({"sigma": optuna.distributions.FloatDistribution(1e-3, 1e3, log=True)})
    record.write(trial)
    dp_study.tell(trial, record.objectives())
    for recognised in ([False] * 20, [True] * 11 + [False] * 9):  # 0/20: significant; 11/20: not
        policy = EvaluationRecord("Identity", "{}", "trained", 0.3, (0.3,) * 10, _record(recognised), 1.0, 1.0)
        trial = search.ask()
        policy.write(trial)
        search.tell(trial, (policy.model_accuracy, policy.attack.attack_accuracy))
    text = "\n".join(dominance_lines(Studies(grid=None, search=search, dpsgd=dp_study)))
    assert "2 search policies dominate it by their values" in text
    rows = [line for line in text.splitlines() if line.startswith("| 0 ") or line.startswith("| 1 ")]
    assert "| 0/12 (0/12) |" in rows[0] and "| yes |" in rows[0]  # p = 2 · 0.5¹² ≈ 0.0005, Holm over 2
    assert "| 11/12 (0/1) |" in rows[1] and "| no |" in rows[1]
    # the same policies against a DP point whose σ = 0 control fails on its network: no claim at all
    failing = optuna.create_study(study_name="y-dpsgd", storage=storage, directions=["maximize", "minimize"])
    info.write(failing)
    trial = failing.ask({"sigma": optuna.distributions.FloatDistribution(1e-3, 1e3, log=True)})
    dataclasses.replace(record, control=_record([False] * 20)).write(trial)
    failing.tell(trial, record.objectives())
    text = "\n".join(dominance_lines(Studies(grid=None, search=search, dpsgd=failing)))
    assert "not comparable: the attack fails on this network even without noise; no dominance is claimed" in text
    assert "dominate it" not in text


@pytest.mark.parametrize(
    ("model", "recognised", "verdict"),
    [(0.2, 10, "no"), (0.3, 12, "no"), (0.3, 10, "yes")],  # DP-SGD: model 0.2, attack 12/20
)
def test_a_tie_with_dp_sgd_is_not_a_win(model, recognised, verdict):
    """Issue #16: "beats DP on both" needs strictly better model and attack accuracy."""
    info = StudyInfo("dpsgd", "", (), "quick", "abc", "trained", "d1", norm="none")
    storage = optuna.storages.InMemoryStorage()
    dp_study = optuna.create_study(study_name="x-dpsgd", storage=storage, directions=["maximize", "minimize"])
    info.write(dp_study)
    dp_attack = _record([True] * 12 + [False] * 8)
    record = DPRecord(0.5, 1.0, 1e-5, 15.0, None, 4, 0.2, (0.2,) * 10, dp_attack, dp_attack, dp_attack, 1.0, 1.0,
                      norm="none", nonprivate_accuracy=0.4, identity=dp_attack)  # fmt: skip
    dp_study.enqueue_trial({"sigma": 0.5})
    trial = dp_study.ask({"sigma": optuna.distributions.FloatDistribution(1e-3, 1e3, log=True)})
    record.write(trial)
    dp_study.tell(trial, record.objectives())
    search = optuna.create_study(study_name="x-search", storage=storage, directions=["maximize", "minimize"])
    dataclasses.replace(info, kind="search").write(search)
    attack = _record([True] * recognised + [False] * (20 - recognised))
    policy = EvaluationRecord("Identity", "{}", "trained", model, (model,) * 10, attack, 1.0, 1.0)
    trial = search.ask()
    policy.write(trial)
    search.tell(trial, (policy.model_accuracy, policy.attack.attack_accuracy))
    rows = per_label_rows(Studies(grid=None, search=search, dpsgd=dp_study), tolerance=0.05)
    assert {row["beats DP on both"] for row in rows} == {verdict}


def test_sign_columns_count_the_kept_signs_and_what_each_bought():
    """Issue #15: the adaptive attacker's guess of the client's sign, and its verdicts split by right and wrong."""
    from autoshield.report.attackers import sign_columns, sign_line

    record = _record([True, True, False, True, False])
    outcomes = dataclasses.replace(record.outcomes, sign_right=(1, 1, 1, 0, -1))  # the last victim's cell: unsigned
    assert sign_columns(outcomes) == {"sign right": "3/4", "recognised: right / wrong sign": "2/3 / 1/1"}
    assert sign_line(outcomes) == (
        "kept the client's sign for 3/4 victims of signed cells (recognised 2/3 of them) and the other sign for 1 "
        "(recognised 1/1)"
    )
    for unknown in (record.outcomes, dataclasses.replace(outcomes, sign_right=(-1,) * 5), None):
        assert set(sign_columns(unknown).values()) == {"—"} and sign_line(unknown) is None
