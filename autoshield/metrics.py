"""Privacy metrics: image similarity, intervals for small samples, the reference classifier.

Attack accuracy asks a fixed *reference classifier* (ResNet-18 trained once
on clean CIFAR-10) whether it recognises a reconstruction; it is trained once
per (data, reference settings) and cached on disk.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass

import torch
from scipy import stats
from torch import nn
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from autoshield.config import Profile
from autoshield.data import Cifar10, cache_dir, stratified_subset
from autoshield.models import build_model
from autoshield.train import Accuracy, evaluate, fit


def psnr(images: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of float images in [0, 1]."""
    return peak_signal_noise_ratio(images, references, data_range=1.0, reduction="none", dim=(1, 2, 3))


def ssim(images: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM of float images in [0, 1]."""
    return structural_similarity_index_measure(images, references, data_range=1.0, reduction="none")


@dataclass(frozen=True)
class Estimate:
    """A mean with a 95 % interval (Wilson for proportions, Student's t for means); NaN when n = 0."""

    mean: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.3g} [{self.low:.3g}, {self.high:.3g}]"


def proportion(successes: torch.Tensor) -> Estimate:
    n, k = len(successes), int(successes.sum())
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    interval = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return Estimate(k / n, float(interval.low), float(interval.high), n)


def mean_interval(values: torch.Tensor) -> Estimate:
    values = values.double()
    n = len(values)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    mean = float(values.mean())
    if n == 1:
        return Estimate(mean, math.nan, math.nan, 1)
    half = float(stats.t.ppf(0.975, n - 1) * values.std() / math.sqrt(n))
    return Estimate(mean, mean - half, mean + half, n)


@dataclass(frozen=True)
class Reference:
    model: nn.Module
    accuracy: Accuracy  # clean test accuracy
    trained_now: bool


def reference_classifier(data: Cifar10, profile: Profile, *, device: torch.device, progress: bool = False) -> Reference:
    """The clean ResNet-18 that judges reconstructions, trained once (on all of `data.train` unless the
    profile limits it) and cached."""
    settings = {"width": profile.reference_width, "seed": profile.seed, "train": asdict(profile.reference)}
    if profile.reference_train_per_class is not None:  # absent when None, so existing caches stay valid
        settings["train_per_class"] = profile.reference_train_per_class
    train = stratified_subset(data.train, per_class=profile.reference_train_per_class, seed=profile.seed)
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    path = cache_dir() / "reference" / f"resnet18-{data.fingerprint}-{key}.pt"
    model = build_model(width=profile.reference_width, seed=profile.seed)
    if path.exists():
        saved = torch.load(path, weights_only=True, map_location="cpu")
        model.load_state_dict(saved["state_dict"])
        return Reference(model.to(device).eval(), Accuracy(saved["overall"], tuple(saved["per_label"])), False)
    fit(
        model,
        train.images,
        train.labels,
        config=profile.reference,
        seed=profile.seed,
        device=device,
        progress=progress,
        description="reference classifier",
    )
    accuracy = evaluate(model, data.test, batch_size=profile.reference.eval_batch_size, device=device)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "overall": accuracy.overall, "per_label": list(accuracy.per_label)}, tmp)
    tmp.replace(path)
    return Reference(model.eval(), accuracy, True)
