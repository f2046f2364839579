from __future__ import annotations

import pickle

import pytest
import torch
import torchvision.datasets.cifar

from autoshield.core.errors import AutoshieldError
from autoshield.data.cifar import CLASSES, load_cifar10, stratified_subset

from .conftest import synthetic_images


def test_image_folder_loads_and_caches(data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOSHIELD_CACHE", str(tmp_path / "cache"))
    first = load_cifar10(data_root)
    assert first.train.images.shape == (300, 3, 32, 32) and first.train.images.dtype == torch.uint8
    assert first.train.counts() == [30] * 10 and first.test.counts() == [10] * 10
    assert list((tmp_path / "cache").glob("cifar10-*.npz"))
    again = load_cifar10(data_root)
    assert torch.equal(again.train.images, first.train.images) and again.fingerprint == first.fingerprint
    expected, _ = synthetic_images(30, seed=0)
    assert torch.equal(first.train.images, expected)


def test_pickled_batches_folder(tmp_path, monkeypatch):
    images, labels = synthetic_images(2, seed=0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batch = {"data": images.reshape(len(images), -1).numpy(), "labels": labels.tolist()}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": list(CLASSES)}))
    # torchvision checks the official files' md5 sums, so unofficial batches give a clear error ...
    with pytest.raises(AutoshieldError, match="not a readable cifar-10-batches-py"):
        load_cifar10(tmp_path)
    # ... and with the check passed, the pickled format decodes to the same pixels.
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args: True)
    loaded = load_cifar10(tmp_path)
    assert torch.equal(loaded.train.images, images.repeat(5, 1, 1, 1))  # five training batches
    assert torch.equal(loaded.test.images, images) and torch.equal(loaded.test.labels, labels)


def test_stratified_subset_is_seeded_and_balanced(data):
    a = stratified_subset(data.train, per_class=5, seed=1)
    b = stratified_subset(data.train, per_class=5, seed=1)
    c = stratified_subset(data.train, per_class=5, seed=2)
    assert a.counts() == [5] * 10
    assert torch.equal(a.indices, b.indices) and not torch.equal(a.indices, c.indices)
    assert torch.equal(a.images, data.train.images[a.indices])


def test_missing_and_broken_roots(tmp_path):
    with pytest.raises(AutoshieldError, match="does not exist; pass --data-root"):
        load_cifar10(tmp_path / "nowhere")
    with pytest.raises(AutoshieldError, match="no CIFAR-10 found"):
        load_cifar10(tmp_path)
    (tmp_path / "train" / "cat").mkdir(parents=True)
    (tmp_path / "test").mkdir()
    with pytest.raises(AutoshieldError, match="exactly the 10 CIFAR-10 class folders"):
        load_cifar10(tmp_path)
    for name in CLASSES:
        for split in ("train", "test"):
            (tmp_path / split / name).mkdir(parents=True, exist_ok=True)
    (tmp_path / "train" / "cat" / "0.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(AutoshieldError, match="cannot decode image"):
        load_cifar10(tmp_path)
