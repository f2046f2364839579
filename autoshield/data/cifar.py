"""CIFAR-10 as uint8 tensors, decoded once and cached.

Everything downstream (operations, training, attack) works on whole uint8
batches, so the dataset is held as two tensors per split rather than a
`Dataset` of PIL images.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from autoshield.core.errors import AutoshieldError
from autoshield.core.files import cache_dir, shared_artifact

CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
HOW_TO_GET = (
    "pass --data-root (or set AUTOSHIELD_DATA) to a folder holding cifar-10-batches-py/ or an "
    "ImageFolder tree train/<class>/*.jpg + test/<class>/*.jpg, or add --download"
)


@dataclass(frozen=True)
class Split:
    """Images `[N, 3, H, W]` uint8 with labels `[N]` int64 and their indices in the full split."""

    images: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self) -> list[int]:
        return torch.bincount(self.labels, minlength=len(CLASSES)).tolist()

    def take(self, index: torch.Tensor | Sequence[int]) -> Split:
        """The images at `index` (positions or a mask), with their labels and dataset indices."""
        index = torch.as_tensor(index)
        return Split(self.images[index], self.labels[index], self.indices[index])


@dataclass(frozen=True)
class Cifar10:
    train: Split
    test: Split
    fingerprint: str  # identifies the exact pixels, for caches keyed by data


def _split(images: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> Split:
    images = torch.as_tensor(images)
    labels = torch.as_tensor(labels, dtype=torch.int64)
    return Split(images, labels, torch.arange(len(labels)))


def default_data_root() -> Path:
    env = os.environ.get("AUTOSHIELD_DATA")
    return Path(env) if env else Path.home() / ".cache" / "autoshield" / "data"


def _read_pickled(folder: Path) -> tuple[np.ndarray, ...]:
    from torchvision.datasets import CIFAR10

    root = folder.parent
    try:
        train = CIFAR10(str(root), train=True, download=False)
        test = CIFAR10(str(root), train=False, download=False)
    except Exception as error:  # torchvision raises RuntimeError/pickle errors for damaged batches
        raise AutoshieldError(
            f"{folder} is not a readable cifar-10-batches-py folder ({error}); {HOW_TO_GET}"
        ) from None
    as_chw = lambda d: np.ascontiguousarray(d.data.transpose(0, 3, 1, 2))  # noqa: E731
    return as_chw(train), np.asarray(train.targets), as_chw(test), np.asarray(test.targets)


def _decode_file(path: Path) -> torch.Tensor:
    from torchvision.io import ImageReadMode, decode_image, read_file

    try:
        image = decode_image(read_file(str(path)), mode=ImageReadMode.RGB)
    except RuntimeError as error:
        raise AutoshieldError(f"cannot decode image {path}: {error}") from None
    if image.shape != (3, 32, 32):
        raise AutoshieldError(f"image {path} is {tuple(image.shape[1:])}, expected 32x32")
    return image


def _read_image_folder(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    folder = root / split
    found = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if sorted(found) != sorted(CLASSES):
        raise AutoshieldError(f"{folder} must hold exactly the 10 CIFAR-10 class folders, found {found}; {HOW_TO_GET}")
    images, labels = [], []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The image decoding", DeprecationWarning)  # torchvision 0.29 notice
        for label, name in enumerate(CLASSES):
            for path in sorted((folder / name).iterdir()):
                images.append(_decode_file(path))
                labels.append(label)
    if not images:
        raise AutoshieldError(f"{folder} holds no images; {HOW_TO_GET}")
    return torch.stack(images).numpy(), np.asarray(labels)


def _source_key(root: Path) -> str:
    """Cheap identity of a data root: its path and the names, sizes and mtimes of its files."""
    h = hashlib.sha256(str(root.resolve()).encode())
    for path in sorted(root.rglob("*")):
        if path.is_file():
            stat = path.stat()
            h.update(f"{path.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _decode(root: Path, download: bool) -> tuple[np.ndarray, ...]:
    if (root / "cifar-10-batches-py").is_dir():
        return _read_pickled(root / "cifar-10-batches-py")
    if root.name == "cifar-10-batches-py" and root.is_dir():
        return _read_pickled(root)
    if (root / "train").is_dir() and (root / "test").is_dir():
        return (*_read_image_folder(root, "train"), *_read_image_folder(root, "test"))
    if download:
        from torchvision.datasets import CIFAR10

        before = set(root.iterdir())
        try:
            CIFAR10(str(root), train=True, download=True)
        except Exception as error:  # network errors come in many types
            for left in set(root.iterdir()) - before:  # a failed download leaves nothing behind
                shutil.rmtree(left) if left.is_dir() else left.unlink()
            raise AutoshieldError(f"could not download CIFAR-10 into {root}: {error}") from None
        return _read_pickled(root / "cifar-10-batches-py")
    raise AutoshieldError(f"no CIFAR-10 found at {root}; {HOW_TO_GET}")


def _read_cache(path: Path) -> tuple[np.ndarray, ...] | None:
    try:
        with np.load(path) as npz:
            return tuple(npz[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    except (OSError, ValueError, KeyError, EOFError):
        return None  # a damaged cache is rebuilt from the source


def _write_cache(arrays: tuple[np.ndarray, ...], path: Path) -> None:
    with path.open("wb") as handle:  # a file handle, so numpy does not append its own suffix
        np.savez(handle, x_train=arrays[0], y_train=arrays[1], x_test=arrays[2], y_test=arrays[3])


def load_cifar10(root: Path | str | None = None, *, download: bool = False, cache: bool = True) -> Cifar10:
    """Load CIFAR-10 from `root`, decoding JPEG/pickle files only the first time (once for all workers)."""
    root = Path(root) if root is not None else default_data_root()
    if not root.exists() and not download:
        raise AutoshieldError(f"data root {root} does not exist; {HOW_TO_GET}")
    if root.exists() and not root.is_dir():
        raise AutoshieldError(f"data root {root} is a file, not a folder; {HOW_TO_GET}")
    created = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    try:
        if cache:
            cached = cache_dir() / f"cifar10-{_source_key(root)}.npz"
            arrays, _ = shared_artifact(
                cached, load=_read_cache, build=lambda: _decode(root, download), save=_write_cache
            )
        else:
            arrays = _decode(root, download)
    except AutoshieldError:
        if created and not any(root.iterdir()):
            root.rmdir()  # the folder --download made for a download that failed
        raise
    x_train, y_train, x_test, y_test = arrays
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).data)
    return Cifar10(_split(x_train, y_train), _split(x_test, y_test), digest.hexdigest()[:16])


def stratified_subset(split: Split, *, per_class: int | None, seed: int) -> Split:
    """`per_class` images of every label drawn with `seed` (all when None), in label order."""
    if per_class is None:
        return split
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for label in range(len(CLASSES)):
        members = torch.nonzero(split.labels == label).flatten()
        order = torch.randperm(len(members), generator=generator)
        chosen.append(members[order[:per_class]].sort().values)
    keep = torch.cat(chosen)
    return split.take(keep)


def _channel_stats(device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10's per-channel mean and std as `[3,1,1]`, broadcasting over `[N,3,H,W]` and `[3,H,W]`."""
    return torch.tensor(MEAN, device=device).view(3, 1, 1), torch.tensor(STD, device=device).view(3, 1, 1)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 `[N,3,H,W]` -> float normalised with the CIFAR-10 channel statistics."""
    return standardize(images.float() / 255.0)


def standardize(pixels: torch.Tensor) -> torch.Tensor:
    """Float pixels in [0, 1] -> normalised, differentiably (the adaptive attacker's ops work on pixels)."""
    mean, std = _channel_stats(pixels.device)
    return (pixels - mean) / std


def image_box(device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """The valid pixel range [0, 1] in normalised space, per channel `[3,1,1]`: the attack's box constraint."""
    mean, std = _channel_stats(device)
    return (0 - mean) / std, (1 - mean) / std


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Normalised float -> float in [0, 1] (clamped)."""
    mean, std = _channel_stats(images.device)
    return (images * std + mean).clamp(0, 1)
