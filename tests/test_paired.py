"""Paired tests against Identity and the best-cell rule that rests on them (no attack runs: outcomes are given)."""

from __future__ import annotations

import json
import math

import optuna
import pytest

from autoshield.data.cifar import CLASSES
from autoshield.data.policy import IDENTITY, Cell, Policy
from autoshield.privacy.paired import Outcomes, compare, holm, mcnemar_exact, scored, smallest_p, wilcoxon
from autoshield.report.cells import cell_rows, outcome_columns
from autoshield.report.confirmed import confirmation_rows
from autoshield.report.tables import grid_best_rows
from autoshield.study.analysis import NONE_BETTER, best_cells, best_policy, compare_all, judge_limited
from autoshield.study.confirm import confirmation_groups, confirmed_comparisons
from autoshield.study.params import grid_params
from autoshield.study.records import AttackRecord, ConfirmationRecord, EvaluationRecord, StudyInfo


def outcomes(recognised: list[bool], *, per_label: int, psnr: float = 15.0) -> Outcomes:
    n = len(recognised)
    return Outcomes(
        victims=tuple(range(100, 100 + n)),
        labels=tuple(i // per_label for i in range(n)),
        recognised=tuple(recognised),
        predicted=tuple(i // per_label if r else 6 for i, r in enumerate(recognised)),
        floor=(False,) * n,
        failed=(False,) * n,
        psnr_original=tuple(psnr + (i % 3) * 0.1 for i in range(n)),
        psnr_transformed=(psnr,) * n,
        ssim_original=(0.3,) * n,
        ssim_transformed=(0.3,) * n,
        recognisable=(True,) * n,
    )


def test_mcnemar_equals_the_hand_computed_exact_binomial():
    # 1 vs 7 discordant pairs: p = 2 * P(X <= 1 | n = 8, 1/2) = 2 * (1 + 8) / 256
    assert mcnemar_exact(1, 7) == pytest.approx(18 / 256)
    assert mcnemar_exact(7, 1) == pytest.approx(18 / 256)
    assert mcnemar_exact(0, 0) == 1.0
    assert smallest_p(5) == pytest.approx(1 / 16) and smallest_p(6) == pytest.approx(1 / 32)


def test_holm_matches_the_hand_computed_step_down():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_compare_pairs_by_victim_and_counts_discordant_pairs():
    base = outcomes([True, True, True, False], per_label=4)
    cell = outcomes([False, True, False, True], per_label=4, psnr=13.0)
    test = compare(cell, base)
    assert (test.n, test.only_cell, test.only_baseline) == (4, 1, 2)
    assert test.p_mcnemar == pytest.approx(1.0)
    assert test.psnr_delta == pytest.approx(-2.0)
    other = Outcomes(**{**cell.__dict__, "victims": (1, 2, 3, 100)})  # shares one victim only
    assert compare(other, base).n == 1
    assert wilcoxon([0.0, 0.0]) == 1.0 and math.isnan(compare(other, base, label=5).psnr_delta)


def _grid(
    per_label: int,
    cells: dict[Cell, list[bool]],
    model: dict[Cell, float] | None = None,
    extra: dict[Cell, dict] | None = None,
) -> optuna.Study:
    """A real in-memory grid study whose trials hold the given per-victim outcomes (`extra`: other columns)."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    for cell, recognised in cells.items():
        result = outcomes(recognised, per_label=per_label)
        result = Outcomes(**{**result.__dict__, **(extra or {}).get(cell, {})})
        accuracy = (model or {}).get(cell, 0.8)
        attack = AttackRecord(
            sum(recognised) / len(recognised),
            tuple(sum(recognised[i * per_label : (i + 1) * per_label]) / per_label for i in range(10)),
            (0.0, 1.0), 15.0, (15.0,) * 10, 15.0, 0.3, 0.3, 1.0, (1.0,) * 10, 1.0, 0, 0,
            outcomes=result,
        )  # fmt: skip
        policy = Policy.uniform(cell)
        record = EvaluationRecord(
            str(policy), json.dumps(policy.as_mapping()), "recognizability", accuracy, (accuracy,) * 10, attack, 0, 0
        )
        study.add_trial(
            optuna.trial.create_trial(
                params=grid_params(cell),
                distributions={"cell": optuna.distributions.CategoricalDistribution([str(c) for c in cells])},
                values=(accuracy, attack.attack_accuracy),
                user_attrs=record.as_attrs(),
            )
        )
    return study


def test_best_cell_is_none_when_nothing_is_significant_even_at_zero_percent():
    # five victims per label: 5/5 for Identity, 0/5 for the cell is p = 0.0625 per label, never significant
    study = _grid(5, {IDENTITY: [True] * 50, Cell.of("Rotate", 9): [False] * 50})
    table, rule = best_cells(study)
    assert all(not row.significant and row.cell == IDENTITY for row in table)
    assert "Holm over the 1 cells x 10 labels" in rule
    assert best_policy(table) == Policy.identity()
    assert all(row["best cell"] == NONE_BETTER for row in grid_best_rows(table))
    assert "0.0625" in rule


def test_best_cell_needs_significance_and_utility():
    cells = {
        IDENTITY: [True] * 200,
        Cell.of("Rotate", 9): [False] * 200,  # 0/20 vs 20/20 on every label: Holm p = 30 * 2 / 2**20
        Cell.of("Invert"): [False] * 200,  # as protective, but costs too much utility
        Cell.of("Solarize", 9): [i % 10 != 0 for i in range(200)],  # 18/20: not significant
    }
    study = _grid(20, cells, model={Cell.of("Invert"): 0.5})
    table, _ = best_cells(study)
    assert [row.cell for row in table] == [Cell.of("Rotate", 9)] * len(CLASSES)
    # one family of 3 cells x 10 labels
    assert all(row.significant and row.comparison.p_holm == pytest.approx(30 * 2 / 2**20) for row in table)
    rows = cell_rows(study)
    assert len(rows) == 4 * 11  # every cell x (10 labels + overall)
    solarize = next(r for r in rows if r["cell"] == "Solarize:9" and r["label"] == "airplane")
    assert solarize["attack k/n"] == "18/20" and "fewer" not in solarize["vs Identity (only cell/only Id.)"]


def test_the_family_is_every_cell_and_label_and_grows_when_a_study_resumes():
    """Ten victims per label, 0/10 against 10/10: alone on the grid, a cell is significant on every label (Holm
    over 1 cell x 10 labels); once a resumed grid adds two more cells, the same victims no longer are (3 x 10)."""
    alone = {IDENTITY: [True] * 100, Cell.of("Rotate", 9): [False] * 100}
    table, _ = best_cells(_grid(10, alone))
    assert all(row.significant and row.comparison.p_holm == pytest.approx(10 * 2 / 1024) for row in table)
    resumed = {**alone, Cell.of("Invert"): [True] * 100, Cell.of("Solarize", 9): [True] * 100}
    table, rule = best_cells(_grid(10, resumed))
    assert not any(row.significant for row in table) and "Holm over the 3 cells x 10 labels" in rule
    overall = compare_all({"a": outcomes([False] * 100, per_label=10)}, outcomes([True] * 100, per_label=10))
    assert overall["a", None].p_holm == pytest.approx(2 / 2**100)  # the overall test is its own family of 1


def test_continuous_endpoints_see_a_shift_that_mcnemar_cannot():
    """Every victim recognised under both: no discordant pair, yet the judge is far less sure and the victims sit
    far down the line-up under the cell; Wilcoxon sees it, Holm adjusts it over the cells compared."""
    same = outcomes([True] * 12, per_label=12)
    base = Outcomes(**{**same.__dict__, "true_probability": (0.9,) * 12, "rank": (1,) * 12})
    cell = Outcomes(**{**same.__dict__, "true_probability": (0.2,) * 12, "rank": tuple(range(50, 62))})
    test = compare(cell, base)
    assert test.only_cell == test.only_baseline == 0 and test.p_mcnemar == 1.0
    assert test.p_true_delta == pytest.approx(-0.7) and test.p_wilcoxon_true == pytest.approx(2 / 2**12)
    assert test.rank_delta == pytest.approx(54.5) and test.p_wilcoxon_rank == pytest.approx(2 / 2**12)
    family = compare_all({"cell": cell, "twin": cell}, base, labels=(None,))
    assert family["cell", None].p_holm_rank == pytest.approx(2 * test.p_wilcoxon_rank)
    unstored = compare(same, same)  # attacks stored before the endpoints: no shift, p = 1
    assert math.isnan(unstored.rank_delta) and unstored.p_wilcoxon_rank == 1.0 and unstored.p_wilcoxon_true == 1.0


def test_a_cell_the_judge_cannot_read_is_flagged_and_its_identification_shown():
    """Where the judge fails on the unattacked transformed images, attack accuracy is the judge's blindness:
    the row says so, and the judge-free identification stands beside it."""
    identity = outcomes([True] * 20, per_label=10)
    blind = Outcomes(
        **{
            **outcomes([False] * 20, per_label=10).__dict__,
            "recognisable": (False,) * 10 + (True,) * 10,
            "rank": (1,) * 5 + (40,) * 15,
        }
    )
    assert judge_limited(blind, identity, 0) and not judge_limited(blind, identity, 1)
    assert judge_limited(blind, identity, None)  # 50 % against 100 % overall
    assert outcome_columns(blind, 0)["identified k/n"] == "5/10"
    assert outcome_columns(identity, None)["identified k/n"] == "—"  # stored before the line-up


def test_a_judge_limited_cell_is_chosen_only_where_its_victims_are_also_harder_to_single_out():
    """Both cells fool the judge on every victim, but the judge cannot read either unattacked: one still puts
    every victim first in the line-up (the judge's blindness, not privacy), the other pushes them down."""
    rotate, invert = Cell.of("Rotate", 9), Cell.of("Invert")
    blind = (False,) * 200
    extra = {
        IDENTITY: {"rank": (1,) * 200},
        rotate: {"recognisable": blind, "rank": (1,) * 200},
        invert: {"recognisable": blind, "rank": tuple(range(2, 202))},
    }
    study = _grid(20, {IDENTITY: [True] * 200, rotate: [False] * 200, invert: [False] * 200}, extra=extra)
    table, rule = best_cells(study)
    assert [row.cell for row in table] == [invert] * len(CLASSES)
    assert "judge-limited" in rule
    extra[invert] = {"rank": (1,) * 200}  # readable by the judge: recognition alone decides
    table, _ = best_cells(
        _grid(20, {IDENTITY: [True] * 200, rotate: [False] * 200, invert: [False] * 200}, extra=extra)
    )
    assert [row.cell for row in table] == [invert] * len(CLASSES)
    del extra[invert]
    extra[rotate] = {"rank": (1,) * 200}
    table, _ = best_cells(_grid(20, {IDENTITY: [True] * 200, rotate: [False] * 200}, extra=extra))
    assert [row.cell for row in table] == [rotate] * len(CLASSES)


def test_confirmations_pair_only_within_the_victim_set_they_share():
    def record(policy: str, victims: int, recognised: list[bool]) -> ConfirmationRecord:
        attack = AttackRecord(
            0.5, (0.5,) * 10, (0.0, 1.0), 15.0, (15.0,) * 10, 15.0, 0.3, 0.3, 1.0, (1.0,) * 10, 1.0, 0, 0,
            outcomes=outcomes(recognised, per_label=victims),
        )  # fmt: skip
        return ConfirmationRecord("s", policy, 1, victims, None, attack, 1.0)

    small = [record("Identity", 2, [True] * 20)]
    large = [record("Identity", 10, [True] * 100), record("Rotate:9", 10, [False] * 100)]
    groups = confirmation_groups(small + large)
    assert sorted(groups) == [(1, 2), (1, 10)]
    assert confirmed_comparisons(groups[1, 2]) == {}
    comparison = confirmed_comparisons(groups[1, 10])["Rotate:9", None]
    assert comparison.test.n == 100 and comparison.significant
    rows = confirmation_rows(small + large)
    assert [r["victims/label"] for r in rows] == ["2", "10", "10"] and "fewer" in rows[2][
        "vs Identity (only policy/only Id.)"
    ]


def test_a_grid_whose_identity_is_not_done_chooses_nothing_instead_of_failing():
    table, rule = best_cells(_grid(5, {Cell.of("Rotate", 9): [False] * 50}))
    assert all(not row.significant for row in table) and "Identity is not done yet" in rule
    assert grid_best_rows(table)[0]["model acc %"] == "—"


def test_an_identifiability_study_pairs_and_chooses_on_the_victims_singled_out():
    """Rotate:9 fools the judge on every victim yet singles every one out; Invert leaves the judge's verdicts alone
    and hides every victim in the line-up. Recognition chooses Rotate:9, identifiability Invert."""
    rotate, invert = Cell.of("Rotate", 9), Cell.of("Invert")
    extra = {
        IDENTITY: {"rank": (1,) * 200},
        rotate: {"rank": (1,) * 200},
        invert: {"rank": tuple(range(2, 202))},
    }
    cells = {IDENTITY: [True] * 200, rotate: [False] * 200, invert: [True] * 200}
    for privacy, chosen in (("recognition", rotate), ("identifiability", invert)):
        study = _grid(20, cells, extra=extra)
        StudyInfo("grid", "s", ("Identity", "Rotate:9", "Invert"), "smoke", "f", "trained", "d", privacy=privacy).write(
            study
        )
        table, rule = best_cells(study)
        assert [row.cell for row in table] == [chosen] * len(CLASSES)
        assert ("singled out" in rule) == (privacy == "identifiability")
        rows = grid_best_rows(table, privacy=privacy)
        assert ("identified %" in rows[0]) == (privacy == "identifiability")
    assert scored(outcomes([True, False], per_label=2), "identifiability").recognised == (False, False)  # no ranks
