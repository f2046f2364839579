"""What one attack step costs at `quick`'s width by batch (25, 100 and 400 stacked problems: a trial's 25 victims
with 1 or 4 restarts, and what `table build` can stack), in fp32 and under CPU bf16 autocast: issue #35's
image-iterations per second on these cores, and a first look at bf16 before its non-inferiority run on real
victims.

Random images stand in for victims: the cost of a step does not depend on what they show, and the loss printed
beside each time only says the two precisions optimise the same objective.

    python benchmarks/attack_step_cost.py [--problems 25 100 400] [--steps 5]
"""

from __future__ import annotations

import argparse
import time

import torch
from common import machine

from autoshield.learn.models import build_model
from autoshield.privacy import per_sample
from autoshield.privacy.attack import total_variation
from autoshield.privacy.threat import leak_gradients


def timed(problems: int, *, steps: int, bf16: bool) -> tuple[float, float]:
    """Seconds per step on `problems` stacked problems and the mean gradient loss of the last one."""
    torch.manual_seed(0)
    model = build_model(width=16, norm="none", seed=0).eval()
    truth, labels = torch.randn(problems, 3, 32, 32), torch.randint(0, 10, (problems,))
    targets = tuple(leak_gradients(model, truth, labels))
    norm = torch.sqrt(sum(t.pow(2).flatten(1).sum(1) for t in targets))
    step = per_sample.step_fn(model, tv_weight=1e-4, prior=total_variation)
    start = torch.randn(problems, 1, 3, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        step(start, labels[:, None], targets, norm)  # warm-up
        began = time.perf_counter()
        for _ in range(steps):
            _, loss = step(start, labels[:, None], targets, norm)
    return (time.perf_counter() - began) / steps, float(loss.float().mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--problems", type=int, nargs="+", default=[25, 100, 400])
    p.add_argument("--steps", type=int, default=5)
    args = p.parse_args()
    print(f"machine: {machine()}; width 16, {args.steps} timed steps each", flush=True)
    for problems in args.problems:
        for name in ("fp32", "bf16"):
            seconds, loss = timed(problems, steps=args.steps, bf16=name == "bf16")
            print(
                f"{problems} problems, {name}: {1000 * seconds:.0f} ms per step, {problems / seconds:.0f} "
                f"image-iterations per second, mean gradient loss {loss:.5f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
