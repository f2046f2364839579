"""The stored-results schema is pinned: the exact attribute keys and JSON types that studies already hold.

Everything else reads results through `autoshield.study.records`, so this is the one test that spells the
keys: a renamed or retyped attribute would make existing studies unreadable, and must fail here.
"""

from __future__ import annotations

import dataclasses
import math

import optuna
import pytest
import torch

from autoshield.core.errors import AutoshieldError
from autoshield.data.cifar import CLASSES
from autoshield.privacy.paired import Outcomes
from autoshield.report.tables import NOT_COMPARABLE, dp_rows
from autoshield.study.catalog import open_study
from autoshield.study.dp_records import DPRecord
from autoshield.study.records import AttackRecord, EvaluationRecord, StudyInfo

ATTACK_KEYS = [
    "attack_accuracy",
    "attack_accuracy_per_label",
    "attack_accuracy_ci",
    "psnr_original",
    "psnr_original_per_label",
    "psnr_transformed",
    "ssim_original",
    "ssim_transformed",
    "recognisability",
    "recognisability_per_label",
    "label_recovery",
    "failed_reconstructions",
    "attacks_from_cache",
    "chance_floor",
    "chance_floor_per_label",
    "outcomes",
    "seconds",
    "identified",
    "identified_per_label",
    "median_rank",
    "lineup",
    "judge",
]
PER_LABEL = {"attack_accuracy_per_label", "psnr_original_per_label", "recognisability_per_label"}


def _attack(base: float) -> AttackRecord:
    per_label = tuple(base + i / 100 for i in range(10))
    return AttackRecord(base, per_label, (base - 0.1, base + 0.1), 15.0, per_label, 16.0, 0.3, 0.4, 0.9,
                        per_label, 1.0, 2, 3)  # fmt: skip


def _stored(write, value: float) -> optuna.trial.FrozenTrial:
    study = optuna.create_study(directions=["maximize", "minimize"])
    trial = study.ask()
    write(trial)
    study.tell(trial, (value, 0.4))
    return study.trials[0]


def _evaluation(**changes) -> EvaluationRecord:
    values = dict(
        policy="Rotate:5",
        policy_json='{"airplane": "Rotate:5"}',
        utility="trained",
        model_accuracy=0.5,
        model_accuracy_per_label=tuple(0.5 for _ in range(10)),
        attack=_attack(0.4),
        train_seconds=10.0,
        attack_seconds=5.0,
    )
    return EvaluationRecord(**(values | changes))


def test_evaluation_attributes_are_the_stored_schema():
    record = _evaluation()
    trial = _stored(record.write, 0.5)
    expected = ["policy", "policy_json", "utility", "model_accuracy_per_label", *ATTACK_KEYS]
    assert list(trial.user_attrs) == [
        *expected,
        "train_seconds",
        "attack_seconds",
        "attacker",
        "attackers",
        "privacy",
    ]
    for key in PER_LABEL | {"model_accuracy_per_label"}:  # issue #16: a trial page names each label's figure
        assert list(trial.user_attrs[key]) == list(CLASSES)
    assert isinstance(trial.user_attrs["attack_accuracy_ci"], list)
    assert isinstance(trial.user_attrs["failed_reconstructions"], int)
    assert EvaluationRecord.read(trial) == record


def test_stored_figures_are_rounded_and_old_lists_still_read():
    """Issue #16: float32 noise (0.8999999761581421) is not stored; studies that stored plain lists still read."""
    noisy = float(torch.tensor(0.9, dtype=torch.float32))
    assert noisy != 0.9
    record = dataclasses.replace(_attack(0.4), recognisability=noisy, attack_accuracy_per_label=(noisy,) * 10)
    assert record.recognisability == 0.9 and record.attack_accuracy_per_label == (0.9,) * 10
    attrs = record.as_attrs()
    assert attrs["attack_accuracy_per_label"]["cat"] == 0.9
    old = {**attrs, "attack_accuracy_per_label": [0.9] * 10}
    assert AttackRecord.from_attrs(old) == AttackRecord.from_attrs(attrs) == record


