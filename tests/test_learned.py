"""Issue #36 item 2: the learned inverse trains on public images only, and undoes what it has a network for."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from autoshield.core.config import load_profile
from autoshield.core.errors import AutoshieldError
from autoshield.data.cifar import denormalize
from autoshield.data.inverse import invert_op
from autoshield.data.ops import apply_op, random_signs
from autoshield.data.policy import IDENTITY, Cell, Policy, transform_split
from autoshield.data.victims import victim_pool
from autoshield.evaluation.evaluate import attack_policy, victims
from autoshield.evaluation.reconstruct import attack_keys, reconstruct_policy
from autoshield.learn.inverse_net import FitResult, InverseConfig, fit_inverse, inverse_network
from autoshield.learn.models import build_model
from autoshield.privacy import learned
from autoshield.privacy.adaptive import hypothesis_sign, warm_starts
from autoshield.privacy.cache import AttackCache
from autoshield.privacy.reference import reference_classifier
from autoshield.study.attack_table import StudyTable, all_rows
from tests.conftest import synthetic_images

cpu = torch.device("cpu")
SOLARIZE, ROTATE = Cell.parse("Solarize:9"), Cell.parse("Rotate:9")


def test_the_learned_inverse_trains_only_outside_the_victim_pool_and_once(data, monkeypatch):
    profile = load_profile("smoke")
    inverse = learned.learned_inverse(cells=[SOLARIZE, ROTATE, IDENTITY], data=data, profile=profile, device=cpu)
    assert set(inverse.recipes) == {SOLARIZE}  # Rotate has an exact inverse, Identity needs none
    network = inverse.network(SOLARIZE)
    trained = set(network.trained_on.tolist())
    pool = set(data.train.indices[victim_pool(profile).slots(data.train).flatten()].tolist())
    assert trained and not trained & pool
    assert trained == set(data.train.indices.tolist()) - pool  # every public image: smoke's judge split takes all
    recipe = learned.recipe_key(cell=SOLARIZE, profile=profile, data=data.fingerprint)
    assert inverse.name(SOLARIZE) == f"learned@{recipe}" and inverse.name(ROTATE) == "posthoc"
    assert inverse.provenance(SOLARIZE) == {"network": network.digest} and not inverse.provenance(ROTATE)
    assert network.seconds > 0

    def trained_again(*args, **kwargs):
        raise AssertionError("a cached network was trained again")

    monkeypatch.setattr(learned, "fit_inverse", trained_again)
    again = learned.learned_inverse(cells=[SOLARIZE], data=data, profile=profile, device=cpu)
    assert again.network(SOLARIZE).digest == network.digest


def test_the_learned_inverse_trains_nothing_until_an_attack_needs_a_network(data, tmp_path, monkeypatch):
    """Names and keys need only the recipe: a study whose learned rows the table holds (a table continued on a
    fresh machine) pays for no training."""
    monkeypatch.setenv("AUTOSHIELD_CACHE", str(tmp_path))  # no network cached here
    calls = []
    monkeypatch.setattr(learned, "fit_inverse", lambda *args, **kwargs: calls.append(args) or FitResult((0.1,), 1.0))
    profile = load_profile("smoke")
    inverse = learned.learned_inverse(cells=[SOLARIZE], data=data, profile=profile, device=cpu)
    recipe = learned.recipe_key(cell=SOLARIZE, profile=profile, data=data.fingerprint)
    assert inverse.name(SOLARIZE) == f"learned@{recipe}" and inverse.recipes == {SOLARIZE: recipe}
    assert not calls and not list(tmp_path.rglob("*.pt"))
    inverse(torch.rand(2, 3, 32, 32), "Solarize", 9)  # first use: trained now, once
    inverse(torch.rand(2, 3, 32, 32), "Solarize", 9)
    assert len(calls) == 1


def test_on_an_invertible_op_the_learned_inverse_is_not_worse_than_the_analytic_one():
    """Both measured on held-out images, from noisy copies of the transformed ones (a reconstruction is not clean),
    each inverse told nothing but the pixels (the analytic one also the client's sign)."""
    images, _ = synthetic_images(60, seed=3)
    train, held = images[:500], images[500:]
    cell = Cell.parse("Brightness:9")

    def transform(batch: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
        return apply_op(batch, cell.op, cell.magnitude, signs=signs)

    config = InverseConfig(width=16, dilations=(1, 2), epochs=3, batch_size=50, lr=3e-3, noise=0.1)
    network = inverse_network(config=config, seed=0)
    fit_inverse(network, train, transform=transform, config=config, seed=0, device=cpu)
    generator = torch.Generator().manual_seed(1)
    signs = random_signs(len(held), generator=generator)
    seen = transform(held, signs).float() / 255
    seen = (seen + 0.1 * torch.randn(seen.shape, generator=generator)).clamp(0, 1)
    target = held.float() / 255
    with torch.no_grad():
        by_network = ((network(seen).clamp(0, 1) - target) ** 2).mean()
    analytic = ((invert_op(seen, cell.op, cell.magnitude, signs=signs) - target) ** 2).mean()
    assert by_network <= analytic


def test_the_learned_attacker_uses_its_network_only_where_no_exact_inverse_exists(data, tmp_path):
    profile = load_profile("smoke")
    policy = Policy.parse("airplane=Solarize:9,automobile=Rotate:9")
    scored = victims(data, profile)
    common = dict(policy=policy, victims=scored, profile=profile, device=cpu, cache=AttackCache(tmp_path))
    with pytest.raises(AutoshieldError, match="needs its networks"):
        reconstruct_policy(**common, attacker="learned")
    inverse = learned.learned_inverse(cells=policy.cells, data=data, profile=profile, device=cpu)
    naive = reconstruct_policy(**common, attacker="naive")
    posthoc = reconstruct_policy(**common, attacker="posthoc")
    found = reconstruct_policy(**common, attacker="learned", inverse=inverse)
    assert found.cached == len(naive.images)  # it reads the naive attack's entries: no attack of its own
    labels = scored.labels
    with torch.no_grad():
        expected = inverse.network(SOLARIZE).module(naive.images[labels == 0]).clamp(0, 1)
    assert torch.equal(found.images[labels == 0], expected)
    assert torch.equal(found.images[labels == 1], posthoc.images[labels == 1])
    assert torch.equal(found.images[labels > 1], naive.images[labels > 1])


def test_the_adaptive_attackers_warm_start_comes_from_the_learned_inverse_and_is_keyed_by_it(data):
    profile = load_profile("smoke", overrides=("attack.warm_starts=true",))
    policy = Policy.parse("airplane=Solarize:9,automobile=Rotate:9")
    inverse = learned.learned_inverse(cells=policy.cells, data=data, profile=profile, device=cpu)
    scored = victims(data, profile)
    naive = torch.rand(scored.images.shape, generator=torch.Generator().manual_seed(0))  # no original in sight
    warm = denormalize(warm_starts(naive, policy=policy, labels=scored.labels, hypotheses=2, undo=inverse)[1])
    airplane, automobile = scored.labels == 0, scored.labels == 1
    with torch.no_grad():
        undone = inverse.network(SOLARIZE).module(naive[airplane]).clamp(0, 1)
    for h in range(2):  # the network ignores the sign hypothesis; an exact inverse does not
        torch.testing.assert_close(warm[h][airplane], undone)
        signs = hypothesis_sign(torch.full((int(automobile.sum()),), h))
        torch.testing.assert_close(warm[h][automobile], invert_op(naive[automobile], "Rotate", 9, signs=signs))

    transformed = transform_split(scored, policy, seed=profile.seed)
    model = build_model(width=profile.width, norm=profile.norm, seed=profile.seed)
    common = dict(policy=policy, victims=scored, transformed=transformed, profile=profile, model=model)
    keys = {
        name: attack_keys(**common, attacker="adaptive", inverse=given)[0]
        for name, given in (("learned", inverse), ("post-hoc", None))
    }
    differs = [a != b for a, b in zip(keys["learned"], keys["post-hoc"], strict=True)]
    assert differs == airplane.tolist()  # only the problems whose warm start came from a network
    cold = dataclasses.replace(profile, attack=dataclasses.replace(profile.attack, warm_starts=False))
    assert (
        attack_keys(**{**common, "profile": cold}, attacker="adaptive", inverse=inverse)[0]
        == attack_keys(**{**common, "profile": cold}, attacker="adaptive")[0]
    )  # without warm starts the networks play no part


def test_another_machine_classs_network_reads_the_learned_rows_instead_of_attacking_again(data, tmp_path):
    """One recipe trains other weights on each machine class (RESULTS.md, 2026-12-05): the rows are named by the
    recipe and record the network that scored them, so a machine with an empty cache reads them (as it reads the
    naive attack's, which its kernels round otherwise too) instead of attacking again, and trains no network."""
    profile = load_profile("smoke", overrides=("attack.iterations=20",))
    policy = Policy.parse("Solarize:9")
    reference = reference_classifier(data, profile, device=cpu).model
    table = StudyTable(f"sqlite:///{tmp_path / 's.db'}")
    mine = learned.learned_inverse(cells=policy.cells, data=data, profile=profile, device=cpu)
    common = dict(policy=policy, victims=victims(data, profile), profile=profile, reference=reference, device=cpu)
    first = attack_policy(**common, attacker="learned", inverse=mine, cache=AttackCache(tmp_path / "a"), table=table)
    rows = [r for r in all_rows(url=table.url) if r.problem.attacker.startswith("learned@")]
    assert len(rows) == 10 and {r.outcome["network"] for r in rows} == {mine.network(SOLARIZE).digest}

    def untrained(cell: Cell) -> learned.Network:
        raise AssertionError(f"{cell}'s network was needed, though every row is stored")

    theirs = dataclasses.replace(mine, network=untrained)
    elsewhere = attack_policy(
        **common, attacker="learned", inverse=theirs, cache=AttackCache(tmp_path / "b"), table=table
    )
    assert elsewhere.seconds == 0 and elsewhere.outcomes == first.outcomes
    assert not list((tmp_path / "b").rglob("*.pt"))  # nothing attacked there
