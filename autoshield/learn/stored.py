"""A classifier trained once and kept on disk with its clean accuracy (the judge, DP-SGD's non-private twin).

Workers that start together on an empty cache wait while the first one trains it
(`core.files.shared_artifact`), so it is never trained twice; a damaged file is trained again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autoshield.core.files import shared_artifact
from autoshield.learn.train import Accuracy


def read_stored(path: Path) -> dict[str, Any] | None:
    """A stored network's file (`shared_artifact`'s `load`): None when damaged, so that it is trained again."""
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except (OSError, RuntimeError, EOFError):
        return None  # a damaged file is trained again


def stored_form(state_dict: dict[str, torch.Tensor], accuracy: Accuracy) -> dict[str, Any]:
    """What the file of a stored classifier holds: its weights on the CPU and its clean accuracy."""
    state = {k: v.cpu() for k, v in state_dict.items()}
    return {"state_dict": state, "overall": accuracy.overall, "per_label": list(accuracy.per_label)}


def stored_classifier(
    path: Path,
    *,
    train: Callable[[], tuple[nn.Module, Accuracy]],
    make: Callable[[], nn.Module],
    device: torch.device,
) -> tuple[nn.Module, Accuracy, bool]:
    """The classifier at `path`, or `train()`'s, saved there first; `make()` builds the empty network its weights
    load into. Returns the model (in eval mode on `device`), its accuracy and whether it was trained now."""

    def build() -> dict[str, Any]:
        model, accuracy = train()
        return stored_form(model.state_dict(), accuracy)

    saved, trained_now = shared_artifact(path, load=read_stored, build=build, save=torch.save)
    model = make()
    model.load_state_dict(saved["state_dict"])
    return model.to(device).eval(), Accuracy(saved["overall"], tuple(saved["per_label"])), trained_now
