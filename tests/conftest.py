"""Shared fixtures: a small synthetic CIFAR-10 written to disk as a real ImageFolder tree."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torchvision.io import write_png

from autoshield.data.cifar import CLASSES, Cifar10, load_cifar10

# the search space most tests attack: Identity, Rotate:9, Invert
THREE_CELLS = 'name = "three"\nops = ["Identity", "Rotate", "Invert"]\nmagnitudes = [9]\n'


def synthetic_images(per_class: int, *, seed: int, noise: float = 25.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Learnable 32x32 images: each label has its own colour and stripe frequency, plus noise."""
    generator = torch.Generator().manual_seed(seed)
    images, labels = [], []
    coords = torch.arange(32).float()
    for label in range(len(CLASSES)):
        colour = torch.tensor([(label * 37) % 256, (label * 91 + 60) % 256, (label * 53 + 120) % 256]).float()
        stripes = torch.sin(coords * (label + 1) * 0.35)[None, :, None] * 60
        for _ in range(per_class):
            jitter = torch.randn(3, 32, 32, generator=generator) * noise
            image = colour[:, None, None] * 0.7 + stripes + jitter + 40
            images.append(image.clamp(0, 255).to(torch.uint8))
            labels.append(label)
    return torch.stack(images), torch.tensor(labels)


def write_image_folder(root: Path, *, train_per_class: int = 30, test_per_class: int = 10, seed: int = 0) -> Path:
    for split, per_class, split_seed in (("train", train_per_class, seed), ("test", test_per_class, seed + 1)):
        images, labels = synthetic_images(per_class, seed=split_seed)
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            folder = root / split / CLASSES[int(label)]
            folder.mkdir(parents=True, exist_ok=True)
            write_png(image, str(folder / f"{i:04d}.png"))
    return root


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read or write the user's ~/.cache from tests."""
    monkeypatch.setenv("AUTOSHIELD_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("cifar"))


@pytest.fixture
def data(data_root: Path) -> Cifar10:
    return load_cifar10(data_root)


@pytest.fixture(scope="session")
def worst_grid(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """A smoke grid of Identity, Rotate:9 and Invert scored by all four attackers (`--attacker worst`), built once
    for the tests that only read it; the SQLite file's path."""
    from autoshield.cli import main

    folder = tmp_path_factory.mktemp("worst")
    space = folder / "three.toml"
    space.write_text(THREE_CELLS)
    db = folder / "s.db"
    args = ["grid", "--profile", "smoke", "--space", str(space), "--attacker", "worst", "--utility", "recognizability"]
    with pytest.MonkeyPatch.context() as patch:  # session fixtures start before the autouse cache isolation
        patch.setenv("AUTOSHIELD_CACHE", str(folder / "cache"))
        assert main([*args, "--storage", f"sqlite:///{db}", "--data-root", str(data_root)]) == 0
    return db


@pytest.fixture
def space(tmp_path: Path) -> Path:
    """A three-cell search space: Identity, Rotate:9, Invert."""
    path = tmp_path / "three.toml"
    path.write_text(THREE_CELLS)
    return path


@pytest.fixture
def fast_heartbeat(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stale trials are detected after 3 s instead of 30 s."""
    from autoshield.study import heartbeat

    monkeypatch.setattr(heartbeat, "HEARTBEAT_SECONDS", 1)
    monkeypatch.setattr(heartbeat, "GRACE_SECONDS", 3)


def kill_when(command: list[str], ready: Callable[[], bool], timeout: float = 300) -> None:
    """Start `command`, SIGKILL it as soon as `ready()` is true (it must still be running then)."""
    process = subprocess.Popen(command, env=os.environ.copy(), stderr=subprocess.PIPE, text=True)
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None and not ready():
        time.sleep(0.3)
    alive = process.poll() is None
    if alive:
        os.kill(process.pid, signal.SIGKILL)
    _, err = process.communicate()
    assert alive, f"the worker ended before it could be killed: {err[-500:]}"
