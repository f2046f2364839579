"""The threat model in one place: what an honest-but-curious server observes of a client's images.

The client transforms its images with the policy and computes gradients; the
server sees only what a `ThreatModel` returns, never the images. Two views
exist today: the exact gradients (`leak_batch` images behind each observed
gradient) and DP-SGD's view (each image's gradient clipped to norm C, plus
N(0, σ²C²) noise, the `noised` setting of docs/design.md §4). An exact view
depends only on its inputs, so attacks on it can be cached; a noised one
cannot, since the cache key cannot see the noise.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

import torch
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.nn import functional as F

from autoshield.core.errors import AutoshieldError
from autoshield.dp.config import DPConfig

Gradients = tuple[torch.Tensor, ...]  # one tensor per parameter, leading dimension = observed gradient


def params_and_buffers(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    params = {name: p.detach() for name, p in model.named_parameters()}
    buffers = {name: b.detach() for name, b in model.named_buffers()}
    return params, buffers


def loss_fn(model: nn.Module, buffers: dict[str, torch.Tensor]) -> Callable[..., torch.Tensor]:
    """The client's training loss as a function of the parameters, for `torch.func` transforms."""

    def loss(params: dict[str, torch.Tensor], images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(functional_call(model, (params, buffers), (images,)), labels)

    return loss


def leak_gradients(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, leak_batch: int = 1) -> Gradients:
    """The exact gradients: one per group of `leak_batch` images.

    `images` are normalised `[P*leak_batch, 3, H, W]`; the model is used in eval mode (docs/design.md §3).
    """
    if len(images) == 0:
        raise AutoshieldError("no images to leak gradients from")
    if len(images) % leak_batch:
        raise AutoshieldError(f"{len(images)} images do not split into leaked batches of {leak_batch}")
    model.eval()
    params, buffers = params_and_buffers(model)
    names = list(params)
    per_problem = vmap(grad(loss_fn(model, buffers)), in_dims=(None, 0, 0))
    shape = (len(images) // leak_batch, leak_batch)
    grads = per_problem(params, images.reshape(*shape, *images.shape[1:]), labels.reshape(shape))
    return tuple(grads[name].detach() for name in names)


def noise_seed(victim: int, *, sigma: float, seed: int) -> int:
    """The seed of one victim's noise at one σ: reproducible, and independent across victims and across σ (one
    shared generator gave every σ the same noise direction, so three σ were one draw)."""
    return int(hashlib.sha256(f"noise:{seed}:{float(sigma)!r}:{victim}".encode()).hexdigest()[:15], 16)


def _norms(gradients: Gradients) -> torch.Tensor:
    return torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in gradients))


def signal_to_noise(gradients: Gradients, *, dp: DPConfig) -> torch.Tensor:
    """Per observed gradient, ‖clipped g‖ / (σ·C·√d): the noise's norm is about σ·C·√d for d parameters, so
    far below 1 the observation is almost all noise and no attack can succeed (docs/design.md §8)."""
    d = sum(g[0].numel() for g in gradients)
    clipped = _norms(gradients).clamp(max=dp.max_grad_norm)
    return clipped / (dp.sigma * dp.max_grad_norm * math.sqrt(d))


def noised_gradients(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, dp: DPConfig, seeds: Sequence[int]
) -> Gradients:
    """What an attacker sees of each image's DP-SGD contribution (docs/design.md §4, `noised`).

    Each image's whole gradient is clipped to L2 norm ≤ C (Opacus' flat clipping,
    factor min(1, C / (norm + 1e-6))), then N(0, σ²C²) noise is added to every
    coordinate, drawn from the image's own seed (`noise_seed`). Same layout as `leak_gradients`.
    """
    if len(seeds) != len(images):
        raise AutoshieldError(f"{len(seeds)} noise seeds for {len(images)} images")
    gradients = leak_gradients(model, images, labels)
    factor = (dp.max_grad_norm / (_norms(gradients) + 1e-6)).clamp(max=1.0)
    std = dp.sigma * dp.max_grad_norm
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    return tuple(
        g * factor.view(-1, *(1,) * (g.ndim - 1))
        + torch.stack([torch.randn(g.shape[1:], generator=gen) for gen in generators]).to(g.device) * std
        for g in gradients
    )


class ThreatModel(Protocol):
    """A server's view of the client's (already transformed, normalised) images."""

    cacheable: ClassVar[bool]  # the view is a function of its inputs alone

    def observe(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> Gradients: ...


@dataclass(frozen=True)
class ExactGradients:
    """The undefended server's view: exact gradients of `leak_batch` images each."""

    leak_batch: int = 1
    cacheable: ClassVar[bool] = True

    def observe(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> Gradients:
        return leak_gradients(model, images, labels, leak_batch=self.leak_batch)


@dataclass(frozen=True)
class NoisedGradients:
    """DP-SGD's view: one image's clipped gradient plus Gaussian noise, seeded per image (`noise_seed`)."""

    dp: DPConfig
    seeds: tuple[int, ...]  # one per image, in the order the images are observed
    cacheable: ClassVar[bool] = False

    def observe(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> Gradients:
        return noised_gradients(model, images, labels, dp=self.dp, seeds=self.seeds)


def dp_view(dp: DPConfig, *, indices: torch.Tensor, seed: int) -> NoisedGradients:
    """DP-SGD's view of the training images at `indices`, observed in that order, each noised from its own seed:
    the same victims under the same σ see the same noise in `baseline` and in `attack --dp-sigma`."""
    return NoisedGradients(dp, tuple(noise_seed(int(v), sigma=dp.sigma, seed=seed) for v in indices))
