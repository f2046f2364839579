"""Issue #37 item 1: the cell x label likelihood-ratio test that says whether choosing per label matters."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from autoshield.privacy.interaction import additive_fit, deviance, interaction_test
from autoshield.study.analysis import best_cells
from autoshield.study.params import GRID_PARAM
from autoshield.study.records import EvaluationRecord, StudyInfo

from .test_report import _record

CELLS, LABELS = 12, 10


def _additive_rates(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cell, label = rng.normal(0, 1, CELLS), rng.normal(0, 0.5, LABELS)
    return 1 / (1 + np.exp(-(cell[:, None] + label[None, :])))


def _opposite_halves(delta: float) -> np.ndarray:
    """Each cell's labels split in two halves `delta` apart, one way on even cells and the other on odd ones."""
    return np.outer(np.where(np.arange(CELLS) % 2, 1.0, -1.0), np.where(np.arange(LABELS) < 5, 1.0, -1.0)) * delta / 2


def test_the_additive_fit_matches_every_cells_and_every_labels_count():
    """The maximum-likelihood fit of a model with a term per cell and per label reproduces each margin's count
    (its score equations), also with a cell that never succeeds (a separated direction)."""
    rng = np.random.default_rng(0)
    n = np.full((CELLS, LABELS), 5)
    k = rng.binomial(n, _additive_rates(0))
    k[3] = 0
    fitted = additive_fit(k, n) * n
    np.testing.assert_allclose(fitted.sum(1), k.sum(1), atol=0.05)
    np.testing.assert_allclose(fitted.sum(0), k.sum(0), atol=0.05)
    assert deviance(k, n, k / n) == pytest.approx(0.0, abs=1e-9)  # the saturated model fits exactly


def test_the_test_finds_an_interaction_and_not_one_that_is_absent():
    n = np.full((CELLS, LABELS), 10)
    rng = np.random.default_rng(1)
    rates = _additive_rates(1)
    absent = interaction_test(rng.binomial(n, rates), n, draws=199, seed=0)
    present = interaction_test(rng.binomial(n, np.clip(rates + _opposite_halves(0.5), 0, 1)), n, draws=199, seed=0)
    assert absent.p > 0.05 and absent.conclusion == "no evidence that it depends on the label"
    assert present.p < 0.01 and present.conclusion == "depends on the label"
    assert absent.df == present.df == CELLS * LABELS - (CELLS + LABELS - 1)


def test_power_grows_with_the_victims_per_label():
    rates = _additive_rates(2)
    k5, k40 = (np.random.default_rng(3).binomial(np.full((CELLS, LABELS), m), rates) for m in (5, 40))
    few = interaction_test(k5, np.full((CELLS, LABELS), 5), draws=199, delta=0.2)
    many = interaction_test(k40, np.full((CELLS, LABELS), 40), draws=199, delta=0.2)
    assert few.power < many.power and many.power > 0.8


def test_counts_of_the_wrong_shape_are_refused():
    with pytest.raises(ValueError, match="at least 2 of each"):
        interaction_test(np.zeros((1, 10), int), np.ones((1, 10), int))


def _grid(cells: dict[str, list[bool]]) -> optuna.Study:
    """A grid study whose cells recognised `cells[name]` of 50 victims (5 per label), all at one model accuracy."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    StudyInfo("grid", "", tuple(cells), "smoke", "abc", "trained", "d1", norm="none").write(study)
    for name, recognised in cells.items():
        record = EvaluationRecord(name, "{}", "trained", 0.3, (0.3,) * 10, _record(recognised), 1.0, 1.0)
        study.enqueue_trial({GRID_PARAM: name})  # asked with a distribution, the cell would be drawn at random
        trial = study.ask({GRID_PARAM: optuna.distributions.CategoricalDistribution(list(cells))})
        record.write(trial)
        study.tell(trial, (record.model_accuracy, record.attack.attack_accuracy))
    return study


def test_pooled_over_labels_a_cell_can_win_every_label_that_no_label_alone_can_show():
    """Five victims per label cannot reach p < 0.05 (all five discordant: 0.0625); fifty pooled over labels can.
    Where privacy does not depend on the label, the per-label choice rests on the pooled test (issue #37 item 1)."""
    study = _grid({"Identity": [True] * 50, "Solarize:9": [False] * 50})
    alone, _ = best_cells(study)
    assert not any(row.significant for row in alone)
    pooled, rule = best_cells(study, pooled=True)
    assert all(row.significant and str(row.cell) == "Solarize:9" for row in pooled)
    assert "every label's victims (pooled)" in rule and "Holm over the 1 cells compared overall" in rule
