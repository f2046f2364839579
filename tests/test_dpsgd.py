"""DP-SGD baseline: privacy accounting, the `noised` threat setting, Opacus training at smoke scale."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch

pytest.importorskip("opacus")

from opacus.accountants import RDPAccountant
from opacus.grad_sample import GradSampleModule

from autoshield.core.choices import Norm
from autoshield.core.config import TrainConfig
from autoshield.core.errors import AutoshieldError
from autoshield.data.cifar import CLASSES, Cifar10, normalize
from autoshield.dp.accountant import epsilon, epsilon_prv
from autoshield.dp.config import DPConfig
from autoshield.dp.engine import train_dp
from autoshield.learn.models import ResNet18, build_model
from autoshield.privacy.threat import leak_gradients, noise_seed, noised_gradients, signal_to_noise

CPU = torch.device("cpu")
SEEDS = (11, 12, 13, 14)  # per-image noise seeds
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
    clipped = noised_gradients(model, images, labels, dp=quiet, seeds=SEEDS)
    assert [g.shape for g in clipped] == [g.shape for g in raw]
    norms = _norms(clipped)
    assert (norms <= 1.0 + 1e-5).all()
    assert norms == pytest.approx(torch.ones(4), abs=1e-4)
    cosine = sum((a * b).flatten(1).sum(1) for a, b in zip(clipped, raw, strict=True)) / (norms * _norms(raw))
    assert cosine == pytest.approx(torch.ones(4), abs=1e-5)
    loose = DPConfig(sigma=1e-15, max_grad_norm=1e6)  # below C the gradient passes unchanged (noise std 1e-9)
    unclipped = noised_gradients(model, images, labels, dp=loose, seeds=SEEDS)
    for a, b in zip(unclipped, raw, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_noised_gradients_add_gaussian_noise_of_std_sigma_times_c(leaked) -> None:
    model, images, labels = leaked
    sigma, clip = 3.0, 0.5
    quiet = noised_gradients(model, images, labels, dp=DPConfig(sigma=1e-12, max_grad_norm=clip), seeds=SEEDS)
    noisy = noised_gradients(model, images, labels, dp=DPConfig(sigma=sigma, max_grad_norm=clip), seeds=SEEDS)
    noise = torch.cat([(a - b).flatten() for a, b in zip(noisy, quiet, strict=True)]).double()
    n, std = noise.numel(), sigma * clip
    # 4 images x 176,402 parameters: the sample std's standard error is std / sqrt(2n) (about 0.08 %),
    # the mean's is std / sqrt(n); six standard errors leave a ~1e-9 chance of a false failure.
    assert n > 700_000
    assert abs(noise.std().item() - std) < 6 * std / math.sqrt(2 * n)
    assert abs(noise.mean().item()) < 6 * std / math.sqrt(n)
    again = noised_gradients(model, images, labels, dp=DPConfig(sigma=sigma, max_grad_norm=clip), seeds=SEEDS)
    for a, b in zip(noisy, again, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def _smoke_train(data: Cifar10, *, config: TrainConfig = SMOKE, seed: int = 0, norm: Norm = "none"):
    dp = DPConfig(sigma=1.0, max_grad_norm=1.0, physical_batch_size=16)
    return train_dp(train=data.train, test=data.test, width=8, norm=norm, config=config, dp=dp, seed=seed, device=CPU)


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
    observed = noised_gradients(result.model, images, labels, dp=DPConfig(sigma=1.0), seeds=SEEDS[:2])
    assert observed[0].shape[0] == 2 and all(torch.isfinite(g).all() for g in observed)
    again = _smoke_train(data)
    for a, b in zip(result.model.parameters(), again.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_train_dp_reports_divergence(data: Cifar10) -> None:
    with pytest.raises(AutoshieldError, match="DP-SGD diverged: loss is nan in epoch 1"):
        _smoke_train(data, config=TrainConfig(epochs=1, batch_size=32, lr=1000.0, eval_batch_size=100))


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


def _noise(model, images, labels, *, sigma: float, seeds: tuple[int, ...]) -> torch.Tensor:
    """The noise of each image's observation, in units of σ·C: `[images, parameters]`."""
    dp, quiet = DPConfig(sigma=sigma), DPConfig(sigma=1e-12)
    noisy = noised_gradients(model, images, labels, dp=dp, seeds=seeds)
    clean = noised_gradients(model, images, labels, dp=quiet, seeds=seeds)
    return torch.cat([(a - b).flatten(1) for a, b in zip(noisy, clean, strict=True)], dim=1).double() / sigma


