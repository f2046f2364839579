"""DP-SGD (Abadi et al. 2016) with Opacus: the baseline defence that the searched policies are compared with.

`train_dp` trains the same ResNet-18 (GroupNorm, since per-sample gradients rule
out BatchNorm) with per-sample clipping and Gaussian noise and reports ε at δ
with the RDP accountant (DESIGN §4). `noised_gradients` is the `noised` threat
setting: what an attacker sees of one image's DP-SGD gradient.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from autoshield.attack import Gradients, leak_gradients
from autoshield.config import TrainConfig
from autoshield.data import Split, normalize
from autoshield.errors import AutoshieldError
from autoshield.models import build_model
from autoshield.runtime import progress_bar
from autoshield.train import Accuracy, crop_flip, evaluate

try:
    from opacus import PrivacyEngine
    from opacus.accountants import IAccountant, PRVAccountant, RDPAccountant
    from opacus.utils.batch_memory_manager import BatchMemoryManager
    from opacus.validators import ModuleValidator
except ImportError:
    raise AutoshieldError("DP-SGD needs Opacus: pip install 'autoshield[dp]'") from None

PRV_MIN_SIGMA = 0.3  # below this the PRV accountant's discretisation runs out of memory
# For σ well below 1 the RDP optimum sits at the smallest order, so the bound is loose; ε is then far above
# 100 whatever the order, which `baseline` and `report` already flag as no meaningful guarantee.
warnings.filterwarnings("ignore", message="Optimal order is the smallest alpha")


@dataclass(frozen=True)
class DPConfig:
    """Noise multiplier σ, clipping norm C, target δ, and the largest batch put through the model at once."""

    sigma: float
    max_grad_norm: float = 1.0
    delta: float = 1e-5
    physical_batch_size: int = 64

    def __post_init__(self) -> None:
        if not (math.isfinite(self.sigma) and self.sigma > 0):
            raise AutoshieldError(f"DP noise multiplier sigma must be finite and > 0, got {self.sigma}")
        if not (math.isfinite(self.max_grad_norm) and self.max_grad_norm > 0):
            raise AutoshieldError(f"DP max_grad_norm must be finite and > 0, got {self.max_grad_norm}")
        if not 0 < self.delta < 1:
            raise AutoshieldError(f"DP delta must be in (0, 1), got {self.delta}")
        if self.physical_batch_size < 1:
            raise AutoshieldError(f"DP physical_batch_size must be >= 1, got {self.physical_batch_size}")


@dataclass(frozen=True)
class DPResult:
    model: nn.Module  # plain ResNet-18, Opacus hooks removed
    accuracy: Accuracy
    epsilon: float  # RDP accountant, at DPConfig.delta
    epsilon_prv: float | None  # PRV accountant; None where it is skipped or fails
    sample_rate: float  # Poisson sampling probability of each training image per step
    steps: int  # optimizer steps (logical batches)
    epochs: int
    seconds: float  # training loop only
    images_per_second: float


def _epsilon(accountant: IAccountant, *, sigma: float, sample_rate: float, steps: int, delta: float) -> float:
    accountant.history = [(sigma, sample_rate, steps)]
    return float(accountant.get_epsilon(delta))


def epsilon(*, sigma: float, sample_rate: float, steps: int, delta: float) -> float:
    """ε after `steps` Poisson-subsampled Gaussian steps, from Opacus' RDP accountant."""
    return _epsilon(RDPAccountant(), sigma=sigma, sample_rate=sample_rate, steps=steps, delta=delta)


def epsilon_prv(*, sigma: float, sample_rate: float, steps: int, delta: float) -> float | None:
    """The tighter PRV accountant's ε, or None for σ < 0.3 (out of memory) or when it fails."""
    if sigma < PRV_MIN_SIGMA:
        return None
    try:
        return _epsilon(PRVAccountant(), sigma=sigma, sample_rate=sample_rate, steps=steps, delta=delta)
    except (MemoryError, ArithmeticError, ValueError, RuntimeError):
        return None


def _accounted_steps(accountant: IAccountant) -> int:
    return sum(steps for _, _, steps in accountant.history)


