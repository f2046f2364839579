"""The real null (issue #34): another victim of the same label, attacked from the victim's start, scored as the
victim's."""

from __future__ import annotations

import pytest
import torch

from autoshield.cli import main
from autoshield.core.config import load_profile
from autoshield.core.errors import AutoshieldError
from autoshield.data.policy import Policy
from autoshield.evaluation.evaluate import attack_policy, victims
from autoshield.evaluation.lineup import pool_lineup
from autoshield.evaluation.null import decoy_positions, null_attack
from autoshield.privacy.reference import reference_classifier

CPU = torch.device("cpu")


def test_every_decoy_is_another_image_of_the_same_label():
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 2])
    decoys = decoy_positions(labels)
    assert torch.equal(labels[decoys], labels) and not (decoys == torch.arange(7)).any()
    assert sorted(decoys.tolist()) == list(range(7))  # each victim is some other victim's decoy once
    with pytest.raises(AutoshieldError, match="2\\+ victims per label"):
        decoy_positions(torch.tensor([0, 0, 1]))


def test_the_null_is_scored_against_the_victims_from_their_own_starts(data):
    profile = load_profile("smoke", overrides=("images_per_label=2",))
    judge = reference_classifier(data, profile, device=CPU).model
    attacked, lineup = victims(data, profile), pool_lineup(data.train, profile)
    common = {"policy": Policy.identity(), "profile": profile, "reference": judge, "device": CPU, "lineup": lineup}
    real = attack_policy(victims=attacked, **common)
    null = null_attack(victims=attacked, **common)
    assert null.outcomes.victims == real.outcomes.victims and null.outcomes.labels == real.outcomes.labels
    assert null.outcomes.floor == real.outcomes.floor  # the same starts: the judge says the same of them
    assert torch.equal(null.originals, real.originals)  # PSNR and rank are against the victims
    assert not torch.equal(null.reconstructions, real.reconstructions)  # of other images
    assert len(null.per_label) == 10 and null.overall.lineup == len(lineup)


def test_attack_null_prints_the_null_beside_the_attack(tmp_path, data_root, capsys):
    args = ["attack", "--profile", "smoke", "--data-root", str(data_root), "--sheet", str(tmp_path / "s.png")]
    assert main([*args, "--images-per-label", "2", "--null"]) == 0
    assert "null: the naive attacker on another victim of each label" in capsys.readouterr().out
    assert main([*args, "--null"]) == 2  # one victim per label has no decoy
    assert "2+ victims per label" in capsys.readouterr().err
