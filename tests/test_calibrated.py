"""Issue #36 item 3: the calibrated attacker picks per label on calibration victims, never on the scored ones."""

from __future__ import annotations

import optuna
import pytest
import torch

from autoshield.cli import main
from autoshield.core.choices import ATTACKERS
from autoshield.core.config import load_profile
from autoshield.core.errors import AutoshieldError
from autoshield.data.cifar import CLASSES, Split
from autoshield.data.victims import calibration_slots, require_calibration, victim_pool
from autoshield.evaluation.attackers import apply_choice, calibrated
from autoshield.evaluation.evaluate import calibration_victims, fresh_victims, victims
from autoshield.evaluation.judge import AttackResult, attack_result
from autoshield.privacy.paired import Outcomes
from autoshield.study.records import EvaluationRecord, StudyInfo
from autoshield.study.storage import open_storage

LABELS = [y for y in range(len(CLASSES)) for _ in range(2)]  # two victims per label


def _result(recognised: list[bool], *, victims: tuple[int, ...] = tuple(range(20)), shade: float = 0.0) -> AttackResult:
    """A judged attack on 20 synthetic victims whose verdicts are `recognised`; its reconstructions are all `shade`,
    so a picked victim shows whose it is."""
    n = len(recognised)
    split = Split(torch.zeros(n, 3, 4, 4, dtype=torch.uint8), torch.tensor(LABELS), torch.tensor(victims))
    outcomes = Outcomes(
        victims=victims,
        labels=tuple(LABELS),
        recognised=tuple(recognised),
        predicted=tuple(y if r else (y + 1) % 10 for y, r in zip(LABELS, recognised, strict=True)),
        floor=(False,) * n,
        failed=(False,) * n,
        psnr_original=(20.0,) * n,
        psnr_transformed=(20.0,) * n,
        ssim_original=(0.5,) * n,
        ssim_transformed=(0.5,) * n,
        recognisable=(True,) * n,
        rank=tuple(1 if r else 7 for r in recognised),
    )
    return attack_result(
        outcomes,
        recovered=torch.ones(n, dtype=torch.long),
        lineup=100,
        victims=split,
        transformed=split,
        reconstructions=torch.full((n, 3, 4, 4), shade),
        seconds=1.0,
        cached=0,
        judge="j",
    )


def test_the_choice_is_per_label_and_reads_only_the_calibration_verdicts():
    # on calibration victims: naive recognises both of labels 0-4, adaptive both of labels 5-9, post-hoc one of each
    naive = _result([y < 5 for y in LABELS])
    adaptive = _result([y >= 5 for y in LABELS])
    posthoc = _result([i % 2 == 0 for i in range(20)])
    choice = calibrated({"naive": naive, "posthoc": posthoc, "adaptive": adaptive})
    assert choice == ("naive",) * 5 + ("adaptive",) * 5
    # a tie goes to the attacker that knows more, as `strongest` breaks it
    assert calibrated({"naive": naive, "posthoc": naive}) == ("posthoc",) * 10
    # by identifiability the ranks decide: here the same verdicts, so the same choice
    assert calibrated({"naive": naive, "adaptive": adaptive}, privacy="identifiability") == choice


def test_applying_the_choice_gives_each_label_its_attackers_victims():
    scored = {"naive": _result([True] * 20, shade=0.0), "adaptive": _result([False] * 20, shade=1.0)}
    choice = ("naive",) * 3 + ("adaptive",) * 7
    result = apply_choice(scored, choice)
    assert result.outcomes.recognised == tuple(y < 3 for y in LABELS)
    assert result.overall.attack_accuracy.mean == pytest.approx(6 / 20)
    for y in range(10):
        assert result.per_label[y].attack_accuracy.mean == (1.0 if y < 3 else 0.0)
        assert result.reconstructions[[i for i, lab in enumerate(LABELS) if lab == y]].unique().item() == (y >= 3)
    assert result.seconds == 2.0  # both attackers ran
    with pytest.raises(AutoshieldError, match="posthoc"):
        apply_choice(scored, ("posthoc",) * 10)
    with pytest.raises(ValueError, match="other victims"):
        apply_choice({"naive": scored["naive"], "adaptive": _result([False] * 20, victims=tuple(range(1, 21)))}, choice)


