"""Does choosing per label matter? The premise of per-label policies, tested on the grid (issue #37 item 1).

A grid applies each cell to every label, so its cell x label table of privacy counts (victims recognised, or
singled out, per label) and of utility counts (test images classified right, per label) says whether a cell's
effect depends on the label (`privacy.interaction`). Where privacy does not depend on it, a cell's privacy is
better estimated pooled over labels, from ten times the victims, and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import optuna

from autoshield.core.choices import PRIVACY_WORDS
from autoshield.core.config import PRESETS
from autoshield.data.cifar import CLASSES
from autoshield.privacy.interaction import InteractionTest, interaction_test
from autoshield.privacy.paired import scored
from autoshield.report.format import percent
from autoshield.study.catalog import completed
from autoshield.study.params import cell_of
from autoshield.study.records import EvaluationRecord, StudyInfo

DRAWS = 999  # bootstrap draws under the additive model, and as many under the alternative for the power
ALPHA = 0.05  # below it, privacy depends on the label and is read label by label
DELTA = 0.2  # the interaction the power is stated for: labels split in two halves 20 points apart


def grid_counts(records: list[EvaluationRecord], *, privacy: str) -> tuple[np.ndarray, np.ndarray]:
    """`[cells, labels]` counts of victims the objective counts (`privacy.paired.scored`) and of victims, per
    record's objective attacker."""
    k, n = np.zeros((len(records), len(CLASSES)), int), np.zeros((len(records), len(CLASSES)), int)
    for c, record in enumerate(records):
        outcomes = scored(record.attack.outcomes, privacy)
        for label, counted in zip(outcomes.labels, outcomes.recognised, strict=True):
            n[c, label] += 1
            k[c, label] += bool(counted)
    return k, n


def utility_counts(records: list[EvaluationRecord], *, per_label: int) -> tuple[np.ndarray, np.ndarray]:
    """`[cells, labels]` counts of test images classified right, from per-label accuracies on `per_label` images."""
    accuracy = np.array([record.model_accuracy_per_label for record in records])
    return np.rint(accuracy * per_label).astype(int), np.full(accuracy.shape, per_label)


@dataclass(frozen=True)
class Premise:
    """The grid's two interaction tests: privacy's, and utility's where the profile says how many test images
    each label has (None otherwise)."""

    info: StudyInfo
    privacy: InteractionTest
    utility: InteractionTest | None

    @property
    def pools(self) -> bool:
        """Whether privacy showed no cell x label interaction, so that a cell's privacy is read pooled over
        labels."""
        return self.privacy.p >= ALPHA


def premise(grid: optuna.Study) -> Premise | None:
    """The tests, for a grid study with 2+ completed cells whose attacks kept their per-victim outcomes."""
    info = StudyInfo.read(grid)
    trials = sorted(completed(grid), key=lambda t: str(cell_of(t)))
    records = [EvaluationRecord.read(t) for t in trials]
    if info is None or len(records) < 2 or not all(r.attack.outcomes for r in records):
        return None
    privacy = interaction_test(*grid_counts(records, privacy=info.privacy), draws=DRAWS, delta=DELTA)
    test_count = _test_per_label(info)
    utility = None
    if test_count is not None:
        uk, un = utility_counts(records, per_label=test_count)
        utility = interaction_test(uk, un, draws=DRAWS, delta=DELTA, seed_noise=info.utility == "trained")
    return Premise(info, privacy, utility)


def premise_lines(found: Premise | None) -> list[str]:
    """The report's lines on the premise; [] where the grid could not be tested."""
    if found is None:
        return []
    words = PRIVACY_WORDS[found.info.privacy]
    lines = [
        "**Does choosing per label matter?** (cell x label likelihood-ratio test on the grid, p by parametric "
        f"bootstrap, {DRAWS} draws under the additive model; power for each cell's labels split in two halves "
        f"{percent(DELTA)} points apart, opposite ways on alternate cells)",
        "",
        f"- privacy ({words.counted}, {found.info.attacker} attacker): {_stated(found.privacy)}"
        + ("; so a cell's privacy is read pooled over labels (its overall figure) rather than label by label"
           if found.pools else ""),
    ]  # fmt: skip
    if found.utility is None:
        lines.append("- utility: not tested (the profile is not a preset, so its test images per label are unknown)")
    else:
        lines.append(f"- utility ({found.info.utility}): {_stated(found.utility)}")
    return [*lines, ""]


def _stated(test: InteractionTest) -> str:
    text = (
        f"deviance {test.deviance:.1f} on {test.df} df over {test.cells} cells x {test.labels} labels, p = "
        f"{test.p:.3g} (chi-squared's {test.p_chi2:.2g}, unreliable at these counts); power {percent(test.power)} %: "
        f"{test.conclusion}"
    )
    if test.seed_noise:
        text += (
            "; one training run per cell, whose seed noise reads as interaction, so a small p here awaits repeated "
            "seeds"
        )
    return text


def _test_per_label(info: StudyInfo) -> int | None:
    """Test images per label of the study's profile, where it is a preset unchanged (its fingerprint agrees)."""
    preset = PRESETS.get(info.profile)
    if preset is None or preset.fingerprint() != info.profile_fingerprint:
        return None
    return preset.test_per_class or 1_000  # None: all of CIFAR-10's 1,000 test images per label
