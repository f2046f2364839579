"""The victim pack carries a profile's held-out pool exactly and nothing else (issue #33's attacks on a GPU)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from autoshield.core.config import load_profile
from autoshield.data.cifar import load_cifar10
from autoshield.data.victims import victim_pool

ROOT = Path(__file__).resolve().parent.parent


def _pack(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(ROOT / "benchmarks" / "victim_pack.py"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)


def test_the_pack_draws_the_same_victims_and_blanks_the_rest(tmp_path: Path, data_root: Path) -> None:
    """Unpacked, the pack gives the same labels and indices, the pool's pixels exactly (so attack-cache keys
    match), and a blank for every image outside the pool."""
    pack, folder = tmp_path / "victims.pkl", tmp_path / "victims"
    printed = _pack("--data-root", str(data_root), "--profile", "smoke", "--out", str(pack)).stdout
    _pack("--unpack", str(pack), "--into", str(folder))

    original, packed = load_cifar10(data_root), load_cifar10(folder)
    assert torch.equal(original.train.labels, packed.train.labels)
    assert torch.equal(original.test.labels, packed.test.labels)
    pool = victim_pool(load_profile("smoke"))
    assert torch.equal(pool.slots(original.train), pool.slots(packed.train))
    drawn = [pool.draw(data.train, start=0, count=pool.per_label) for data in (original, packed)]
    assert torch.equal(drawn[0].images, drawn[1].images) and torch.equal(drawn[0].indices, drawn[1].indices)
    outside = pool.outside(packed.train)
    assert len(outside) > 0 and not outside.images.any() and not packed.test.images.any()
    assert _pack("--data-root", str(folder), "--profile", "smoke").stdout == printed.splitlines()[0] + "\n"