def test_calibration_slots_are_disjoint_from_scored_and_confirmation_slots(data):
    quick = load_profile("quick")
    assert calibration_slots(quick) == range(95, 100)
    profile = load_profile("smoke")  # one victim per label, a pool of 10: slot 9 calibrates
    reserved = calibration_slots(profile)
    held_out = calibration_victims(data, profile)
    assert set(held_out.slots.tolist()) == set(reserved) == {9}
    assert not set(held_out.indices.tolist()) & set(victims(data, profile).indices.tolist())
    confirm = fresh_victims(data, profile, per_label=8)  # slots 1-8: everything between
    assert not set(held_out.indices.tolist()) & set(confirm.indices.tolist())
    with pytest.raises(AutoshieldError, match="calibration victims"):
        fresh_victims(data, profile, per_label=9)
    crowded = load_profile("smoke", overrides=("images_per_label=6",))
    with pytest.raises(AutoshieldError, match="raise victim_pool_per_label"):
        require_calibration(crowded)
    both = victim_pool(profile).draw_slots(data.train, [0, *reserved])
    assert sorted(both.slots.tolist()) == [0] * 10 + [9] * 10


def test_a_calibrated_grid_scores_each_label_by_its_calibrated_attacker(tmp_path, data_root, space):
    db = tmp_path / "c.db"
    args = ["grid", "--profile", "smoke", "--space", str(space), "--attacker", "calibrated"]
    assert (
        main([*args, "--utility", "recognizability", "--storage", f"sqlite:///{db}", "--data-root", str(data_root)])
        == 0
    )
    study = optuna.load_study(study_name="autoshield-grid", storage=open_storage(f"sqlite:///{db}", heartbeat=False))
    assert StudyInfo.read(study).attacker == "calibrated"
    trials = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(trials) == 3
    for trial in trials:
        record = EvaluationRecord.read(trial)
        assert record.attacker == "calibrated" and set(record.attacks) == {*ATTACKERS, "calibrated"}
        assert trial.values[1] == record.attack.attack_accuracy == record.attacks["calibrated"].attack_accuracy
        assert len(record.choice) == 10 and set(record.calibration) == set(ATTACKERS)
        for y, name in enumerate(record.choice):  # the calibration's best on the label, ties to knowing more
            best = max(record.calibration.values(), key=lambda figures: figures[y])[y]
            assert record.calibration[name][y] == best
            assert record.attack.attack_accuracy_per_label[y] == record.attacks[name].attack_accuracy_per_label[y]
    out = tmp_path / "report"
    assert main(["report", "--storage", f"sqlite:///{db}", "--out", str(out)]) == 0
    assert "still vs calibrated" in (out / "report.md").read_text()
    header, *rows = (out / "attackers.csv").read_text().splitlines()
    assert header.endswith(",labels facing it") and len(rows) == 3 * 5  # 3 cells x 4 attackers and the calibrated
    for cell in ("Identity", "Rotate:9", "Invert"):
        facing = {r.split(",")[1]: int(r.split(",")[-1]) for r in rows if r.startswith(f"{cell},")}
        assert facing["calibrated"] == 10 == sum(facing[a] for a in ATTACKERS)


def test_a_pool_too_small_to_calibrate_on_is_refused_in_one_line_before_any_work(tmp_path, data_root, space, capsys):
    db = tmp_path / "c.db"
    args = ["grid", "--profile", "smoke", "--space", str(space), "--attacker", "calibrated", "--set"]
    code = main([*args, "images_per_label=6", "--storage", f"sqlite:///{db}", "--data-root", str(data_root)])
    err = capsys.readouterr().err
    assert code != 0 and "raise victim_pool_per_label" in err and "Traceback" not in err
    assert not db.exists() or not optuna.get_all_study_names(f"sqlite:///{db}")
