"""DP-SGD (Abadi et al. 2016) with Opacus: the baseline defence that the searched policies are compared with.

`train_dp` trains the same ResNet-18 as the augmentation side (any norm but
BatchNorm, which per-sample gradients rule out) with per-sample clipping and
Gaussian noise, on the non-private trainer's schedule, and reports ε at δ with
the RDP accountant (docs/design.md §4). What an attacker sees of a DP-SGD
gradient is the threat model's business (`autoshield.privacy.threat`).
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

from autoshield.core.choices import Norm
from autoshield.core.config import TrainConfig
from autoshield.core.errors import AutoshieldError
from autoshield.core.runtime import progress_bar
from autoshield.data.cifar import Split, normalize
from autoshield.dp.accountant import epsilon, epsilon_prv, read_epsilon
from autoshield.dp.config import DPConfig, require_private_trainable
from autoshield.learn.models import build_model
from autoshield.learn.train import Accuracy, crop_flip, evaluate, lr_scheduler, sgd

try:
    from opacus import PrivacyEngine
    from opacus.accountants import IAccountant
    from opacus.utils.batch_memory_manager import BatchMemoryManager
    from opacus.validators import ModuleValidator
except ImportError:
    raise AutoshieldError("DP-SGD needs Opacus: pip install 'autoshield[dp]'") from None


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


def _accounted_steps(accountant: IAccountant) -> int:
    return sum(steps for _, _, steps in accountant.history)


def train_dp(
    *,
    train: Split,
    test: Split,
    width: int,
    norm: Norm,
    config: TrainConfig,
    dp: DPConfig,
    seed: int,
    device: torch.device,
    progress: bool = False,
) -> DPResult:
    """Train a fresh ResNet-18 with DP-SGD and report clean accuracy on `test` and ε.

    `config.batch_size` is the expected (logical) batch under Poisson sampling; physical
    batches of at most `dp.physical_batch_size` bound memory. The lr follows `config.schedule`,
    the non-private trainer's family, stepped once per logical batch (ε does not depend on it).
    `amp`, `compile` and `channels_last` are not used (Opacus' per-sample hooks want plain fp32
    modules).
    """
    require_private_trainable(norm)
    model = build_model(width=width, norm=norm, seed=seed).to(device).train()
    errors = ModuleValidator.validate(model)
    if errors:
        raise AutoshieldError(f"model is not Opacus-compatible: {'; '.join(map(str, errors))}")
    optimizer = sgd(model, config)
    sampling_seed, noise_seed, crop_seed = torch.randint(2**62, (3,), generator=torch.Generator().manual_seed(seed))
    loader = DataLoader(
        TensorDataset(normalize(train.images), train.labels),
        batch_size=config.batch_size,
        generator=torch.Generator().manual_seed(int(sampling_seed)),
    )
    crop_generator = torch.Generator(device=device).manual_seed(int(crop_seed))
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
    scheduler = lr_scheduler(optimizer.original_optimizer, config, steps)
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
                done = _accounted_steps(engine.accountant)
                if done > scheduler.last_epoch and done < steps:  # a logical batch ended: one step on the schedule
                    scheduler.step()
                if bar:
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
    eps = read_epsilon(engine.accountant, dp.delta)
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
