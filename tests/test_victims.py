"""The measurement protocol on synthetic data: held-out victims, paired starts, counted failures, merged cells."""

from __future__ import annotations

import math

import pytest
import torch

from autoshield.core.config import load_profile
from autoshield.core.errors import AutoshieldError
from autoshield.data.cifar import stratified_subset
from autoshield.data.effects import identity_equivalent
from autoshield.data.policy import IDENTITY, Cell, Policy
from autoshield.data.spaces import load_search_space
from autoshield.data.victims import victim_pool
from autoshield.evaluation.evaluate import attack_policy, fresh_victims, victims
from autoshield.privacy.attack import GradientInversion
from autoshield.privacy.reference import judge_training_split, reference_classifier
from autoshield.study.jobs import GridJob

CPU = torch.device("cpu")


def test_victims_never_appear_in_the_judges_training_indices(data):
    profile = load_profile("smoke", overrides=("images_per_label=3",))
    pool = set(victim_pool(profile).slots(data.train).flatten().tolist())
    assert len(pool) == 10 * profile.victim_pool_per_label
    judged_on = set(judge_training_split(data, profile).indices.tolist())
    assert set(victims(data, profile).indices.tolist()) <= pool
    assert not judged_on & pool
    assert pool <= set(judge_training_split(data, profile, members=True).indices.tolist())  # the membership control


def test_confirmation_victims_are_disjoint_from_the_studys_and_fixed(data):
    profile = load_profile("smoke", overrides=("images_per_label=3",))  # slots 0-2 scored, 7-9 calibrate
    studied, fresh = victims(data, profile), fresh_victims(data, profile, per_label=4)
    assert len(fresh) == 40 and not set(studied.indices.tolist()) & set(fresh.indices.tolist())
    assert fresh.counts() == [4] * 10
    assert torch.equal(fresh.indices, fresh_victims(data, profile, per_label=4).indices)
    with pytest.raises(AutoshieldError, match="pool slots 7–9 are the calibration victims"):
        fresh_victims(data, profile, per_label=5)


def test_some_victims_keep_their_slots(data):
    """A trial that attacks only the victims it claimed still records which pool slot each one scored."""
    profile = load_profile("smoke", overrides=("images_per_label=3",))
    scored = victims(data, profile)
    part = scored.take([1, 4, 29])
    assert torch.equal(part.slots, scored.slots[[1, 4, 29]]) and torch.equal(part.indices, scored.indices[[1, 4, 29]])


def test_one_labels_victims_are_that_labels_slots_in_order(data):
    """`attack --labels`: a label's victims alone are the same images, slots and order as among every label's."""
    profile = load_profile("smoke", overrides=("images_per_label=3",))
    scored = victims(data, profile)
    cars = scored.of_labels([1])
    assert cars.labels.tolist() == [1, 1, 1]
    assert torch.equal(cars.indices, scored.indices[scored.labels == 1])
    assert torch.equal(cars.slots, scored.slots[scored.labels == 1])
    assert scored.of_labels([9, 1]).labels.tolist() == [1, 1, 1, 9, 9, 9]  # pool order, whatever the order asked


def test_the_first_pool_slot_is_the_victim_earlier_versions_attacked(data):
    profile = load_profile("smoke")
    earlier = stratified_subset(data.train, per_class=1, seed=profile.seed + 1)
    assert torch.equal(victims(data, profile).indices, earlier.indices)


def test_the_same_victim_gets_identical_starts_under_two_cells(data, monkeypatch):
    profile = load_profile("smoke", overrides=("attack.iterations=2",))
    reference = reference_classifier(data, profile, device=CPU).model
    seen: dict[str, list[int]] = {}
    real = GradientInversion.reconstruct

    def spy(self, model, gradients, labels, *, seeds, **kwargs):
        seen[current] = list(seeds)
        return real(self, model, gradients, labels, seeds=seeds, **kwargs)

    monkeypatch.setattr(GradientInversion, "reconstruct", spy)
    floors = {}
    for current in ("Identity", "TranslateX:1"):
        result = attack_policy(
            policy=Policy.parse(current),
            victims=victims(data, profile),
            profile=profile,
            reference=reference,
            device=CPU,
        )
        floors[current] = result.outcomes.floor
    assert seen["Identity"] == seen["TranslateX:1"]
    attacker = GradientInversion(profile.attack, box=(torch.zeros(3, 1, 1), torch.ones(3, 1, 1)))
    assert torch.equal(attacker.starts(seen["Identity"], leak=1), attacker.starts(seen["TranslateX:1"], leak=1))
    assert floors["Identity"] == floors["TranslateX:1"]  # the floor judges those same starts
    other = load_profile("smoke", overrides=("attack.iterations=2", "seed=1"))
    current = "seed 1"
    attack_policy(
        policy=Policy.identity(), victims=victims(data, other), profile=other, reference=reference, device=CPU
    )
    assert seen["seed 1"] != seen["Identity"]  # the seed, not the cell, changes the starts


def test_failed_reconstructions_count_as_unrecognised_and_show(data, monkeypatch):
    profile = load_profile("smoke", overrides=("attack.iterations=2",))
    reference = reference_classifier(data, profile, device=CPU).model
    real = GradientInversion.reconstruct

    def diverging(self, *args, **kwargs):
        result = real(self, *args, **kwargs)
        result.images[0] = math.nan
        result.gradient_loss[0] = math.inf
        return result

    monkeypatch.setattr(GradientInversion, "reconstruct", diverging)
    result = attack_policy(
        policy=Policy.identity(), victims=victims(data, profile), profile=profile, reference=reference, device=CPU
    )
    assert result.overall.failed == 1 and result.per_label[0].failed == 1
    assert result.overall.attack_accuracy.n == 10  # in the denominator, as an unrecognised reconstruction
    assert result.outcomes.recognised[0] is False and result.outcomes.predicted[0] == -1
    assert math.isnan(result.outcomes.psnr_original[0]) and result.overall.psnr_original.n == 9


def test_identity_equivalent_cells_are_found_on_images_and_merged(data, tmp_path):
    cells = [IDENTITY, Cell.of("Posterize", 1), Cell.of("Brightness", 0), Cell.of("Rotate", 0), Cell.of("Rotate", 9)]
    cells.append(Cell.of("Posterize", 9))
    assert identity_equivalent(cells, data.train.images[:64]) == cells[1:4]
    space = tmp_path / "s.toml"
    space.write_text('cells = ["Posterize:1", "Posterize:9", "Brightness:0", "Rotate:9"]\n')
    job = GridJob(
        space=load_search_space(space),
        storage="sqlite:///unused.db",
        name="t",
        profile=load_profile("smoke"),
        artifacts=str(tmp_path),
        utility="recognizability",
    )
    assert job.cells(data) == [IDENTITY, Cell.of("Posterize", 9), Cell.of("Rotate", 9)]  # Identity added as baseline
    info = job.info(data)
    assert info.merged == ("Posterize:1", "Brightness:0") and "Posterize:1" not in info.cells
