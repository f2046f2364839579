"""The judge: a clean ResNet-18 whose verdict on a reconstruction is the attack accuracy.

It is trained once per (data, reference settings) and cached (`learn.stored`), so it
is never trained twice on one machine. A study scores with the judge stored in it
(`study.judges`); `install_judge` makes one brought from elsewhere this machine's.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autoshield.core.config import Profile
from autoshield.core.files import cache_dir, replace_artifact
from autoshield.core.kernels import chosen_kernels
from autoshield.data.cifar import Cifar10, Split, stratified_subset
from autoshield.data.victims import victim_pool
from autoshield.learn.models import build_model
from autoshield.learn.stored import stored_classifier, stored_form
from autoshield.learn.train import Accuracy, evaluate, fit
from autoshield.privacy.cache import model_digest
from autoshield.privacy.judge_file import DIGEST_LENGTH, JudgeFile, JudgeIdentity, check_fits, judge_file


@dataclass(frozen=True)
class Reference:
    model: nn.Module
    accuracy: Accuracy  # clean test accuracy
    trained_now: bool
    digest: str  # SHA-256 of its weights, the name a study and every attack record give it

    @classmethod
    def of(cls, judge: JudgeFile, *, profile: Profile, device: torch.device) -> Reference:
        return cls(judge.model(seed=profile.seed, device=device), judge.accuracy, False, judge.digest)


def judge_training_split(data: Cifar10, profile: Profile, *, members: bool = False) -> Split:
    """What the judge learns from: the training split without the victim pool (with it when `members`, which
    exists only to measure how much membership inflates attack accuracy), limited as the profile says."""
    train = data.train if members else victim_pool(profile).outside(data.train)
    return stratified_subset(train, per_class=profile.reference_train_per_class, seed=profile.seed)


def reference_path(data: Cifar10, profile: Profile, *, members: bool = False) -> Path:
    """Where this machine keeps the judge of (data, reference settings). The key names the victim pool, so a judge
    that saw the victims is never mistaken for one that did not (with `members`, the key is the one of versions
    before the pool existed), and portable kernels, which train another judge."""
    settings: dict[str, Any] = {
        "width": profile.reference_width,
        "seed": profile.seed,
        "train": asdict(profile.reference),
    }
    if profile.reference_train_per_class is not None:  # absent when None, so existing caches stay valid
        settings["train_per_class"] = profile.reference_train_per_class
    if not members:
        pool = victim_pool(profile)
        settings["victim_pool"] = {"per_label": pool.per_label, "seed": pool.seed}
    if chosen_kernels() == "portable":  # another judge than native kernels train (`core.kernels`)
        settings["kernels"] = "portable"
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir() / "reference" / f"resnet18-{data.fingerprint}-{key}.pt"


def reference_classifier(
    data: Cifar10, profile: Profile, *, device: torch.device, members: bool = False, progress: bool = False
) -> Reference:
    """This machine's clean ResNet-18 that judges reconstructions, trained once on `judge_training_split` and
    cached at `reference_path`."""

    def make() -> nn.Module:
        return build_model(width=profile.reference_width, seed=profile.seed)

    def train() -> tuple[nn.Module, Accuracy]:
        subset = judge_training_split(data, profile, members=members)
        model = make()
        fit(
            model,
            subset.images,
            subset.labels,
            config=profile.reference,
            seed=profile.seed,
            device=device,
            progress=progress,
            description="reference classifier",
        )
        return model, evaluate(model, data.test, batch_size=profile.reference.eval_batch_size, device=device)

    path = reference_path(data, profile, members=members)
    model, accuracy, trained_now = stored_classifier(path, train=train, make=make, device=device)
    return Reference(model, accuracy, trained_now, model_digest(model, length=DIGEST_LENGTH))


def local_judge(data: Cifar10, profile: Profile, *, device: torch.device, progress: bool = False) -> JudgeFile:
    """This machine's judge (trained now if it has none), in the form a study stores and a file carries."""
    reference = reference_classifier(data, profile, device=device, progress=progress)
    return judge_file(model=reference.model, accuracy=reference.accuracy, identity=JudgeIdentity.of(data, profile))


def install_judge(judge: JudgeFile, *, data: Cifar10, profile: Profile, source: str) -> Path:
    """Make `judge` this machine's judge for `profile` (what `attack` and new studies then use); refused in one
    line unless it fits the profile's width, data and victim pool."""
    check_fits(judge, JudgeIdentity.of(data, profile), source=source)
    path = reference_path(data, profile)
    replace_artifact(path, stored_form(judge.state_dict, judge.accuracy), save=torch.save)
    return path
