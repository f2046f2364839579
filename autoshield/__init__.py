"""autoshield: per-label augmentation policies against gradient inversion, compared with DP-SGD."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autoshield.data.policy import PolicyTransform

__version__ = "0.1.0"


def load_policy(path: str | Path) -> PolicyTransform:
    """A found defence as a `torchvision.transforms.v2` transform for `(image, label)` samples.

    The import is lazy so that `import autoshield` stays cheap.
    """
    from autoshield.data.policy import PolicyTransform, load_policy_file

    return PolicyTransform(load_policy_file(path))
