"""CIFAR ResNet-18 (3x3 stem, no max-pool) with a width and a norm switch.

The norms (docs/design.md §4, measured in benchmarks/RESULTS.md):
- `batch`: BatchNorm. At initialisation in eval mode it is an identity; Opacus cannot train it.
- `group`: GroupNorm with gcd(32, channels) groups (Opacus' `ModuleValidator.fix`): one channel per group,
  i.e. instance normalisation, at width 16.
- `layer`: GroupNorm with one group per layer.
- `none`: no normalisation, PyTorch's default initialisation.

Residual adds and ReLUs are out of place: Opacus' per-sample-gradient hooks
fail on in-place ones (Opacus issue #828, docs/design.md §4), and `torch.func`
double-backward in the attack is happier without them too.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from autoshield.core.choices import Norm


def _norm(kind: Norm, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(math.gcd(32, channels), channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    return nn.Identity()


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, channels: int, stride: int, norm: Norm) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = _norm(norm, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = _norm(norm, channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False), _norm(norm, channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """Width 64 is the standard 11,173,962-parameter CIFAR ResNet-18."""

    def __init__(self, *, width: int = 64, norm: Norm = "batch", num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = _norm(norm, width)
        layers = []
        in_channels = width
        for i, stride in enumerate((1, 2, 2, 2)):
            channels = width * 2**i
            layers.append(
                nn.Sequential(BasicBlock(in_channels, channels, stride, norm), BasicBlock(channels, channels, 1, norm))
            )
            in_channels = channels
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.linear = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def build_model(*, width: int, norm: Norm = "batch", seed: int) -> ResNet18:
    """A freshly initialised network; the same seed gives the same weights everywhere."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ResNet18(width=width, norm=norm)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
