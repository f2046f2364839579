"""Identifiability: a perfect reconstruction singles its victim out, noise does so at about 1 / line-up size."""

from __future__ import annotations

import pytest
import torch

from autoshield.core.config import load_profile
from autoshield.core.errors import AutoshieldError
from autoshield.data.policy import Cell, Policy, split_signs, transform_split
from autoshield.evaluation.evaluate import victims
from autoshield.evaluation.lineup import lineup_ranks, pool_lineup, views
from autoshield.privacy.identify import identified, median_rank, rank_of, similarity_to_lineup
from autoshield.privacy.metrics import ssim


def test_the_fast_similarity_is_ssim():
    """The line-up's SSIM (local statistics computed once, blur as matrix products) equals torchmetrics' SSIM."""
    generator = torch.Generator().manual_seed(0)
    candidates = torch.rand(2, 7, 3, 32, 32, generator=generator)
    reconstructions = torch.rand(3, 3, 32, 32, generator=generator)
    expected = torch.stack(
        [
            torch.stack([ssim(image.expand(7, -1, -1, -1).contiguous(), view) for view in candidates]).amax(0)
            for image in reconstructions
        ]
    )
    torch.testing.assert_close(similarity_to_lineup(reconstructions, candidates, chunk=3), expected)


def test_ties_count_against_the_attacker():
    assert rank_of(torch.tensor([0.9, 0.5, 0.1]), 0) == 1
    assert rank_of(torch.tensor([0.9, 0.9, 0.1]), 0) == 2  # as close to another: not singled out
    assert rank_of(torch.tensor([0.2, 0.9, 0.5]), 0) == 3


def test_a_perfect_reconstruction_is_singled_out_under_its_cell_and_noise_is_not(data):
    """The transformed image ranks its victim first (the attacker compares with the line-up under the public
    policy, either sign); random images rank it first about once in N, and in the middle on average."""
    profile = load_profile("smoke", overrides=("images_per_label=3",))
    lineup = pool_lineup(data.train, profile)
    attacked = victims(data, profile)
    policy = Policy.uniform(Cell.parse("Rotate:9"))
    seen = transform_split(attacked, policy, seed=profile.seed)
    assert set(split_signs(attacked, seed=profile.seed).tolist()) == {-1, 1}  # both signs are exercised
    none_failed = torch.zeros(len(attacked), dtype=torch.bool)
    perfect = lineup_ranks(
        reconstructions=seen.images.float() / 255, victims=attacked, failed=none_failed, policy=policy, lineup=lineup
    )
    assert perfect.tolist() == [1] * len(attacked)
    assert identified(perfect).mean == 1.0

    noise = torch.rand(len(attacked) * 10, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    many = attacked.__class__(
        attacked.images.repeat(10, 1, 1, 1),
        attacked.labels.repeat(10),
        attacked.indices.repeat(10),
        slots=attacked.slots.repeat(10),
    )
    ranks = lineup_ranks(
        reconstructions=noise, victims=many, failed=none_failed.repeat(10), policy=policy, lineup=lineup
    )
    assert identified(ranks).mean < 0.05  # the null: 1 / 100 here
    assert 25 <= median_rank(ranks) <= 75


def test_a_failed_reconstruction_ranks_last_and_a_stranger_is_refused(data):
    profile = load_profile("smoke")
    lineup = pool_lineup(data.train, profile)
    attacked = victims(data, profile)
    failed = torch.zeros(len(attacked), dtype=torch.bool)
    failed[0] = True
    ranks = lineup_ranks(
        reconstructions=attacked.images.float() / 255,
        victims=attacked,
        failed=failed,
        policy=Policy.identity(),
        lineup=lineup,
    )
    assert ranks.tolist() == [len(lineup)] + [1] * (len(attacked) - 1)
    stranger = attacked.__class__(attacked.images, attacked.labels, attacked.indices + 100_000, slots=attacked.slots)
    with pytest.raises(AutoshieldError, match="not in the identification line-up"):
        lineup_ranks(
            reconstructions=attacked.images.float() / 255,
            victims=stranger,
            failed=failed,
            policy=Policy.identity(),
            lineup=lineup,
        )


def test_views_hold_each_sign_of_a_signed_cell_and_one_view_for_identity(data):
    images = data.train.images[:4]
    assert views(images, Cell.parse("Identity")).shape[0] == 1
    assert views(images, Cell.parse("Solarize:5")).shape[0] == 2
    signed = views(images, Cell.parse("Rotate:9"))
    assert signed.shape[0] == 3 and not torch.equal(signed[1], signed[2])
