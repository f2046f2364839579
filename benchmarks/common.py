"""Shared helpers for the benchmark scripts (not part of the package or the tests)."""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

from autoshield.core.config import AttackConfig
from autoshield.data.cifar import image_box
from autoshield.privacy.attack import GradientInversion
from autoshield.privacy.threat import leak_gradients

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data-root", type=Path, default=DEFAULT_DATA, help="CIFAR-10 folder")
    return p


def machine() -> str:
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"{torch.get_num_threads()} CPU threads"
    return f"{platform.node()} ({device}, torch {torch.__version__})"


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    """Fastest wall time of `repeats` calls: the least disturbed by other work on the machine."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def sync(device: torch.device) -> None:
    """Wait for the device, so that a host clock read after it times the work queued before it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def profile_attack(
    model: torch.nn.Module, config: AttackConfig, x: torch.Tensor, y: torch.Tensor, device: torch.device
) -> torch.profiler.profile:
    """Where an attack iteration's time goes: torch.profiler over 5 iterations of `config`, after 2 of warm-up."""
    from torch.profiler import ProfilerActivity, profile

    gradients = leak_gradients(model, x, y)
    GradientInversion(dataclasses.replace(config, iterations=2), box=image_box()).reconstruct(model, gradients, y)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities, record_shapes=True) as prof:
        GradientInversion(dataclasses.replace(config, iterations=5), box=image_box()).reconstruct(model, gradients, y)
        sync(device)
    return prof


def profile_key(device: torch.device) -> str:
    return "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
