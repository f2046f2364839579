"""DP-SGD baseline: privacy accounting, the `noised` threat setting, Opacus training at smoke scale."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch

pytest.importorskip("opacus")

from opacus.accountants import RDPAccountant
from opacus.grad_sample import GradSampleModule

from autoshield.core.config import TrainConfig
from autoshield.core.errors import AutoshieldError
from autoshield.data.cifar import CLASSES, Cifar10, normalize
from autoshield.dp.accountant import epsilon, epsilon_prv
from autoshield.dp.config import DPConfig
from autoshield.dp.engine import train_dp
from autoshield.learn.models import ResNet18, build_model
from autoshield.privacy.threat import leak_gradients, noised_gradients

CPU = torch.device("cpu")
SMOKE = TrainConfig(epochs=1, batch_size=32, eval_batch_size=100)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Width-8 models gain nothing from intra-op threads; one thread avoids oversubscribing busy cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _norms(gradients: tuple[torch.Tensor, ...]) -> torch.Tensor:
    return torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in gradients))


@pytest.mark.parametrize(("sigma", "sample_rate", "steps"), [(0.8, 0.01, 50), (1.0, 0.05, 200), (2.0, 0.1, 1000)])
def test_epsilon_matches_an_rdp_accountant_stepped_directly(sigma: float, sample_rate: float, steps: int) -> None:
    accountant = RDPAccountant()
    for _ in range(steps):
        accountant.step(noise_multiplier=sigma, sample_rate=sample_rate)
    expected = accountant.get_epsilon(1e-5)
    assert epsilon(sigma=sigma, sample_rate=sample_rate, steps=steps, delta=1e-5) == pytest.approx(expected, rel=1e-12)


@pytest.mark.filterwarnings("ignore:Optimal order is the smallest alpha")  # σ = 0.1 is off Opacus' alpha grid
@pytest.mark.parametrize(("sigma", "design"), [(0.1, 21_600), (0.5, 15.4), (1.0, 1.95)])
def test_epsilon_for_cifar10_20_epochs_matches_design(sigma: float, design: float) -> None:
    """docs/design.md §4: batch 256 of N = 50,000 for 20 epochs at δ = 1e-5 (Opacus gives 21,604 / 15.43 / 1.945)."""
    eps = epsilon(sigma=sigma, sample_rate=256 / 50_000, steps=20 * 50_000 // 256, delta=1e-5)
    assert eps == pytest.approx(design, rel=0.01)


def test_epsilon_prv_is_tighter_and_skipped_at_tiny_sigma() -> None:
    args = {"sample_rate": 256 / 50_000, "steps": 20 * 50_000 // 256, "delta": 1e-5}
    assert epsilon_prv(sigma=0.1, **args) is None
    prv = epsilon_prv(sigma=1.0, **args)
    assert prv is not None
    assert 0 < prv < epsilon(sigma=1.0, **args)


@pytest.fixture
def leaked(data: Cifar10) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    model = build_model(width=8, norm="group", seed=0)
    return model, normalize(data.train.images[:4]), data.train.labels[:4]


def test_noised_gradients_clip_each_image_to_max_grad_norm(leaked) -> None:
    model, images, labels = leaked
    raw = leak_gradients(model, images, labels)
    assert (_norms(raw) > 1.0).all()  # untrained network: every image's gradient gets clipped at C = 1
    quiet = DPConfig(sigma=1e-12, max_grad_norm=1.0)
    clipped = noised_gradients(model, images, labels, dp=quiet, generator=torch.Generator().manual_seed(0))
    assert [g.shape for g in clipped] == [g.shape for g in raw]
    norms = _norms(clipped)
    assert (norms <= 1.0 + 1e-5).all()
    assert norms == pytest.approx(torch.ones(4), abs=1e-4)
    cosine = sum((a * b).flatten(1).sum(1) for a, b in zip(clipped, raw, strict=True)) / (norms * _norms(raw))
    assert cosine == pytest.approx(torch.ones(4), abs=1e-5)
    loose = DPConfig(sigma=1e-15, max_grad_norm=1e6)  # below C the gradient passes unchanged (noise std 1e-9)
    unclipped = noised_gradients(model, images, labels, dp=loose, generator=torch.Generator().manual_seed(0))
    for a, b in zip(unclipped, raw, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_noised_gradients_add_gaussian_noise_of_std_sigma_times_c(leaked) -> None:
    model, images, labels = leaked
    sigma, clip = 3.0, 0.5
    quiet = noised_gradients(
        model, images, labels, dp=DPConfig(sigma=1e-12, max_grad_norm=clip), generator=torch.Generator()
    )
    noisy = noised_gradients(
        model, images, labels, dp=DPConfig(sigma=sigma, max_grad_norm=clip), generator=torch.Generator().manual_seed(1)
    )
    noise = torch.cat([(a - b).flatten() for a, b in zip(noisy, quiet, strict=True)]).double()
    n, std = noise.numel(), sigma * clip
    # 4 images x 176,402 parameters: the sample std's standard error is std / sqrt(2n) (about 0.08 %),
    # the mean's is std / sqrt(n); six standard errors leave a ~1e-9 chance of a false failure.
    assert n > 700_000
    assert abs(noise.std().item() - std) < 6 * std / math.sqrt(2 * n)
    assert abs(noise.mean().item()) < 6 * std / math.sqrt(n)
    again = noised_gradients(
        model, images, labels, dp=DPConfig(sigma=sigma, max_grad_norm=clip), generator=torch.Generator().manual_seed(1)
    )
    for a, b in zip(noisy, again, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def _smoke_train(data: Cifar10, *, config: TrainConfig = SMOKE, seed: int = 0):
    dp = DPConfig(sigma=1.0, max_grad_norm=1.0, physical_batch_size=16)
    return train_dp(train=data.train, test=data.test, width=8, config=config, dp=dp, seed=seed, device=CPU)


def test_train_dp_smoke(data: Cifar10) -> None:
    result = _smoke_train(data)
    assert type(result.model) is ResNet18 and not isinstance(result.model, GradSampleModule)
    assert not any(hasattr(p, "grad_sample") or hasattr(p, "summed_grad") for p in result.model.parameters())
    assert result.sample_rate == pytest.approx(1 / math.ceil(len(data.train) / SMOKE.batch_size))
    assert result.steps == math.ceil(len(data.train) / SMOKE.batch_size) and result.epochs == 1
    assert math.isfinite(result.epsilon) and result.epsilon > 0
    assert result.epsilon == pytest.approx(
        epsilon(sigma=1.0, sample_rate=result.sample_rate, steps=result.steps, delta=1e-5), rel=1e-12
    )
    assert result.epsilon_prv is not None and 0 < result.epsilon_prv <= result.epsilon
    assert len(result.accuracy.per_label) == len(CLASSES)
    assert 0 <= result.accuracy.overall <= 1
    assert result.seconds > 0 and result.images_per_second > 0
    # the trained weights feed the attack as they are (torch.func needs a hook-free module)
    images, labels = normalize(data.test.images[:2]), data.test.labels[:2]
    observed = noised_gradients(
        result.model, images, labels, dp=DPConfig(sigma=1.0), generator=torch.Generator().manual_seed(0)
    )
    assert observed[0].shape[0] == 2 and all(torch.isfinite(g).all() for g in observed)
    again = _smoke_train(data)
    for a, b in zip(result.model.parameters(), again.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_train_dp_reports_divergence(data: Cifar10) -> None:
    with pytest.raises(AutoshieldError, match="DP-SGD diverged: loss is nan in epoch 1"):
        _smoke_train(data, config=TrainConfig(epochs=1, batch_size=32, lr=1e12, eval_batch_size=100))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sigma": 0.0}, "sigma must be finite and > 0, got 0.0"),
        ({"sigma": -1.0}, "sigma must be finite and > 0, got -1.0"),
        ({"sigma": math.nan}, "sigma must be finite and > 0, got nan"),
        ({"sigma": math.inf}, "sigma must be finite and > 0, got inf"),
        ({"sigma": 1.0, "max_grad_norm": math.inf}, "max_grad_norm must be finite and > 0, got inf"),
        ({"sigma": 1.0, "max_grad_norm": 0.0}, "max_grad_norm must be finite and > 0, got 0.0"),
        ({"sigma": 1.0, "delta": 0.0}, r"delta must be in \(0, 1\), got 0.0"),
        ({"sigma": 1.0, "delta": 1.0}, r"delta must be in \(0, 1\), got 1.0"),
        ({"sigma": 1.0, "physical_batch_size": 0}, "physical_batch_size must be >= 1, got 0"),
    ],
)
def test_bad_dp_config_is_rejected(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(AutoshieldError, match=message):
        DPConfig(**kwargs)
