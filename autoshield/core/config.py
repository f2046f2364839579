"""Profiles: one dataclass, three presets, every field overridable.

A profile fixes everything that changes a number (model width, data subset,
training and attack budgets, seed), so two results are comparable exactly when
their profiles hash the same.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tomllib

from autoshield.core.choices import NORMS, Norm
from autoshield.core.errors import AutoshieldError


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise AutoshieldError(message)


@dataclass(frozen=True)
class TrainConfig:
    """How a classifier is trained (utility model, reference classifier)."""

    epochs: int = 4
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: Literal["cosine", "onecycle"] = "onecycle"
    crop_flip: bool = True
    channels_last: bool = False
    amp: bool = True  # bf16 autocast; CUDA only
    compile: bool = False  # torch.compile; CUDA only
    eval_batch_size: int = 500

    def __post_init__(self) -> None:
        _require(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        _require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        _require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        _require(self.schedule in ("cosine", "onecycle"), f"unknown schedule {self.schedule!r} (cosine, onecycle)")
        _require(self.eval_batch_size >= 1, f"eval_batch_size must be >= 1, got {self.eval_batch_size}")


@dataclass(frozen=True)
class AttackConfig:
    """Geiping et al.'s inversion recipe (docs/design.md §3) and the threat setting."""

    # quick: the cheapest budget measured at which Identity is recognised in >= 50 % of 50 held-out victims on
    # the default network (issue #13, benchmarks/RESULTS.md: 24 / 34 / 44 / 62 % at 300 / 600 / 1,000 / 1,500
    # iterations); paper uses 4,000
    iterations: int = 1500
    lr: float = 0.1
    tv_weight: float = 1e-4
    restarts: int = 1
    signed: bool = True  # Adam on the sign of the image gradient
    boxed: bool = True  # clamp to the valid image box after each step
    lr_decay: bool = True  # lr x0.1 at 3/8, 5/8, 7/8 of the iterations
    init: Literal["randn", "rand", "zeros"] = "randn"
    batch_size: int = 16  # independent reconstructions optimised together
    mode: Literal["auto", "unfold", "batched", "sequential"] = "auto"  # how per-problem gradients are formed
    target: Literal["init", "trained"] = "init"
    leak_batch: int = 1  # images behind one observed gradient

    def __post_init__(self) -> None:
        _require(self.iterations >= 1, f"attack iterations must be >= 1, got {self.iterations}")
        _require(self.lr > 0, f"attack lr must be > 0, got {self.lr}")
        _require(self.tv_weight >= 0, f"tv_weight must be >= 0, got {self.tv_weight}")
        _require(self.restarts >= 1, f"restarts must be >= 1, got {self.restarts}")
        _require(self.init in ("randn", "rand", "zeros"), f"unknown attack init {self.init!r}")
        _require(self.batch_size >= 1, f"attack batch_size must be >= 1, got {self.batch_size}")
        _require(self.mode in ("auto", "unfold", "batched", "sequential"), f"unknown attack mode {self.mode!r}")
        _require(self.target in ("init", "trained"), f"unknown attack target {self.target!r} (init, trained)")
        _require(self.leak_batch >= 1, f"leak_batch must be >= 1, got {self.leak_batch}")


@dataclass(frozen=True)
class Profile:
    """Everything that determines a result. `None` subset sizes mean the whole split."""

    name: str = "custom"
    seed: int = 0
    width: int = 16
    norm: Norm = "none"
    train_per_class: int | None = 500
    test_per_class: int | None = 200
    images_per_label: int = 1  # victims per label a grid or search scores: slots [0, k) of the pool
    victim_pool_per_label: int = 100  # held-out training images per label; the judge never trains on them
    device: str = "auto"
    train: TrainConfig = field(default_factory=TrainConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)
    reference_width: int = 16
    reference_train_per_class: int | None = None  # None: all training images
    reference: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=10))
    # DP-SGD's recipe: the non-private schedule family, with an expected (Poisson) batch of the size DP work on
    # CIFAR-10 uses (Abadi et al. 256; larger batches need more epochs than a CPU profile has)
    dp_train: TrainConfig = field(default_factory=lambda: TrainConfig(batch_size=256))

    def __post_init__(self) -> None:
        _require(self.width >= 1, f"width must be >= 1, got {self.width}")
        _require(self.reference_width >= 1, f"reference_width must be >= 1, got {self.reference_width}")
        _require(self.norm in NORMS, f"unknown norm {self.norm!r} ({', '.join(NORMS)})")
        for key in ("train_per_class", "test_per_class", "reference_train_per_class"):
            value = getattr(self, key)
            _require(value is None or value >= 1, f"{key} must be >= 1 or unset, got {value}")
        _require(self.images_per_label >= 1, f"images_per_label must be >= 1, got {self.images_per_label}")
        _require(
            self.images_per_label <= self.victim_pool_per_label,
            f"images_per_label ({self.images_per_label}) must fit the victim pool "
            f"(victim_pool_per_label = {self.victim_pool_per_label})",
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self, *, exclude: tuple[str, ...] = ("name", "device")) -> str:
        """Hash of the fields that change numbers; the preset's name and the device do not."""
        data = {k: v for k, v in self.to_dict().items() if k not in exclude}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