def test_two_sigmas_draw_independent_noise_for_each_victim(leaked) -> None:
    """One shared generator once gave every σ the same noise direction; now each (σ, victim) has its own draw."""
    model, images, labels = leaked
    victims = range(4)
    low = _noise(model, images, labels, sigma=0.5, seeds=tuple(noise_seed(v, sigma=0.5, seed=0) for v in victims))
    high = _noise(model, images, labels, sigma=1.0, seeds=tuple(noise_seed(v, sigma=1.0, seed=0) for v in victims))
    d = low.shape[1]
    cosine = (low * high).sum(1) / (low.norm(dim=1) * high.norm(dim=1))
    # independent standard normal vectors of d = 176,402 coordinates: cosine ~ N(0, 1/d), |cos| < 6/sqrt(d)
    assert (cosine.abs() < 6 / math.sqrt(d)).all()
    across_victims = (low[0] * low[1]).sum() / (low[0].norm() * low[1].norm())
    assert abs(across_victims) < 6 / math.sqrt(d)
    again = _noise(model, images, labels, sigma=0.5, seeds=tuple(noise_seed(v, sigma=0.5, seed=0) for v in victims))
    torch.testing.assert_close(low, again, rtol=0, atol=1e-9)
    assert noise_seed(0, sigma=0.5, seed=0) != noise_seed(0, sigma=0.5, seed=1)


def test_signal_to_noise_is_clipped_norm_over_sigma_c_sqrt_d(leaked) -> None:
    model, images, labels = leaked
    raw = leak_gradients(model, images, labels)
    d = sum(p.numel() for p in model.parameters())
    snr = signal_to_noise(raw, dp=DPConfig(sigma=0.5, max_grad_norm=2.0))
    expected = _norms(raw).clamp(max=2.0) / (0.5 * 2.0 * math.sqrt(d))
    torch.testing.assert_close(snr, expected)


@pytest.mark.parametrize("norm", ["group", "layer", "none", "fixup", "gnws"])
def test_every_norm_but_batch_trains_under_opacus(data: Cifar10, norm: Norm) -> None:
    result = _smoke_train(data, norm=norm)
    assert math.isfinite(result.epsilon) and 0 <= result.accuracy.overall <= 1


def test_batch_norm_is_refused_with_one_line(data: Cifar10) -> None:
    with pytest.raises(AutoshieldError, match="DP-SGD cannot train norm 'batch'"):
        _smoke_train(data, norm="batch")


def test_dp_lr_follows_the_schedule_once_per_logical_batch(data: Cifar10, monkeypatch) -> None:
    """The DP recipe uses the non-private trainer's schedule: one scheduler step per optimizer (logical) step."""
    from autoshield.dp import engine

    schedulers = []
    original = engine.lr_scheduler

    def recording(optimizer, config, steps):
        scheduler = original(optimizer, config, steps)
        schedulers.append((scheduler, steps))
        return scheduler

    monkeypatch.setattr(engine, "lr_scheduler", recording)
    result = _smoke_train(data, config=TrainConfig(epochs=2, batch_size=32, eval_batch_size=100, schedule="cosine"))
    ((scheduler, steps),) = schedulers
    assert steps == result.steps
    assert scheduler.last_epoch == result.steps - 1  # stepped after every logical batch but the last
    assert scheduler.get_last_lr()[0] < 0.1 * SMOKE.lr  # cosine has annealed to near zero
