"""What one victim's attack costs on this machine, from a short timed probe of the profile's attack.

A plan in victims is only useful with its price in hours; the price depends on the machine, the network and the
attack's settings, so it is measured here rather than quoted from a table (issue #34).
"""

from __future__ import annotations

import dataclasses
import time

import torch

from autoshield.core.config import Profile
from autoshield.data.cifar import image_box, normalize
from autoshield.learn.models import build_model
from autoshield.privacy.attack import GradientInversion
from autoshield.privacy.threat import leak_gradients

WARM_UP = 2  # iterations left out of the timing: the first builds kernels and caches


def attack_seconds_per_victim(profile: Profile, *, device: torch.device, iterations: int = 10) -> float:
    """Seconds one victim of the profile's attack takes at its full budget, extrapolated from `iterations` timed
    iterations on one batch of random images (the cost does not depend on what the images show). Where
    `attack.stop_patience` ends restarts early this is an upper bound: how early depends on the victims."""
    config = profile.attack
    count = config.batch_size * config.leak_batch
    generator = torch.Generator().manual_seed(profile.seed)
    images = normalize(torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator)).to(device)
    labels = torch.randint(0, 10, (count,), generator=generator).to(device)
    model = build_model(width=profile.width, norm=profile.norm, seed=profile.seed).to(device).eval()
    gradients = leak_gradients(model, images, labels, leak_batch=config.leak_batch)

    def run(steps: int) -> float:
        inversion = GradientInversion(
            dataclasses.replace(config, iterations=steps, restarts=1, warmup=0), box=image_box(device)
        )
        start = time.perf_counter()
        inversion.reconstruct(model, gradients, labels)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    run(WARM_UP)
    per_iteration = run(iterations) / iterations / config.batch_size
    return per_iteration * config.iterations * config.restarts