def test_every_attacker_is_stored_once_and_read_back():
    """Issue #15: the objective's attack unprefixed (what every reader reads), the other attackers under their
    name; a trial stored before attackers existed reads as naive."""
    attacks = {"naive": _attack(0.3), "posthoc": _attack(0.35), "adaptive": _attack(0.5)}
    record = _evaluation(attack=attacks["adaptive"], attacker="adaptive", attacks=attacks)
    trial = _stored(record.write, 0.5)
    assert trial.user_attrs["attack_accuracy"] == 0.5 and "adaptive_attack_accuracy" not in trial.user_attrs
    assert trial.user_attrs["naive_attack_accuracy"] == 0.3 and trial.user_attrs["posthoc_attack_accuracy"] == 0.35
    assert EvaluationRecord.read(trial) == record
    old = {k: v for k, v in trial.user_attrs.items() if k not in ("attacker", "attackers")}
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trial(optuna.trial.create_trial(values=[0.5, 0.5], user_attrs=old))
    legacy = EvaluationRecord.read(study.trials[0])
    assert legacy.attacker == "naive" and legacy.attacks == {"naive": legacy.attack}


def _dp_record(**changes) -> DPRecord:
    values = dict(
        sigma=0.5,
        max_grad_norm=1.0,
        delta=1e-5,
        epsilon=15.4,
        epsilon_prv=14.9,
        epochs=4,
        model_accuracy=0.2,
        model_accuracy_per_label=tuple(0.2 for _ in range(10)),
        noised=_attack(0.1),
        weights=_attack(0.3),
        control=_attack(0.2),
        train_seconds=100.0,
        attack_seconds=50.0,
        norm="none",
        nonprivate_accuracy=0.4,
        identity=_attack(0.25),
        signal_to_noise=(0.002, 0.001),
    )
    return DPRecord(**{**values, **changes})


def test_dp_attributes_are_the_stored_schema_and_old_studies_read_without_control():
    record = _dp_record()
    trial = _stored(record.write, 0.2)
    head = ["sigma", "max_grad_norm", "delta", "epsilon", "epsilon_prv", "epochs", "setting"]
    head.append("model_accuracy_per_label")
    attacks = [*ATTACK_KEYS, *(f"{s}_{k}" for s in ("weights", "control", "identity") for k in ATTACK_KEYS)]
    gate = ["norm", "nonprivate_accuracy", "signal_to_noise", "noised_comparable", "weights_comparable"]
    assert list(trial.user_attrs) == [*head, *attacks, *gate, "train_seconds", "attack_seconds"]
    assert trial.user_attrs["setting"] == "noised"
    assert trial.user_attrs["noised_comparable"] is True and trial.user_attrs["weights_comparable"] is True
    assert DPRecord.read(trial) == record
    old = _stored(
        lambda t: DPRecord(
            **{**record.__dict__, "control": None, "identity": None, "norm": None, "nonprivate_accuracy": None}
        ).write(t),
        0.2,
    )
    assert not any(key.startswith(("control_", "identity_")) for key in old.user_attrs)
    read = DPRecord.read(old)
    assert read.control is None and read.identity is None and read.comparable("noised") is None


@pytest.mark.parametrize(
    ("control", "weights", "identity", "noised_ok", "weights_ok"),
    [
        (0.20, 0.30, 0.25, True, True),  # within 10 points of Identity
        (0.15, 0.15, 0.25, True, True),  # exactly 10 points below still counts
        (0.10, 0.30, 0.40, False, True),  # the attack fails on the noised setting's network even without noise
        (0.30, 0.05, 0.40, True, False),  # ... or on the DP-trained weights
    ],
)
def test_the_no_noise_control_gates_comparability(control, weights, identity, noised_ok, weights_ok):
    record = _dp_record(control=_attack(control), weights=_attack(weights), identity=_attack(identity))
    assert record.comparable("noised") is noised_ok and record.comparable("weights") is weights_ok
    row = dp_rows([record])[0]
    assert row["noised is"] == ("comparable" if noised_ok else NOT_COMPARABLE)
    assert row["weights is"] == ("comparable" if weights_ok else NOT_COMPARABLE)
    assert NOT_COMPARABLE == "not comparable: the attack fails on this network even without noise"


