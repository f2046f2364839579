"""Utility: train a classifier on policy-transformed data, measure clean test accuracy.

The policy is applied once to the training set (the client's data *is* the
transformed data, docs/design.md §1); crop+flip is the usual per-batch augmentation on
top. All batches are cut from tensors already on the device, so the loop has
no data-loader overhead.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from autoshield.core.choices import Norm
from autoshield.core.config import TrainConfig
from autoshield.core.errors import AutoshieldError
from autoshield.core.runtime import phase, progress_bar
from autoshield.data.cifar import CLASSES, Split, normalize
from autoshield.data.policy import Policy, transform_split
from autoshield.learn.models import build_model


@dataclass(frozen=True)
class Accuracy:
    overall: float
    per_label: tuple[float, ...]


@dataclass(frozen=True)
class TrainResult:
    model: nn.Module
    accuracy: Accuracy
    epoch_losses: tuple[float, ...]
    seconds: float  # training loop only
    policy_seconds: float  # applying the policy to the training set
    images_per_second: float


def crop_flip(images: torch.Tensor, *, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Random crop with zero padding and horizontal flip, independently per image, in one gather.

    The random numbers are drawn on the images' device by `generator`, which must live there: a CPU draw copied to
    the GPU every step would make the host wait for the device each step."""
    n, c, h, w = images.shape
    device = images.device
    padded = F.pad(images, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (n, 1), generator=generator, device=device)
    dx = torch.randint(0, 2 * padding + 1, (n, 1), generator=generator, device=device)
    flip = torch.rand(n, 1, generator=generator, device=device) < 0.5
    rows = dy + torch.arange(h, device=device)
    cols = dx + torch.arange(w, device=device)
    cols = torch.where(flip, cols.flip(1), cols)
    batch = torch.arange(n, device=device)[:, None, None, None]
    channel = torch.arange(c, device=device)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


def lr_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=steps)
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)


def sgd(model: nn.Module, config: TrainConfig, *, fused: bool = False) -> torch.optim.SGD:
    """Nesterov SGD with the config's rate, momentum and weight decay: the private and non-private trainers share it.
    `fused` (CUDA) updates every parameter in one kernel instead of a few per tensor."""
    return torch.optim.SGD(
        model.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        nesterov=True,
        fused=fused or None,
    )


def fit(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    config: TrainConfig,
    seed: int,
    device: torch.device,
    progress: bool = False,
    description: str = "train",
) -> tuple[float, ...]:
    """Train `model` in place on uint8 `images`; returns the mean loss of each epoch.

    Nothing in the step waits for or copies to the device: the images are normalised there once, shuffling and
    crop/flip draw on the device's own generator, the loss is summed there and read once per epoch, and the bar is
    drawn about 100 times per run, not every step."""
    generator = torch.Generator(device=device).manual_seed(seed)
    model.to(device).train()
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model.to(memory_format=memory_format)
    pixels, labels = normalize(images.to(device)), labels.to(device)  # once, not per step
    steps_per_epoch = math.ceil(len(labels) / config.batch_size)
    cuda = device.type == "cuda"
    optimizer = sgd(model, config, fused=cuda)
    total_steps = config.epochs * steps_per_epoch
    scheduler = lr_scheduler(optimizer, config, total_steps)
    forward = torch.compile(model) if config.compile and cuda else model
    epoch_losses = []
    every = max(1, total_steps // 100)
    with progress_bar(progress) as bar:
        task = bar.add_task(description, total=total_steps, status="") if bar else None
        for epoch in range(config.epochs):
            phase(f"{description} epoch {epoch + 1}/{config.epochs}")
            order = torch.randperm(len(labels), generator=generator, device=device)
            total = torch.zeros((), device=device)
            for step in range(steps_per_epoch):
                index = order[step * config.batch_size : (step + 1) * config.batch_size]
                batch = pixels[index]
                if config.crop_flip:
                    batch = crop_flip(batch, generator=generator)
                batch = batch.contiguous(memory_format=memory_format)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.amp and cuda):
                    loss = F.cross_entropy(forward(batch), labels[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                total += loss.detach() * len(index)
                done = epoch * steps_per_epoch + step + 1
                if bar and (done % every == 0 or done == total_steps):
                    bar.update(task, completed=done, status=f"epoch {epoch + 1}/{config.epochs}")
            epoch_loss = float(total) / len(labels)
            if not math.isfinite(epoch_loss):
                raise AutoshieldError(f"training diverged: loss is {epoch_loss} in epoch {epoch + 1}")
            epoch_losses.append(epoch_loss)
    return tuple(epoch_losses)


@torch.no_grad()
def logits(model: nn.Module, images: torch.Tensor, *, batch_size: int, device: torch.device) -> torch.Tensor:
    """`[N, classes]` float32 logits for uint8 images, or for normalised float images."""
    model.to(device).eval()
    out = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(device)
        batch = normalize(batch) if batch.dtype == torch.uint8 else batch
        out.append(model(batch).float().cpu())
    return torch.cat(out) if out else torch.empty(0, len(CLASSES))


def predict(model: nn.Module, images: torch.Tensor, *, batch_size: int, device: torch.device) -> torch.Tensor:
    """Predicted labels for uint8 images, or for normalised float images."""
    return logits(model, images, batch_size=batch_size, device=device).argmax(1)


def per_label_accuracy(predictions: torch.Tensor, labels: torch.Tensor) -> Accuracy:
    correct = (predictions == labels).float()
    per_label = []
    for label in range(len(CLASSES)):
        members = labels == label
        per_label.append(float(correct[members].mean()) if members.any() else math.nan)
    return Accuracy(float(correct.mean()), tuple(per_label))


def evaluate(model: nn.Module, split: Split, *, batch_size: int, device: torch.device) -> Accuracy:
    """Clean accuracy, overall and per label."""
    return per_label_accuracy(predict(model, split.images, batch_size=batch_size, device=device), split.labels)


def train_classifier(
    *,
    train: Split,
    test: Split,
    policy: Policy,
    width: int,
    norm: Norm,
    config: TrainConfig,
    seed: int,
    device: torch.device,
    progress: bool = False,
) -> TrainResult:
    """Train a fresh ResNet-18 on `policy(train)` and report clean accuracy on `test`."""
    start = time.perf_counter()
    transformed = transform_split(train, policy, seed=seed)
    policy_seconds = time.perf_counter() - start
    model = build_model(width=width, norm=norm, seed=seed)
    start = time.perf_counter()
    losses = fit(
        model, transformed.images, transformed.labels, config=config, seed=seed, device=device, progress=progress
    )
    seconds = time.perf_counter() - start
    accuracy = evaluate(model, test, batch_size=config.eval_batch_size, device=device)
    return TrainResult(model, accuracy, losses, seconds, policy_seconds, config.epochs * len(train) / seconds)
