"""A content-addressed, process-safe store of attack results.

With `init` weights an attack's outcome depends only on the transformed image,
its label, the attacked weights and the attack settings (docs/design.md §1), so
results are keyed by a hash of exactly those: the grid fills the store and
every later search trial, process or machine sharing the folder reuses it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autoshield.core.files import atomic_path


def model_digest(model: nn.Module) -> str:
    """Hash of a network's parameters and buffers, and of the one setting of our networks that changes the function
    without changing any weight (GroupNorm's number of groups: `group` and `layer` share every weight at init)."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    for name, module in model.named_modules():
        if isinstance(module, nn.GroupNorm):
            h.update(f"{name}:groups={module.num_groups}".encode())
    return h.hexdigest()[:24]


def attack_key(*, image: torch.Tensor, label: int, model: str, settings: dict[str, Any]) -> str:
    h = hashlib.sha256(image.cpu().contiguous().numpy().tobytes())
    h.update(json.dumps({"label": label, "model": model, **settings}, sort_keys=True).encode())
    return h.hexdigest()


class AttackCache:
    """One small file per key; writes are atomic renames of uniquely named temporary files, so concurrent
    workers, on one machine or several sharing the folder, never see half a result."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.pt"

    def get(self, key: str) -> dict[str, torch.Tensor] | None:
        path = self._path(key)
        if not path.exists():
            return None
        try:
            return torch.load(path, weights_only=True)
        except Exception:  # any parser's error on a damaged entry (truncated, BadZipFile, ...): recomputed
            return None

    def put(self, key: str, value: dict[str, torch.Tensor]) -> None:
        with atomic_path(self._path(key)) as tmp:
            torch.save(value, tmp)
