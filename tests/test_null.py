"""The real null (issue #34): another victim of the same label, attacked from the victim's start, scored as the
victim's."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from autoshield.cli import main
from autoshield.cli.single import study_table
from autoshield.core.config import load_profile
from autoshield.core.errors import AutoshieldError
from autoshield.data.policy import Policy
from autoshield.evaluation.evaluate import attack_policy, victims
from autoshield.evaluation.lineup import pool_lineup
from autoshield.evaluation.null import decoy_positions, null_attack
from autoshield.privacy.cache import AttackCache
from autoshield.privacy.reference import reference_classifier
from autoshield.study.attack_table import StudyTable, all_rows

from .test_study import _args

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


def test_a_null_through_the_attack_table_is_kept_as_null_rows_and_read_back_elsewhere(data, tmp_path):
    """The null is more attacks: through the study's table it is computed once, batch by batch, kept as rows named
    `null:<attacker>` beside the attack's own, and read back, not attacked, by a machine with another cache."""
    profile = load_profile("smoke", overrides=("images_per_label=2", "attack.iterations=10"))
    judge = reference_classifier(data, profile, device=CPU).model
    attacked, lineup = victims(data, profile), pool_lineup(data.train, profile)
    common = {"policy": Policy.identity(), "profile": profile, "reference": judge, "device": CPU, "lineup": lineup}
    plain = null_attack(victims=attacked, **common)
    table = StudyTable(f"sqlite:///{tmp_path / 's.db'}")
    first = null_attack(victims=attacked, **common, cache=AttackCache(tmp_path / "a"), table=table)
    assert first.outcomes == plain.outcomes and torch.equal(first.reconstructions, plain.reconstructions)
    rows = list(all_rows(url=table.url))
    assert len(rows) == 20 and {r.problem.attacker for r in rows} == {"null:naive"}
    assert sorted(r.outcome["victims"] for r in rows) == sorted(attacked.indices.tolist())  # scored as the victims
    elsewhere = null_attack(victims=attacked, **common, cache=AttackCache(tmp_path / "b"), table=table)
    assert elsewhere.outcomes == first.outcomes and not list((tmp_path / "b").rglob("*.pt"))


def test_attack_on_a_study_reads_its_table_and_keeps_its_null_there(tmp_path, data_root, space, monkeypatch, capsys):
    """`attack --study` reads the study's rows (another machine attacks nothing the study holds) and adds its null
    to them, so a third machine attacks nothing at all. Under another profile it keeps nothing in the table."""
    db = tmp_path / "s.db"
    common = ["--set", "attack.iterations=10", "--set", "images_per_label=2"]
    monkeypatch.setenv("AUTOSHIELD_CACHE", str(tmp_path / "a"))
    assert main(_args("grid", db, data_root, space, *common, "--n-jobs", "1")) == 0
    store = ["--profile", "smoke", "--storage", f"sqlite:///{db}", "--data-root", str(data_root), *common]
    attack = ["attack", "--policy", "Rotate:9", "--study", "autoshield", "--null", "--sheet", str(tmp_path / "s.png")]
    for machine, attacked in (("b", 20), ("c", 0)):  # b attacks the null only; c reads everything
        monkeypatch.setenv("AUTOSHIELD_CACHE", str(tmp_path / machine))
        assert main([*attack, *store]) == 0
        assert len(list((tmp_path / machine / "attacks").rglob("*.pt"))) == attacked
    nulls = [row for row in all_rows(url=f"sqlite:///{db}") if row.problem.attacker == "null:naive"]
    assert len(nulls) == 20 and {row.problem.cell for row in nulls} == {"Rotate:9"}
    profile = load_profile("smoke", overrides=("attack.iterations=10", "images_per_label=2"))
    assert study_table(f"sqlite:///{db}", "autoshield", profile) is not None
    capsys.readouterr()
    other = dataclasses.replace(profile, seed=1)
    assert study_table(f"sqlite:///{db}", "autoshield", other) is None
    assert "its attacks are not kept in the study's table" in " ".join(capsys.readouterr().out.split())