def test_study_info_attributes_and_refusal_of_a_differing_worker():
    info = StudyInfo("grid", "three", ("Identity", "Rotate:9"), "smoke", "abc", "recognizability", "d1", norm="none")
    study = optuna.create_study(directions=["maximize", "minimize"])
    info.write(study)
    assert study.user_attrs["autoshield"] == {
        "kind": "grid",
        "space": "three",
        "cells": ["Identity", "Rotate:9"],
        "profile": "smoke",
        "profile_fingerprint": "abc",
        "utility": "recognizability",
        "data": "d1",
        "merged": [],
        "norm": "none",
        "attacker": "naive",
        "judge": "",
        "privacy": "recognition",
    }
    assert StudyInfo.read(study) == info and info.differences(study) == []
    other = dataclasses.replace(info, profile_fingerprint="xyz")
    assert other.differences(study) == ["profile_fingerprint: study has 'abc', this run 'xyz'"]
    # studies older than the stored norm: DP-SGD ran on GroupNorm, policies on BatchNorm
    for kind, norm in (("dpsgd", "group"), ("grid", "batch")):
        old = optuna.create_study(directions=["maximize", "minimize"])
        old.set_user_attr("autoshield", {k: v for k, v in {**info.as_attrs(), "kind": kind}.items() if k != "norm"})
        assert StudyInfo.read(old).norm == norm
    # studies older than the stored attacker scored the naive one: a naive run joins them, another is refused
    old = optuna.create_study(directions=["maximize", "minimize"])
    old.set_user_attr("autoshield", {k: v for k, v in info.as_attrs().items() if k != "attacker"})
    assert StudyInfo.read(old).attacker == "naive" and info.differences(old) == []
    adaptive = dataclasses.replace(info, attacker="adaptive")
    assert adaptive.differences(old) == ["attacker: study has 'naive', this run 'adaptive'"]


def test_a_study_keeps_one_judge_and_an_older_one_adopts_the_first_it_sees():
    storage = optuna.storages.InMemoryStorage()
    info = StudyInfo("grid", "three", ("Identity",), "smoke", "abc", "trained", "d1", judge="a" * 64)
    study = open_study(storage, name="s", info=info)
    assert StudyInfo.read(study).judge == "a" * 64
    with pytest.raises(AutoshieldError, match="judge: study has 'aaa"):
        open_study(storage, name="s", info=dataclasses.replace(info, judge="b" * 64))
    older = optuna.create_study(storage=storage, study_name="old-grid", directions=["maximize", "minimize"])
    older.set_user_attr("autoshield", {k: v for k, v in info.as_attrs().items() if k != "judge"})
    assert StudyInfo.read(older).judge == ""
    open_study(storage, name="old", info=dataclasses.replace(info, judge="c" * 64))
    assert StudyInfo.read(older).judge == "c" * 64


def test_per_victim_outcomes_round_trip_with_failures_as_null():
    outcomes = Outcomes(
        victims=(7, 3),
        labels=(0, 1),
        recognised=(True, False),
        predicted=(0, -1),
        floor=(False, False),
        failed=(False, True),
        psnr_original=(14.5, math.nan),
        psnr_transformed=(15.0, math.nan),
        ssim_original=(0.3, math.nan),
        ssim_transformed=(0.4, math.nan),
        recognisable=(True, True),
    )
    record = dataclasses.replace(_attack(0.4), chance_floor=0.1, chance_floor_per_label=(0.1,) * 10, outcomes=outcomes)
    attrs = record.as_attrs()
    assert attrs["outcomes"]["psnr_original"] == [14.5, None]  # JSON null, which every storage keeps
    trial = _stored(lambda t: [t.set_user_attr(k, v) for k, v in attrs.items()], 0.5)
    back = AttackRecord.from_attrs(trial.user_attrs)
    assert back.outcomes.victims == (7, 3) and back.outcomes.failed == (False, True)
    assert back.outcomes.psnr_original[0] == 14.5 and math.isnan(back.outcomes.psnr_original[1])
    assert back.chance_floor == 0.1
    stored_before = {**attrs, "outcomes": {k: v for k, v in attrs["outcomes"].items() if k != "sign_right"}}
    assert AttackRecord.from_attrs(stored_before).outcomes.sign_right == ()  # before the sign was kept: unknown
    signed = dataclasses.replace(record, outcomes=dataclasses.replace(outcomes, sign_right=(1, 0)))
    assert AttackRecord.from_attrs(signed.as_attrs()).outcomes.sign_right == (1, 0)


def test_studies_older_than_the_pool_read_with_empty_new_fields():
    study = optuna.create_study(directions=["maximize", "minimize"])
    old = {"kind": "grid", "space": "s", "cells": ["Identity"], "profile": "quick", "profile_fingerprint": "f",
           "utility": "trained", "data": "d"}  # fmt: skip
    study.set_user_attr("autoshield", old)
    assert StudyInfo.read(study).merged == ()
    attrs = {
        k: v
        for k, v in _attack(0.4).as_attrs().items()
        if k not in ("chance_floor", "chance_floor_per_label", "outcomes")
    }
    record = AttackRecord.from_attrs(attrs)
    assert record.outcomes is None and record.chance_floor is None
