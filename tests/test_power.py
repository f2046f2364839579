"""The planning arithmetic: McNemar's exact power under Holm, and `autoshield plan` around it."""

from __future__ import annotations

import itertools
import math

import pytest

from autoshield.cli import main
from autoshield.core.errors import AutoshieldError
from autoshield.privacy.paired import mcnemar_exact
from autoshield.privacy.power import mcnemar_power, victims_for_power
from autoshield.report.design import REFERENCE_ONLY_CELL, REFERENCE_ONLY_IDENTITY, design_line
from autoshield.report.format import percent


def _enumerated(victims: int, only_baseline: float, only_cell: float, level: float) -> float:
    """Power by summing every outcome of `victims` pairs: (only baseline, only cell, concordant) counts."""
    total = 0.0
    for b, c in itertools.product(range(victims + 1), repeat=2):
        if b + c > victims:
            continue
        ways = math.comb(victims, b) * math.comb(victims - b, c)
        chance = ways * only_baseline**b * only_cell**c * (1 - only_baseline - only_cell) ** (victims - b - c)
        total += chance * (b > c and mcnemar_exact(c, b) <= level)
    return total


@pytest.mark.parametrize(("victims", "b", "c", "family"), [(12, 0.4, 0.1, 1), (20, 0.3, 0.05, 3), (15, 0.2, 0.2, 1)])
def test_power_equals_the_sum_over_every_outcome(victims, b, c, family):
    assert mcnemar_power(victims=victims, only_baseline=b, only_cell=c, family=family) == pytest.approx(
        _enumerated(victims, b, c, 0.05 / family), abs=1e-12
    )


def test_a_larger_family_needs_more_victims_and_an_absent_effect_none():
    one = victims_for_power(only_baseline=0.34, only_cell=0.08)
    many = victims_for_power(only_baseline=0.34, only_cell=0.08, family=58)
    assert one is not None and many is not None and many > one
    assert mcnemar_power(victims=many, only_baseline=0.34, only_cell=0.08, family=58) >= 0.8
    assert mcnemar_power(victims=many - 1, only_baseline=0.34, only_cell=0.08, family=58) < 0.8
    assert mcnemar_power(victims=50, only_baseline=0.1, only_cell=0.1) < 0.05  # no effect: about α or less
    with pytest.raises(AutoshieldError, match="sum to at most 1"):
        mcnemar_power(victims=5, only_baseline=0.7, only_cell=0.6)


def test_plan_prints_the_design_power_the_victims_needed_and_a_timed_cost(capsys):
    assert main(["plan", "--cells", "3", "--only-identity", "0.5", "--only-cell", "0", "--profile", "smoke"]) == 0
    out = capsys.readouterr().out
    assert "family: 30 tests (3 cells x 10 labels)" in out and "power 0%" in out
    assert "for 80% power:" in out and "s per victim at 20 iterations (timed probe)" in out
    assert main(["plan", "--only-identity", "0.9", "--only-cell", "0.3"]) == 2
    err = capsys.readouterr().err
    assert "their sum is > 1" in err and err.count("\n") == 1


def test_a_study_header_prices_its_own_design():
    """The grid's per-label claims are Holm over cells x labels, its overall ones over cells; the search compares
    its policies overall only; DP-SGD has no such family."""
    effect = {"only_baseline": REFERENCE_ONLY_IDENTITY, "only_cell": REFERENCE_ONLY_CELL}
    grid = design_line(kind="grid", compared=57, victims_per_label=20)
    label = mcnemar_power(victims=20, family=570, **effect)
    overall = mcnemar_power(victims=200, family=57, **effect)
    assert f"per label {percent(label)} % (Holm over 57 cells x 10 labels)" in grid
    assert f"overall {percent(overall)} % (Holm over 57 cells)" in grid and 0 < label < overall
    search = design_line(kind="search", compared=199, victims_per_label=5)
    assert ": overall " in search and "(Holm over 199 policies)" in search
    assert design_line(kind="dpsgd", compared=3, victims_per_label=5) is None