PRESETS: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        width=8,
        train_per_class=20,
        test_per_class=10,
        images_per_label=1,
        victim_pool_per_label=10,
        train=TrainConfig(epochs=1, batch_size=32, eval_batch_size=100),
        dp_train=TrainConfig(epochs=1, batch_size=32, eval_batch_size=100),
        attack=AttackConfig(iterations=20, batch_size=10),
        reference_width=8,
        reference_train_per_class=100,  # on real CIFAR-10, seconds instead of an hour
        reference=TrainConfig(epochs=10, batch_size=32, lr=0.05, eval_batch_size=100),
    ),
    "quick": Profile(
        name="quick",
        images_per_label=5,  # n = 50: the least at which a paired overall test can see a halving (docs/design.md §8)
        attack=AttackConfig(batch_size=25),
    ),
    "paper": Profile(
        name="paper",
        width=64,
        train_per_class=None,
        test_per_class=None,
        images_per_label=10,
        train=TrainConfig(epochs=30, batch_size=128, channels_last=True),
        dp_train=TrainConfig(epochs=30, batch_size=1024),
        # a trial's 100 victims in one batch: 0.47 ms per image-iteration on an H200 against 0.85 at 50 (RESULTS.md)
        attack=AttackConfig(iterations=4000, tv_weight=1e-6, batch_size=100),
        reference_width=64,
        reference=TrainConfig(epochs=30, batch_size=128, channels_last=True),
    ),
}


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check a TOML/CLI value against a dataclass field's type hint (ints widen to floats)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(hint):
            try:
                return _coerce(value, option, key)
            except AutoshieldError as error:
                errors.append(error)
        raise errors[-1]
    if hint is type(None):
        _require(value is None or value == "none", f"{key} must be none, got {value!r}")
        return None
    if origin is Literal:
        choices = typing.get_args(hint)
        _require(value in choices, f"{key} must be one of {', '.join(map(str, choices))}; got {value!r}")
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    _require(
        isinstance(value, hint) and not (hint is int and isinstance(value, bool)),
        f"{key} must be {hint.__name__}, got {value!r}",
    )
    return value


def _apply(obj: Any, updates: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(type(obj))
    changes = {}
    for key, value in updates.items():
        path = f"{prefix}{key}"
        _require(key in hints, f"unknown profile key {path!r}; known: {', '.join(sorted(hints))}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            _require(isinstance(value, dict), f"{path} is a section; set {path}.<key> instead")
            changes[key] = _apply(current, value, f"{path}.")
        else:
            changes[key] = _coerce(value, hints[key], path)
    return dataclasses.replace(obj, **changes)


def _parse_assignment(text: str) -> dict[str, Any]:
    """'attack.iterations=500' -> {'attack': {'iterations': 500}} with TOML value syntax."""
    key, sep, raw = text.partition("=")
    _require(bool(sep) and bool(key.strip()), f"--set expects key=value, got {text!r}")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    nested: dict[str, Any] = {}
    parts = key.strip().split(".")
    cursor = nested
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    return nested


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_profile(name: str = "quick", *, toml_path: Path | None = None, overrides: tuple[str, ...] = ()) -> Profile:
    """A preset, then a TOML file's values, then `key=value` overrides, in that order."""
    _require(name in PRESETS, f"unknown profile {name!r}; choose from {', '.join(PRESETS)}")
    updates: dict[str, Any] = {}
    if toml_path is not None:
        try:
            updates = tomllib.loads(Path(toml_path).read_text())
        except FileNotFoundError:
            raise AutoshieldError(f"profile file {str(toml_path)!r} does not exist") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise AutoshieldError(f"profile file {str(toml_path)!r} is not valid TOML: {error}") from None
    for assignment in overrides:
        updates = _merge(updates, _parse_assignment(assignment))
    try:
        return _apply(PRESETS[name], updates)
    except (TypeError, ValueError) as error:
        raise AutoshieldError(f"invalid profile value: {error}") from None
