"""CIFAR ResNet-18 (3x3 stem, no max-pool) with a width and a norm switch.

The norms (docs/design.md §4, measured in benchmarks/RESULTS.md):
- `batch`: BatchNorm. At initialisation in eval mode it is an identity; Opacus cannot train it.
- `group`: GroupNorm with gcd(32, channels) groups (Opacus' `ModuleValidator.fix`): one channel per group,
  i.e. instance normalisation, at width 16.
- `layer`: GroupNorm with one group per layer.
- `none`: no normalisation, PyTorch's default initialisation, no biases.
- `fixup`: no normalisation, Fixup-style (Zhang et al. 2019): He initialisation, each residual branch's last
  convolution scaled by 1/sqrt(blocks), and a bias on every convolution. Fixup's zero initialisations are left
  out on purpose: a zero branch or classifier has no gradient at initialisation, where the attack observes it.
- `gnws`: GroupNorm with 8 channels per group after weight-standardised convolutions (De et al. 2022). The stem
  convolution keeps a bias, so the network is not blind to the input's scale (a per-sample norm after a bias-free
  stem is, which is why `group` and `layer` cannot be inverted).
- `branch`: `gnws` inside the residual branches only; the stem and the shortcuts are plain convolutions without a
  norm (as in pre-activation and normaliser-free ResNets), so the input's scale reaches the output along the
  shortcut path.

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

BLOCKS = 8  # ResNet-18's residual blocks


class StandardisedConv2d(nn.Conv2d):
    """A convolution whose weight is standardised per output channel in every forward (Qiao et al. 2019): the
    normaliser-free networks' and De et al.'s companion to GroupNorm, trainable by Opacus' functorch fallback and
    attacked on the per-sample path (`privacy.per_sample`) through `raw_gradient`."""

    eps = 1e-5

    def _scale(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(standardised weight, 1/std) per output channel, flattened to `[O, K]` and `[O, 1]`."""
        w = self.weight.flatten(1)
        inverse = torch.rsqrt(w.var(dim=1, keepdim=True, unbiased=False) + self.eps)
        return (w - w.mean(dim=1, keepdim=True)) * inverse, inverse

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self._scale()[0].view_as(self.weight), self.bias)

    def raw_gradient(self, grad: torch.Tensor) -> torch.Tensor:
        """The raw weight's gradients `[..., O, K]` from the standardised weight's: the standardisation's Jacobian,
        r·(g - mean(g) - ŵ·mean(g ⊙ ŵ)) per output channel, so per-sample gradients need no second backward."""
        standard, inverse = self._scale()
        centred = grad - grad.mean(dim=-1, keepdim=True)
        return inverse * (centred - standard * (grad * standard).mean(dim=-1, keepdim=True))


def _grouped(norm: Norm, where: str) -> bool:
    """Whether a layer at `where` ("stem", "branch": inside a residual branch, or "shortcut") gets the weight-
    standardised convolution and its GroupNorm: everywhere in `gnws`, in the residual branches only in `branch`."""
    return norm == "gnws" or (norm == "branch" and where == "branch")


def _conv(norm: Norm, in_channels: int, channels: int, size: int, stride: int, *, where: str) -> nn.Conv2d:
    if _grouped(norm, where):
        return StandardisedConv2d(in_channels, channels, size, stride, size // 2, bias=where == "stem")
    return nn.Conv2d(in_channels, channels, size, stride, size // 2, bias=norm == "fixup")


def _norm(kind: Norm, channels: int, *, where: str) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(math.gcd(32, channels), channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if _grouped(kind, where):
        return nn.GroupNorm(max(1, channels // 8), channels)
    return nn.Identity()


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, channels: int, stride: int, norm: Norm) -> None:
        super().__init__()
        self.conv1 = _conv(norm, in_channels, channels, 3, stride, where="branch")
        self.bn1 = _norm(norm, channels, where="branch")
        self.conv2 = _conv(norm, channels, channels, 3, 1, where="branch")
        self.bn2 = _norm(norm, channels, where="branch")
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(
                _conv(norm, in_channels, channels, 1, stride, where="shortcut"),
                _norm(norm, channels, where="shortcut"),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """Width 64 is the standard 11,173,962-parameter CIFAR ResNet-18."""

    def __init__(self, *, width: int = 64, norm: Norm = "batch", num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = _conv(norm, 3, width, 3, 1, where="stem")
        self.bn1 = _norm(norm, width, where="stem")
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
        if norm == "fixup":
            _fixup_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


@torch.no_grad()
def _fixup_init(model: ResNet18) -> None:
    """He-initialised convolutions with zero biases, each branch's output scaled so that the 8 residual additions
    keep the signal's variance bounded without a norm (Fixup's L^(-1/(2m-2)) with m = 2 layers per branch)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(module.bias)
        if isinstance(module, BasicBlock):
            module.conv2.weight.mul_(BLOCKS**-0.5)


def build_model(*, width: int, norm: Norm = "batch", seed: int) -> ResNet18:
    """A freshly initialised network; the same seed gives the same weights everywhere."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ResNet18(width=width, norm=norm)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
