"""DP-SGD and the policies meet where their utilities meet, and share a panel only when measured alike (issue #37)."""

from __future__ import annotations

import dataclasses
import math

import optuna
import pytest

from autoshield.report.matched import CurvePoint, matched, matched_lines
from autoshield.report.plots import panel_of
from autoshield.report.studies import Studies
from autoshield.study.dp_records import DPRecord
from autoshield.study.records import EvaluationRecord, StudyInfo

from .test_report import _record

CURVE = [CurvePoint(0.1, 0.30, 0.6), CurvePoint(0.5, 0.25, 0.4), CurvePoint(1.0, 0.20, 0.2)]
INFO = StudyInfo("dpsgd", "", (), "quick", "abc", "trained", "d1", norm="none")


def test_the_matched_sigma_is_interpolated_in_log_sigma_between_its_neighbours():
    at = matched(curve=CURVE, accuracy=0.25)
    assert at.sigma == pytest.approx(0.5) and at.attack == pytest.approx(0.4)
    between = matched(curve=list(reversed(CURVE)), accuracy=0.225)  # any order: the curve is sorted by σ
    assert between.sigma == pytest.approx(math.sqrt(0.5)) and between.attack == pytest.approx(0.3)
    assert between.note == "between σ = 0.5 and 1"


def test_outside_the_measured_sigmas_nothing_is_extrapolated():
    above = matched(curve=CURVE, accuracy=0.35)
    assert above.sigma is None and above.attack is None and "above DP-SGD at every σ measured" in above.note
    below = matched(curve=CURVE, accuracy=0.1)
    assert below.sigma is None and "below DP-SGD at every measured σ" in below.note
    assert matched(curve=CURVE[:1], accuracy=0.3).note == "one σ measured: no curve to interpolate"


def test_a_curve_that_crosses_twice_is_read_at_its_largest_sigma():
    """Seed noise can bend the curve back up; DP-SGD at its most private for that utility errs against the
    policy."""
    bent = [CurvePoint(0.1, 0.30, 0.6), CurvePoint(0.5, 0.20, 0.4), CurvePoint(1.0, 0.25, 0.2)]
    assert matched(curve=bent, accuracy=0.22).note == "between σ = 0.5 and 1"


def _study(storage, name: str, info: StudyInfo) -> optuna.Study:
    study = optuna.create_study(study_name=name, storage=storage, directions=["maximize", "minimize"])
    info.write(study)
    return study


def test_a_dp_point_shares_the_policies_panel_only_when_network_utility_and_attack_budget_match():
    storage = optuna.storages.InMemoryStorage()
    dp = _study(storage, "x-dpsgd", INFO)
    assert panel_of(dp) == panel_of(_study(storage, "x-search", dataclasses.replace(INFO, kind="search")))
    for change in ({"norm": "batch"}, {"utility": "recognizability"}, {"profile_fingerprint": "other-attack"}):
        other = _study(storage, f"y-{len(change)}-{next(iter(change))}", dataclasses.replace(INFO, **change))
        assert panel_of(dp) != panel_of(other)


def _dp_study(storage) -> optuna.Study:
    dp = _study(storage, "x-dpsgd", INFO)
    for sigma, model, recognised in ((0.1, 0.30, 12), (0.5, 0.25, 8), (1.0, 0.20, 4)):
        attack = _record([True] * recognised + [False] * (20 - recognised))
        record = DPRecord(sigma, 1.0, 1e-5, 15.0, None, 4, model, (model,) * 10, attack, attack, attack, 1.0, 1.0,
                          norm="none", nonprivate_accuracy=0.4, identity=attack)  # fmt: skip
        trial = dp.ask({"sigma": optuna.distributions.FloatDistribution(1e-3, 1e3, log=True)})
        record.write(trial)
        dp.tell(trial, record.objectives())
    return dp


def test_the_report_names_the_matched_sigma_as_interpolated_and_skips_an_incomparable_study():
    storage = optuna.storages.InMemoryStorage()
    dp = _dp_study(storage)
    search = _study(storage, "x-search", dataclasses.replace(INFO, kind="search"))
    grid = _study(storage, "x-grid", dataclasses.replace(INFO, kind="grid", utility="recognizability"))
    for study in (search, grid):
        policy = EvaluationRecord("Identity", "{}", "trained", 0.225, (0.225,) * 10, _record([True] * 10), 1.0, 1.0)
        trial = study.ask()
        policy.write(trial)
        study.tell(trial, (policy.model_accuracy, policy.attack.attack_accuracy))
    text = "\n".join(matched_lines(Studies(grid=grid, search=search, dpsgd=dp)))
    assert "Measured σ: 0.1, 0.5, 1" in text and "**Interpolated, not measured**" in text
    row = next(line for line in text.splitlines() if line.startswith("| x-search"))
    assert "| 22.5 | 100.0 | 0.707 | 30.0 | between σ = 0.5 and 1 |" in row  # 8/20 and 4/20 halfway: 30 %
    assert "x-grid: not comparable: x-grid's model accuracy is recognizability" in text
