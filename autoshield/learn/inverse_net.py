"""A small image-to-image network that learns to undo one cell, for the learned-inverse attacker (issue #36).

An op with no exact inverse (Solarize, Posterize, Sharpness, AutoContrast, Equalize) leaves the attacker a
reconstruction of the *transformed* image. Balunović et al. (ICLR'22) broke such defences with priors learned from
public data: a network trained on public pairs (cell(x), x) maps what the attack recovered back towards x. It sees
only pixels, learns both signs of a signed op (the client's sign is its secret), and is residual, so an op it
cannot undo costs little: it starts as the identity.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from autoshield.core.errors import AutoshieldError
from autoshield.core.runtime import phase, progress_bar
from autoshield.data.ops import random_signs


@dataclass(frozen=True)
class InverseConfig:
    """The learned inverse's recipe. Fixed rather than a profile field, so that no profile's fingerprint moves; its
    fields enter the cached network's key and, through the weights' digest, every row it scored."""

    width: int = 32
    # hidden layers' dilations: with the output layer, a 35-pixel receptive field, the whole image, since Equalize
    # and AutoContrast depend on every pixel
    dilations: tuple[int, ...] = (1, 2, 4, 8, 1)
    epochs: int = 2
    batch_size: int = 128
    lr: float = 1e-3
    # the naive attack's reconstructions are not clean: RMSE 0.1 is a 20 dB reconstruction, what the naive attack
    # reaches on Identity at `quick` (RESULTS.md), so the network learns to undo the cell from a noisy copy
    noise: float = 0.1


INVERSE = InverseConfig()


class InverseNet(nn.Module):
    """pixels in [0, 1] -> pixels: the input plus a learned correction (clamped when applied, not when trained)."""

    def __init__(self, config: InverseConfig) -> None:
        super().__init__()
        widths = [3, *([config.width] * len(config.dilations))]
        self.hidden = nn.ModuleList(
            nn.Conv2d(a, b, 3, padding=d, dilation=d)
            for a, b, d in zip(widths[:-1], widths[1:], config.dilations, strict=True)
        )
        self.out = nn.Conv2d(config.width, 3, 3, padding=1)
        nn.init.zeros_(self.out.weight)  # starts as the identity: an op it cannot undo is left as it was
        nn.init.zeros_(self.out.bias)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        h = pixels
        for layer in self.hidden:
            h = F.relu(layer(h))
        return pixels + self.out(h)


def inverse_network(*, config: InverseConfig = INVERSE, seed: int) -> InverseNet:
    """The untrained network, seeded: one (config, seed) gives one set of initial weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return InverseNet(config)


@dataclass(frozen=True)
class FitResult:
    losses: tuple[float, ...]  # mean squared error of each epoch, on the noisy inputs
    seconds: float  # the training loop, transforms included: what the learned attacker costs per cell


def fit_inverse(
    network: InverseNet,
    images: torch.Tensor,
    *,
    transform: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    config: InverseConfig = INVERSE,
    seed: int,
    device: torch.device,
    progress: bool = False,
    description: str = "learned inverse",
) -> FitResult:
    """Train `network` in place to map `transform(x, signs)` (uint8 in, uint8 out, as the client applies the
    cell) plus Gaussian noise, clamped to [0, 1], back to x, for uint8 `images` `[N,3,H,W]`; each batch draws its
    images' signs anew."""
    if images.dtype != torch.uint8 or images.ndim != 4 or len(images) == 0:
        raise AutoshieldError(f"the learned inverse trains on uint8 images [N,3,H,W], got {tuple(images.shape)}")
    generator = torch.Generator().manual_seed(seed)
    network.to(device).train()
    optimizer = torch.optim.Adam(network.parameters(), lr=config.lr)
    steps_per_epoch = math.ceil(len(images) / config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    losses = []
    began = time.perf_counter()
    with progress_bar(progress) as bar:
        task = bar.add_task(description, total=total_steps, status="") if bar else None
        for epoch in range(config.epochs):
            phase(f"{description} epoch {epoch + 1}/{config.epochs}")
            order = torch.randperm(len(images), generator=generator)
            total = torch.zeros((), device=device)  # summed where the loss is, read once per epoch
            for step in range(steps_per_epoch):
                batch = images[order[step * config.batch_size : (step + 1) * config.batch_size]]
                signs = random_signs(len(batch), generator=generator)
                seen = transform(batch, signs).float() / 255  # a reconstruction lies in the image box, as this does
                seen = (seen + config.noise * torch.randn(seen.shape, generator=generator)).clamp(0, 1)
                target = batch.float() / 255
                loss = F.mse_loss(network(seen.to(device)), target.to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                total += loss.detach() * len(batch)
                if bar:
                    bar.update(task, advance=1, status=f"epoch {epoch + 1}/{config.epochs}")
            losses.append(float(total) / len(images))
            if not math.isfinite(losses[-1]):
                raise AutoshieldError(f"the learned inverse diverged: loss is {losses[-1]} in epoch {epoch + 1}")
    network.eval()
    return FitResult(tuple(losses), time.perf_counter() - began)
