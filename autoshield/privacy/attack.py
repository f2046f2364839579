"""Gradient inversion (Geiping et al. 2020, "Inverting Gradients") and iDLG label recovery.

A *problem* is one observed gradient and the `leak_batch` images behind it.
Many problems are solved together: one batch whose per-problem gradients come
from activations and output gradients (`unfold`, `privacy.per_sample`),
`torch.func.vmap` over a per-problem double-backward (`batched`), or a plain
loop over the same function (`sequential`). Adam is element-wise, so one optimiser over the stacked problems is
exactly independent optimisers per problem; restarts are stacked as extra
problems and the one with the lowest gradient loss is kept. With `stop_patience` a restart whose gradient loss has
plateaued leaves the stack (issue #35's CPU saving): its image is frozen and the steps run on the others alone.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn
from torch.func import grad, vmap

from autoshield.core.config import AttackConfig
from autoshield.core.errors import AutoshieldError
from autoshield.core.interrupts import checkpoint
from autoshield.core.runtime import phase, progress_bar
from autoshield.privacy import per_sample
from autoshield.privacy.plateau import Plateau
from autoshield.privacy.precision import attack_precision, convolution_precision
from autoshield.privacy.threat import Gradients, loss_fn, params_and_buffers

Box = tuple[torch.Tensor, torch.Tensor]  # lowest and highest valid pixel per channel `[3,1,1]`, normalised
# (images of the stack entries still running, their indices in the stack or None for all) -> (d objective / d images,
# gradient loss per entry)
Step = Callable[[torch.Tensor, torch.Tensor | None], tuple[torch.Tensor, torch.Tensor]]


class PreImage(Protocol):
    """The client's transformation as a policy-aware attacker models it (`privacy.adaptive`).

    The attacker then optimises the pre-image x̂ so that the gradient of `pre_image(x̂)` matches the observed one.
    What it cannot know (a signed op's per-image sign) becomes `hypotheses`, each solved as extra restarts.
    """

    hypotheses: int

    def __call__(self, images: torch.Tensor, *, index: torch.Tensor, hypothesis: int) -> torch.Tensor:
        """Normalised images `[N,3,H,W]` and which attacked image each is `[N]` -> what the client trained on."""
        ...


def recover_labels(model: nn.Module, gradients: Gradients) -> torch.Tensor:
    """iDLG: with one image per gradient, the true label's row of the last layer's weight gradient
    is the only one with a negative sum (softmax - onehot < 0 times non-negative features)."""
    names = [name for name, _ in model.named_parameters()]
    last = max(i for i, (_, p) in enumerate(model.named_parameters()) if p.ndim == 2)
    if len(gradients) != len(names):
        raise AutoshieldError(f"gradient list has {len(gradients)} tensors, the model has {len(names)} parameters")
    return gradients[last].sum(dim=-1).argmin(dim=-1)


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring pixels, per problem (all dims but the first)."""
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs().flatten(1).mean(1)
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs().flatten(1).mean(1)
    return dx + dy


def lr_factor(config: AttackConfig, iteration: int) -> float:
    """The attack's step size at `iteration`, as a fraction of `config.lr`: linear warm-up, then the schedule."""
    warm = min(1.0, (iteration + 1) / config.warmup) if config.warmup else 1.0
    if config.schedule == "step":
        return warm * 0.1 ** sum(iteration >= round(config.iterations * f) for f in (3 / 8, 5 / 8, 7 / 8))
    if config.schedule == "cosine":
        return warm * 0.5 * (1 + math.cos(math.pi * iteration / config.iterations))
    return warm


def direction(image_grad: torch.Tensor, config: AttackConfig, iteration: int) -> torch.Tensor:
    """What Adam steps on. The hard sign ignores the gradient's size; the soft sign (breaching's "modern" recipe)
    lets small components through as they are and hardens towards the sign as `s` falls to 0."""
    if config.sign == "hard":
        return image_grad.sign()
    if config.sign == "soft":
        scale = 1 - iteration / config.iterations
        return torch.tanh(image_grad * scale) / scale
    return image_grad


@dataclass(frozen=True)
class Reconstruction:
    """Reconstructed normalised images `[P*leak_batch, 3, H, W]` and per-problem statistics."""

    images: torch.Tensor
    gradient_loss: torch.Tensor  # 1 - cosine similarity at the end, per problem
    restart: torch.Tensor  # which restart was kept, per problem
    hypothesis: torch.Tensor  # which of the pre-image's hypotheses was kept, per problem (0 for the naive attack)
    failed: torch.Tensor  # bool per problem: the optimisation turned non-finite (loss is inf)
    steps: torch.Tensor  # iterations the kept restart ran, per problem: fewer than the budget where it stopped early
    seconds: float
    mode: str  # "batched" or "sequential"


def _everyone(active: torch.Tensor | None, entries: int, device: torch.device) -> torch.Tensor:
    """The stack indices a step ran on: `active`, or all `entries` when it is None."""
    return torch.arange(entries, device=device) if active is None else active


class GradientInversion:
    """The attacker: configured once, then `reconstruct(model, gradients, labels)`.

    `box` is the valid image range in the space the network reads (normalised pixels); the attacker is given
    it rather than knowing any data set's statistics.
    """

    def __init__(self, config: AttackConfig, *, box: Box) -> None:
        self.config = config
        self.box = box

    def choose_mode(self, model: nn.Module, device: torch.device) -> str:
        """`auto`: the unfold path wherever the network allows it (issue #17, benchmarks/RESULTS.md: faster than vmap
        on an H200 and, on 2 CPU cores, than vmap at width 16 and the loop at width 64); else vmap on GPUs and small
        networks, and the loop for large networks on the CPU, where vmap hurt at width 64."""
        supported = per_sample.supports(model)
        if self.config.mode == "unfold" and not supported:
            raise AutoshieldError("attack mode 'unfold' needs a network of convolutions, linear layers and norms")
        if self.config.mode != "auto":
            return self.config.mode
        if supported:
            return "unfold"
        if device.type == "cuda":
            return "batched"
        return "batched" if sum(p.numel() for p in model.parameters()) < 4_000_000 else "sequential"

    def reconstruct(
        self,
        model: nn.Module,
        gradients: Gradients,
        labels: torch.Tensor,
        *,
        image_shape: tuple[int, int, int] = (3, 32, 32),
        seeds: Sequence[int] | None = None,
        pre_image: PreImage | None = None,
        warm: torch.Tensor | None = None,
        progress: bool = False,
    ) -> Reconstruction:
        """Reconstruct the images behind each observed gradient; `labels` is `[P*leak_batch]`.

        `seeds` (one per problem) fix each problem's random start, so a result does not depend on
        which other problems share its batch. With `pre_image` the attack is adaptive: it reconstructs the image
        before the client's transformation, and every hypothesis starts from the naive attack's start. `warm`
        (normalised, `[W, hypotheses, P*leak_batch, *image_shape]`) adds W starts per hypothesis after the random
        ones, as further restarts (issue #36: the adaptive attacker starting from what it already recovered).
        """
        device = next(model.parameters()).device
        params, buffers = params_and_buffers(model)
        self._check_inputs(params, gradients, labels)
        problems = gradients[0].shape[0]
        leak = len(labels) // problems
        if leak * problems != len(labels):
            raise AutoshieldError(f"{len(labels)} labels do not match {problems} observed gradients")
        seeds = list(range(problems)) if seeds is None else list(seeds)
        hypotheses = pre_image.hypotheses if pre_image else 1
        if warm is not None and tuple(warm.shape[1:3]) != (hypotheses, len(labels)):
            raise AutoshieldError(
                f"warm starts {tuple(warm.shape)} do not match {hypotheses} hypotheses x {len(labels)}"
            )
        restarts = self.config.restarts + (0 if warm is None else len(warm))
        model.eval()
        mode = self.choose_mode(model, device)
        step_fn = self._step_fn(model, params, buffers, mode, tv_weight=0.0 if pre_image else self.config.tv_weight)
        size = self.config.batch_size
        start = time.perf_counter()
        with progress_bar(progress) as bar, convolution_precision(), attack_precision(device, self.config.precision):
            total = self.config.iterations * math.ceil(problems / size)
            task = bar.add_task("attack", total=total, status=f"{problems} problems, {mode}") if bar else None
            done = itertools.count(1)

            def tick(steps: int) -> None:
                checkpoint()
                if bar:
                    bar.advance(task, steps)
                for step in itertools.islice(done, steps):
                    if step % 50 == 0:
                        phase(f"attack iteration {step}/{total}")

            parts = [
                self._solve(
                    step_fn,
                    tuple(g[i : i + size].to(device) for g in gradients),
                    labels[i * leak : (i + size) * leak].to(device),
                    seeds[i : i + size],
                    image_shape,
                    tick,
                    pre_image=pre_image,
                    first=i,
                    warm=None if warm is None else warm[:, :, i * leak : (i + size) * leak].to(device),
                    restarts=restarts,
                )
                for i in range(0, problems, size)
            ]
        images, losses, kept, steps = (torch.cat(part) for part in zip(*parts, strict=True))
        return Reconstruction(
            images=images,
            gradient_loss=losses,
            restart=kept % restarts,
            hypothesis=kept // restarts,
            failed=~torch.isfinite(losses),
            steps=steps,
            seconds=time.perf_counter() - start,
            mode=mode,
        )

    def _solve(
        self,
        step_fn: Callable[..., tuple[torch.Tensor, torch.Tensor]],
        gradients: Gradients,
        labels: torch.Tensor,
        seeds: Sequence[int],
        image_shape: tuple[int, int, int],
        tick: Callable[[int], None],
        *,
        pre_image: PreImage | None,
        first: int,
        warm: torch.Tensor | None,
        restarts: int,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One stacked optimisation of (hypotheses x restarts x problems); returns images, loss, which
        hypothesis x restart was kept and how many iterations it ran. `first` is this chunk's first problem;
        `restarts` counts the random starts and the `warm` ones."""
        config = self.config
        device = labels.device
        problems, hypotheses = len(seeds), pre_image.hypotheses if pre_image else 1
        stacks = hypotheses * restarts
        leak = len(labels) // problems
        targets = tuple(g.repeat(stacks, *([1] * (g.ndim - 1))) for g in gradients)
        target_norm = torch.sqrt(sum(t.pow(2).flatten(1).sum(1) for t in targets))
        ys = labels.reshape(problems, leak).repeat(stacks, 1)

        running: list[tuple[torch.Tensor, tuple[torch.Tensor, ...]]] = []  # the last (active, its ys, targets, norm)

        def naive(images: torch.Tensor, active: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
            if active is None:
                return step_fn(images, ys, targets, target_norm)
            if not running or running[0][0] is not active:  # slice the stacked targets once per change, not per step
                running[:] = [(active, (ys[active], tuple(t[active] for t in targets), target_norm[active]))]
            return step_fn(images, *running[0][1])

        step = naive if pre_image is None else self._adaptive(naive, pre_image, problems, first, hypotheses, restarts)
        random = self.starts(seeds, leak=leak, shape=image_shape).to(device)
        x = torch.cat(  # hypothesis-major, then restart-major: the random starts, then the warm ones
            [
                random if warm is None else torch.cat([random, warm[:, h].reshape(-1, leak, *image_shape)])
                for h in range(hypotheses)
            ]
        )
        x.requires_grad_(True)
        low, high = (bound.to(device) for bound in self.box)
        optimizer = torch.optim.Adam([x], lr=config.lr)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: lr_factor(config, i))
        plateau = (
            Plateau(len(x), patience=config.stop_patience, tolerance=config.stop_tolerance, device=device)
            if config.stop_patience
            else None
        )
        active: torch.Tensor | None = None  # every entry runs until the plateau stops one
        kept = x.detach()  # where the stopped entries stay
        for iteration in range(config.iterations):
            if active is None:
                image_grad, loss = step(x.detach(), None)
            else:  # the stopped entries get no gradient and take no step
                image_grad = torch.zeros_like(x)
                image_grad[active], loss = step(x.detach()[active], active)
            x.grad = direction(image_grad.float(), config, iteration)
            optimizer.step()
            scheduler.step()
            if config.boxed:
                with torch.no_grad():
                    x.data = torch.maximum(torch.minimum(x.data, high), low)
            if plateau is not None and active is not None:  # Adam's momentum moves an entry with no gradient: back
                frozen = ~plateau.running
                x.data[frozen] = kept[frozen]
            tick(1)
            if plateau is not None and plateau.update(iteration, _everyone(active, len(x), device), loss):
                if not plateau.running.any():
                    tick(config.iterations - iteration - 1)
                    break
                active, kept = plateau.running.nonzero().flatten(), x.detach().clone()
        ran = torch.full((len(x),), config.iterations, device=device) if plateau is None else plateau.steps
        if plateau is not None:
            phase(f"attack early stop: {int((~plateau.running).sum())} of {len(x)} restarts stopped early")
        _, final = step(x.detach(), None)
        final = final.float()
        finite = torch.isfinite(final) & torch.isfinite(x.detach()).flatten(1).all(1)
        final = torch.where(finite, final, torch.full_like(final, math.inf)).reshape(stacks, problems)
        best = final.argmin(0)
        chosen = x.detach().reshape(stacks, problems, leak, *image_shape)[best, torch.arange(problems)]
        steps = ran.reshape(stacks, problems)[best, torch.arange(problems)]
        return chosen.reshape(problems * leak, *image_shape).cpu(), final.min(0).values.cpu(), best.cpu(), steps.cpu()

    def _adaptive(
        self, naive: Step, pre_image: PreImage, problems: int, first: int, hypotheses: int, restarts: int
    ) -> Step:
        """The naive step on `pre_image(x̂)`, chained back to x̂ by autograd, with the image prior (TV) on x̂.

        The transformation runs once per step on the whole stack, outside the per-problem double backward, so the
        ops need no vmap support and cost one batched forward and backward."""
        tv_weight = self.config.tv_weight

        def step(images: torch.Tensor, active: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
            stacked = images.shape  # [entries, leak, 3, H, W]; all of them: hypotheses x restarts x problems
            leak = stacked[1]
            entries = _everyone(active, hypotheses * restarts * problems, images.device)  # sorted
            owner = ((first + entries % problems) * leak)[:, None] + torch.arange(leak, device=images.device)
            counts = torch.bincount(entries // (restarts * problems), minlength=hypotheses).tolist()
            with torch.enable_grad():
                pre = images.detach().requires_grad_(True)
                seen = torch.cat(
                    [
                        pre_image(part.flatten(0, 1), index=who.flatten(), hypothesis=h)
                        for h, (part, who) in enumerate(zip(pre.split(counts), owner.split(counts), strict=True))
                        if len(part)
                    ]
                ).reshape(stacked)
                prior = tv_weight * total_variation(pre).sum()
            seen_grad, loss = naive(seen.detach(), active)
            (image_grad,) = torch.autograd.grad([seen, prior], [pre], [seen_grad, torch.ones_like(prior)])
            return image_grad, loss

        return step

    def _check_inputs(self, params: dict[str, torch.Tensor], gradients: Gradients, labels: torch.Tensor) -> None:
        if len(labels) == 0:
            raise AutoshieldError("no images to attack")
        if len(gradients) != len(params):
            raise AutoshieldError(f"gradient list has {len(gradients)} tensors, the model has {len(params)} parameters")
        for (name, p), g in zip(params.items(), gradients, strict=True):
            if tuple(g.shape[1:]) != tuple(p.shape):
                raise AutoshieldError(f"gradient for {name} has shape {tuple(g.shape[1:])}, expected {tuple(p.shape)}")
            if not torch.isfinite(g).all():
                raise AutoshieldError(f"observed gradient for {name} is not finite")

    def starts(self, seeds: Sequence[int], *, leak: int, shape: tuple[int, int, int] = (3, 32, 32)) -> torch.Tensor:
        """The random starts `[restarts * problems, leak, *shape]` of problems seeded `seeds` (restart-major).

        A start depends only on its problem's seed and the restart, never on the other problems; they are also
        information-free images, which is what the chance floor judges."""
        starts = []
        for seed in [s + r * 1_000_003 for r in range(self.config.restarts) for s in seeds]:
            generator = torch.Generator().manual_seed(seed)
            if self.config.init == "randn":
                starts.append(torch.randn((leak, *shape), generator=generator))
            elif self.config.init == "rand":
                starts.append(torch.rand((leak, *shape), generator=generator) * 2 - 1)
            else:
                starts.append(torch.zeros((leak, *shape)))
        return torch.stack(starts)

    def _step_fn(
        self,
        model: nn.Module,
        params: dict[str, torch.Tensor],
        buffers: dict[str, torch.Tensor],
        mode: str,
        *,
        tv_weight: float,
    ) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
        """(images, labels, targets, target_norm) -> (d objective / d images, gradient loss) per problem."""
        if mode == "unfold":
            return per_sample.step_fn(model, tv_weight=tv_weight, prior=total_variation)
        loss = loss_fn(model, buffers)
        names = list(params)

        def objective(
            x: torch.Tensor, y: torch.Tensor, target: Gradients, norm: torch.Tensor
        ) -> tuple[torch.Tensor, torch.Tensor]:
            g = grad(loss)(params, x, y)
            dot = sum((g[n] * t).sum() for n, t in zip(names, target, strict=True))
            g_norm = torch.sqrt(sum(g[n].pow(2).sum() for n in names))
            rec = 1 - dot / (g_norm * norm + 1e-12)
            return rec + tv_weight * total_variation(x[None])[0], rec.detach()

        per_problem = grad(objective, has_aux=True)
        if mode == "batched":
            return vmap(per_problem)

        def sequential(x: torch.Tensor, y: torch.Tensor, targets: Gradients, norm: torch.Tensor):
            results = [per_problem(x[i], y[i], tuple(t[i] for t in targets), norm[i]) for i in range(len(x))]
            return torch.stack([r[0] for r in results]), torch.stack([r[1] for r in results])

        return sequential
