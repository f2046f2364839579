"""One attack step at `quick`'s width on 100 stacked problems (25 victims x 4 restarts), in fp32 and under CPU
bf16 autocast: the first look at issue #35's bf16 speed-up, before its non-inferiority run on real victims.

Random images stand in for victims: the cost of a step does not depend on what they show, and the loss printed
beside each time only says the two precisions optimise the same objective.

    python benchmarks/attack_step_precision.py
"""

from __future__ import annotations

import time

import torch
from common import machine

from autoshield.learn.models import build_model
from autoshield.privacy import per_sample
from autoshield.privacy.attack import total_variation
from autoshield.privacy.threat import leak_gradients

PROBLEMS, STEPS = 100, 5


def main() -> None:
    torch.manual_seed(0)
    model = build_model(width=16, norm="none", seed=0).eval()
    truth, labels = torch.randn(PROBLEMS, 3, 32, 32), torch.randint(0, 10, (PROBLEMS,))
    targets = tuple(leak_gradients(model, truth, labels))
    norm = torch.sqrt(sum(t.pow(2).flatten(1).sum(1) for t in targets))
    step = per_sample.step_fn(model, tv_weight=1e-4, prior=total_variation)
    start = torch.randn(PROBLEMS, 1, 3, 32, 32)
    print(f"machine: {machine()}; {PROBLEMS} problems at width 16", flush=True)
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            step(start, labels[:, None], targets, norm)  # warm-up
            began = time.perf_counter()
            for _ in range(STEPS):
                _, loss = step(start, labels[:, None], targets, norm)
            seconds = (time.perf_counter() - began) / STEPS
        print(
            f"{name}: {1000 * seconds:.0f} ms per step ({1000 * seconds / PROBLEMS:.2f} ms per problem-iteration), "
            f"mean gradient loss {loss.float().mean():.5f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
