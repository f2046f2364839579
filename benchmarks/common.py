"""Shared helpers for the benchmark scripts (not part of the package or the tests)."""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import torch

from autoshield.core.config import AttackConfig
from autoshield.core.kernels import chosen_kernels, pin_kernels
from autoshield.data.cifar import image_box
from autoshield.privacy.attack import GradientInversion
from autoshield.privacy.threat import leak_gradients

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"


def parser(description: str) -> argparse.ArgumentParser:
    """The script's arguments; first its kernels ($AUTOSHIELD_KERNELS), as the CLI applies them, before any tensor."""
    pin_kernels()
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data-root", type=Path, default=DEFAULT_DATA, help="CIFAR-10 folder")
    return p


def machine() -> str:
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"{torch.get_num_threads()} CPU threads"
    return f"{platform.node()} ({device}, {cpu()}, torch {torch.__version__})"


def cpu() -> str:
    """The processor and the kernels torch picks for it: the same attack from the same start ends bit-identical
    on one machine but up to 5 dB apart on another (RESULTS.md, 2026-12-03), so a row names both."""
    fields = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or "unknown CPU"
    if "cpu family" in fields:
        name += f" family {fields['cpu family']} model {fields.get('model', '?')}"
    kernels = "portable " if chosen_kernels() == "portable" else ""
    return f"{name}, {kernels}{torch.backends.cpu.get_cpu_capability()}"


def logged() -> AbstractContextManager[object]:
    """Long phases as timestamped lines where no bar is drawn (a benchmark run in the background into a log file,
    where rich prints a bar only when it ends), as the CLI does: an hours-long run's log says how far it got."""
    from autoshield.cli.common import console, log_phases
    from autoshield.core.runtime import phases

    return nullcontext() if console.is_terminal else phases(log_phases())


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


def commit() -> str:
    """The checked-out commit, marked `+dirty` when the tree has uncommitted changes: a row names its code."""
    import subprocess

    git = ["git", "-C", str(Path(__file__).resolve().parents[1])]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "diff", "--quiet", "HEAD", "--", "autoshield"], capture_output=True).returncode
    return f"{head}+dirty" if dirty else head


def stamp() -> dict[str, str]:
    """Where a row comes from: the UTC time, the commit and the machine."""
    return {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": commit(), "machine": machine()}


def read_rows(path: Path) -> list[dict[str, str]]:
    """A benchmark's CSV so far ([] before its first row): what a resumed run skips."""
    import csv

    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def append_rows(path: Path, rows: list[dict[str, object]]) -> None:
    """Append rows to a CSV, with a header when the file is new, and flush: an interrupted run loses nothing
    written, and the file is what a later session on another machine resumes from."""
    import csv

    if not rows:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    if not new:
        with path.open(newline="") as f:
            header = next(csv.reader(f), [])
        if header != list(rows[0]):
            raise SystemExit(f"{path} has the columns {header}, not {list(rows[0])}: another version wrote it")
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        if new:
            writer.writeheader()
        writer.writerows(rows)


def victim_rows(outcomes: object, **head: object) -> list[dict[str, object]]:
    """One row per attacked victim of an `Outcomes`: the verdicts behind an attack figure, for paired tests."""
    from autoshield.data.cifar import CLASSES

    def number(value: float) -> str:
        return "" if value != value else f"{value:.3f}"  # NaN (a failed attack) stays empty

    o = outcomes
    return [
        {
            **head,
            "slot": o.slots[i],
            "index": o.victims[i],
            "label": CLASSES[o.labels[i]],
            "recognised": int(o.recognised[i]),
            "judged": CLASSES[o.predicted[i]] if o.predicted[i] >= 0 else "failed",
            "p_true": number(o.true_probability[i]),
            "floor": int(o.floor[i]),
            "psnr": number(o.psnr_original[i]),
            "ssim": number(o.ssim_original[i]),
            "rank": o.rank[i] if o.rank else "",
            "failed": int(o.failed[i]),
        }
        for i in range(len(o.victims))
    ]
