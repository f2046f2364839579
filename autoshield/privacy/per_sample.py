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

from autoshield.learn.models import StandardisedConv2d
from autoshield.privacy.threat import Gradients

Step = Callable[[torch.Tensor, torch.Tensor, Gradients, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
_NORMS = (nn.BatchNorm2d, nn.GroupNorm)


def supports(model: nn.Module) -> bool:
    """Every parameter belongs to a layer whose per-problem gradient this module knows: convolutions, plain or
    weight-standardised (no groups, no dilation, zero padding), linear layers, and BatchNorm (eval) or GroupNorm
    affines."""
    return all(_splittable(module) for module in model.modules() if list(module.parameters(recurse=False)))


def _splittable(module: nn.Module) -> bool:
    if type(module) in (nn.Conv2d, StandardisedConv2d):  # another subclass may transform its weight unknown ways
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


def unfold(x: torch.Tensor, module: nn.Conv2d) -> torch.Tensor:
    """`F.unfold` (im2col, `[N, C*kh*kw, L]`, the weight's layout) as windows of a view and one copy, whose backward
    is one `unfold_backward` kernel per axis: CUDA's im2col launches a kernel per image (24,000 in 6 steps of 200
    problems on an H200, benchmarks/RESULTS.md), and a slice per kernel offset gave every offset its own backward
    (a zero fill, a copy and an add): 5,241 aten ops instead of 3,569 (benchmarks/attack_ops.py)."""
    (kh, kw), (sh, sw), (ph, pw) = module.kernel_size, module.stride, module.padding
    padded = F.pad(x, (pw, pw, ph, ph)) if ph or pw else x
    windows = padded.unfold(2, kh, sh).unfold(3, kw, sw)  # [N, C, H', W', kh, kw]
    n, c, height, width = windows.shape[:4]
    return windows.permute(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, height * width)


def _factors(module: nn.Module, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(output gradient `[N, O, L]`, what the weight multiplies `[N, K, L]`) of one call of a layer: its weight
    gradient is their product summed over L (a convolution's positions; one for a linear layer)."""
    if isinstance(module, nn.Linear):
        return g[:, :, None], x[:, :, None]
    if isinstance(module, nn.Conv2d):
        return g.flatten(2), unfold(x, module)
    return g.flatten(2), _normalised(module, x).flatten(2)


def _weight_terms(
    module: nn.Module, a: torch.Tensor, b: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per problem, <weight gradient, target> and ‖weight gradient‖² from the factors `a` `[P, O, L]`, `b` `[P, K, L]`.

    A norm layer's gradient is the diagonal sum(a * b). A matrix layer's is a @ bᵀ (`[P, O, K]`), written out when
    that is the cheaper way; when O·K > L·(O + K), as in a ResNet's deep layers (few positions, large weights), it is
    never formed: the dot is sum(a * (target @ b)) and the squared norm sum((aᵀa) * (bᵀb)) over L x L Gram matrices
    (the "ghost norm" of Goodfellow 2015 and Li et al. 2022), which saves writing and reading ~45 MB per problem
    and iteration at width 64."""
    problems = a.shape[0]
    if isinstance(module, _NORMS):
        grad = (a * b).sum(2)
        return (grad * target).sum(1), grad.pow(2).sum(1)
    target = target.view(problems, a.shape[1], b.shape[1])
    if isinstance(module, StandardisedConv2d):  # its raw weight's gradient is a per-channel map of the product's
        grad = module.raw_gradient(torch.bmm(a, b.transpose(1, 2)))
        return (grad * target).flatten(1).sum(1), grad.pow(2).flatten(1).sum(1)
    (o, length), k = a.shape[1:], b.shape[1]
    if o * k <= length * (o + k):
        grad = torch.bmm(a, b.transpose(1, 2))
        return (grad * target).flatten(1).sum(1), grad.pow(2).flatten(1).sum(1)
    dot = (a * torch.bmm(target, b)).flatten(1).sum(1)
    gram = torch.bmm(a.transpose(1, 2), a) * torch.bmm(b.transpose(1, 2), b)
    return dot, gram.flatten(1).sum(1)


def _joined(parts: list[torch.Tensor]) -> torch.Tensor:
    return parts[0] if len(parts) == 1 else torch.cat(parts, 2)


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
            calls: dict[nn.Module, list[tuple[torch.Tensor, torch.Tensor]]] = {}
            for (module, inp, _), g in zip(seen, outputs, strict=True):
                calls.setdefault(module, []).append(_factors(module, inp, g))
            target_of = dict(zip(wanted, targets, strict=True))
            dot, square = torch.zeros_like(norm), torch.zeros_like(norm)
            for module, factors in calls.items():  # a layer called twice: its calls side by side along L
                a, b = (_joined([_problem_major(f[i], problems) for f in factors]) for i in (0, 1))
                terms = [_weight_terms(module, a, b, target_of[(owners[module], "weight")])]
                if module.bias is not None:
                    bias = a.sum(2)
                    terms.append(((bias * target_of[(owners[module], "bias")]).sum(1), bias.pow(2).sum(1)))
                for d, sq in terms:
                    dot, square = dot + d, square + sq
            rec = 1 - dot / (torch.sqrt(square) * norm + 1e-12)
            (image_grad,) = torch.autograd.grad((rec + tv_weight * prior(x)).sum(), x)
        return image_grad, rec.detach()

    return step
