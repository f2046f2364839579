"""The attack's step with each problem's gradient built from activations and output gradients (`mode="unfold"`).

Why: `vmap` over a per-problem double backward turns every convolution's per-problem weight gradient into a
grouped convolution with one group per problem, and GPUs run those far below their matrix rate (an H200 spent
~1 ms per image-iteration at width 64, docs/design.md §9). Here the network runs once over the whole stack as an
ordinary batch. The stack's loss is a sum of per-problem losses, so autograd's gradient at a layer's output is,
row by row, each problem's own; a problem's weight gradient is then that output gradient times the layer's
unfolded input, one batched matrix product per layer (Goodfellow's per-example trick, as in Opacus' grad
samplers). Autograd differentiates all of that once more for the image gradient. Same objective as the vmap path,
to float rounding (tests/test_attack.py).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from autoshield.privacy.threat import Gradients

Step = Callable[[torch.Tensor, torch.Tensor, Gradients, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
_NORMS = (nn.BatchNorm2d, nn.GroupNorm)


def supports(model: nn.Module) -> bool:
    """Every parameter belongs to a layer whose per-problem gradient this module knows: plain convolutions
    (no groups, no dilation, zero padding), linear layers, and BatchNorm (eval) or GroupNorm affines."""
    return all(_splittable(module) for module in model.modules() if list(module.parameters(recurse=False)))


def _splittable(module: nn.Module) -> bool:
    if isinstance(module, nn.Conv2d):
        plain = module.groups == 1 and module.padding_mode == "zeros" and module.dilation == (1, 1)
        return plain and not isinstance(module.padding, str)
    return isinstance(module, nn.Linear) or (isinstance(module, _NORMS) and module.affine)


def _problem_major(t: torch.Tensor, problems: int) -> torch.Tensor:
    """`[problems*leak, C, L]` -> `[problems, C, leak*L]`: a problem's images side by side along the sum axis."""
    n, c, length = t.shape
    return t.view(problems, n // problems, c, length).transpose(1, 2).reshape(problems, c, -1)


def _normalised(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A norm layer's input before its affine: what its weight multiplies."""
    if isinstance(module, nn.GroupNorm):
        return F.group_norm(x, module.num_groups, eps=module.eps)
    return F.batch_norm(x, module.running_mean, module.running_var, training=False, eps=module.eps)


def _layer_gradients(module: nn.Module, x: torch.Tensor, g: torch.Tensor, problems: int) -> dict[str, torch.Tensor]:
    """Per-problem gradients of one layer's parameters from its input `x` and output gradient `g`."""
    if isinstance(module, nn.Linear):
        a, b = _problem_major(g[:, :, None], problems), _problem_major(x[:, :, None], problems)
        weight, bias_from = torch.bmm(a, b.transpose(1, 2)), a
    elif isinstance(module, nn.Conv2d):
        cols = F.unfold(x, module.kernel_size, padding=module.padding, stride=module.stride)
        a = _problem_major(g.flatten(2), problems)
        weight, bias_from = torch.bmm(a, _problem_major(cols, problems).transpose(1, 2)), a
    else:
        a = _problem_major(g.flatten(2), problems)
        weight = (a * _problem_major(_normalised(module, x).flatten(2), problems)).sum(2)
        bias_from = a
    grads = {"weight": weight.view(problems, *module.weight.shape)}
    if module.bias is not None:
        grads["bias"] = bias_from.sum(2)
    return grads


def step_fn(model: nn.Module, *, tv_weight: float, prior: Callable[[torch.Tensor], torch.Tensor]) -> Step:
    """(images `[S, leak, 3, H, W]`, labels `[S, leak]`, targets, target norms `[S]`) -> (d objective / d images,
    gradient loss per problem); the objective is the vmap path's: 1 - cosine(gradient, target) + TV prior."""
    owners = {m: name for name, m in model.named_modules() if list(m.parameters(recurse=False))}
    wanted = [name.rpartition(".")[::2] for name, _ in model.named_parameters()]  # (owner, key), the targets' order

    def step(
        images: torch.Tensor, labels: torch.Tensor, targets: Gradients, norm: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        problems, leak = labels.shape
        seen: list[tuple[nn.Module, torch.Tensor, torch.Tensor]] = []

        def keep(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            seen.append((module, inputs[0], output))

        with torch.enable_grad():
            x = images.detach().requires_grad_(True)
            handles = [m.register_forward_hook(keep) for m in owners]
            try:
                logits = model(x.flatten(0, 1))
            finally:
                for handle in handles:
                    handle.remove()
            losses = F.cross_entropy(logits, labels.flatten(), reduction="none").view(problems, leak).mean(1)
            outputs = torch.autograd.grad(losses.sum(), [out for _, _, out in seen], create_graph=True)
            found: dict[tuple[str, str], torch.Tensor] = {}
            for (module, inp, _), g in zip(seen, outputs, strict=True):
                for key, value in _layer_gradients(module, inp, g, problems).items():
                    name = (owners[module], key)
                    found[name] = found[name] + value if name in found else value  # a layer called twice
            grads = [found[name] for name in wanted]
            dot = sum((g * t).flatten(1).sum(1) for g, t in zip(grads, targets, strict=True))
            g_norm = torch.sqrt(sum(g.pow(2).flatten(1).sum(1) for g in grads))
            rec = 1 - dot / (g_norm * norm + 1e-12)
            (image_grad,) = torch.autograd.grad((rec + tv_weight * prior(x)).sum(), x)
        return image_grad, rec.detach()

    return step