def train_dp(
    *,
    train: Split,
    test: Split,
    width: int,
    config: TrainConfig,
    dp: DPConfig,
    seed: int,
    device: torch.device,
    progress: bool = False,
) -> DPResult:
    """Train a fresh GroupNorm ResNet-18 with DP-SGD and report clean accuracy on `test` and ε.

    `config.batch_size` is the expected (logical) batch under Poisson sampling; physical
    batches of at most `dp.physical_batch_size` bound memory. The lr is constant: TrainConfig's
    schedules (OneCycle's warm-up to a peak, cosine) are tuned for noiseless gradients, a
    constant rate keeps the baseline free of schedule tuning, and ε does not depend on it.
    `schedule`, `amp`, `compile` and `channels_last` are not used (Opacus' per-sample hooks
    want plain fp32 modules).
    """
    model = build_model(width=width, norm="group", seed=seed).to(device).train()
    errors = ModuleValidator.validate(model)
    if errors:
        raise AutoshieldError(f"model is not Opacus-compatible: {'; '.join(map(str, errors))}")
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay, nesterov=True
    )
    sampling_seed, noise_seed, crop_seed = torch.randint(2**62, (3,), generator=torch.Generator().manual_seed(seed))
    loader = DataLoader(
        TensorDataset(normalize(train.images), train.labels),
        batch_size=config.batch_size,
        generator=torch.Generator().manual_seed(int(sampling_seed)),
    )
    crop_generator = torch.Generator().manual_seed(int(crop_seed))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Secure RNG turned off")  # deliberately seeded, not secure
        engine = PrivacyEngine(accountant="rdp")
    private_model, optimizer, loader = engine.make_private(
        module=model,
        optimizer=optimizer,
        data_loader=loader,
        noise_multiplier=dp.sigma,
        max_grad_norm=dp.max_grad_norm,
        poisson_sampling=True,
        noise_generator=torch.Generator(device=device).manual_seed(int(noise_seed)),
    )
    sample_rate = loader.sample_rate
    steps = config.epochs * len(loader)
    start = time.perf_counter()
    with (
        warnings.catch_warnings(),
        progress_bar(progress) as bar,
        BatchMemoryManager(
            data_loader=loader, max_physical_batch_size=dp.physical_batch_size, optimizer=optimizer
        ) as physical_loader,
    ):
        # torch warns that the first layer's full backward hook sees no input gradient; Opacus
        # needs only the output gradient there, so the warning is expected.
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        task = bar.add_task("train DP-SGD", total=steps, status="") if bar else None
        for epoch in range(config.epochs):
            total, seen = torch.zeros((), device=device), 0
            for images, labels in physical_loader:
                images, labels = images.to(device), labels.to(device)
                if config.crop_flip:
                    images = crop_flip(images, generator=crop_generator)
                loss = F.cross_entropy(private_model(images), labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if len(labels):  # an empty Poisson batch is a noise-only step with a NaN mean loss
                    total += loss.detach() * len(labels)
                    seen += len(labels)
                if bar:
                    done = _accounted_steps(engine.accountant)
                    bar.update(task, completed=done, status=f"epoch {epoch + 1}/{config.epochs}")
            epoch_loss = float(total) / max(seen, 1)
            if not math.isfinite(epoch_loss):
                raise AutoshieldError(f"DP-SGD diverged: loss is {epoch_loss} in epoch {epoch + 1}")
    seconds = time.perf_counter() - start
    if _accounted_steps(engine.accountant) != steps:
        raise RuntimeError(f"Opacus accounted {_accounted_steps(engine.accountant)} steps, expected {steps}")
    model = private_model.to_standard_module()
    model.zero_grad(set_to_none=True)
    for p in model.parameters():
        vars(p).pop("summed_grad", None)  # left by DPOptimizer; not removed by to_standard_module
    eps = float(engine.get_epsilon(dp.delta))
    expected = epsilon(sigma=dp.sigma, sample_rate=sample_rate, steps=steps, delta=dp.delta)
    if not math.isclose(eps, expected, rel_tol=1e-9):
        raise RuntimeError(f"Opacus' engine reports epsilon {eps}, the RDP accountant gives {expected}")
    return DPResult(
        model=model,
        accuracy=evaluate(model, test, batch_size=config.eval_batch_size, device=device),
        epsilon=eps,
        epsilon_prv=epsilon_prv(sigma=dp.sigma, sample_rate=sample_rate, steps=steps, delta=dp.delta),
        sample_rate=sample_rate,
        steps=steps,
        epochs=config.epochs,
        seconds=seconds,
        images_per_second=config.epochs * len(train) / seconds,
    )


def noised_gradients(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, dp: DPConfig, generator: torch.Generator
) -> Gradients:
    """What an attacker sees of each image's DP-SGD contribution (DESIGN §4, `noised`).

    Each image's whole gradient is clipped to L2 norm ≤ C (Opacus' flat clipping,
    factor min(1, C / (norm + 1e-6))), then N(0, σ²C²) noise from `generator` is
    added to every coordinate. Same layout as `leak_gradients`.
    """
    gradients = leak_gradients(model, images, labels)
    norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in gradients))
    factor = (dp.max_grad_norm / (norms + 1e-6)).clamp(max=1.0)
    std = dp.sigma * dp.max_grad_norm
    return tuple(
        g * factor.view(-1, *(1,) * (g.ndim - 1))
        + (torch.randn(g.shape, generator=generator, device=generator.device) * std).to(g.device)
        for g in gradients
    )
