"""DP-SGD's stored results: one record per noise multiplier, with its controls (docs/design.md §4).

Apart from the augmentation side's records (`study.records`), whose attack summary it shares.
"""

from __future__ import annotations

from dataclasses import dataclass

from optuna.trial import FrozenTrial, Trial

from autoshield.core.errors import AutoshieldError
from autoshield.evaluation.dpsgd import DPEvaluation, comparable
from autoshield.study.records import AttackRecord, labelled, meaningful, store_attrs, unlabelled


@dataclass(frozen=True)
class DPRecord:
    """DP-SGD at one σ as stored on its trial: the attack objective is the `noised` setting (docs/design.md §4)."""

    sigma: float
    max_grad_norm: float
    delta: float
    epsilon: float
    epsilon_prv: float | None
    epochs: int
    model_accuracy: float
    model_accuracy_per_label: tuple[float, ...]
    noised: AttackRecord
    weights: AttackRecord
    control: AttackRecord | None  # None in studies older than the no-noise control
    train_seconds: float
    attack_seconds: float
    # None in studies older than the like-with-like comparison (issue #14): their DP network was GroupNorm
    norm: str | None = None
    nonprivate_accuracy: float | None = None
    identity: AttackRecord | None = None  # Identity on the augmentation side's network, the controls' bar
    signal_to_noise: tuple[float, ...] = ()  # per victim ‖clipped g‖ / (σ·C·√d)

    def __post_init__(self) -> None:
        object.__setattr__(self, "model_accuracy", meaningful(float(self.model_accuracy)))
        object.__setattr__(self, "model_accuracy_per_label", meaningful(tuple(self.model_accuracy_per_label)))

    @classmethod
    def of(cls, evaluation: DPEvaluation) -> DPRecord:
        return cls(
            sigma=evaluation.sigma,
            max_grad_norm=evaluation.max_grad_norm,
            delta=evaluation.delta,
            epsilon=evaluation.epsilon,
            epsilon_prv=evaluation.epsilon_prv,
            epochs=evaluation.epochs,
            model_accuracy=evaluation.model_accuracy,
            model_accuracy_per_label=evaluation.model_accuracy_per_label,
            noised=AttackRecord.of(evaluation.noised),
            weights=AttackRecord.of(evaluation.weights),
            control=AttackRecord.of(evaluation.control),
            train_seconds=evaluation.train_seconds,
            attack_seconds=evaluation.attack_seconds,
            norm=evaluation.norm,
            nonprivate_accuracy=evaluation.nonprivate_accuracy,
            identity=AttackRecord.of(evaluation.identity),
            signal_to_noise=evaluation.signal_to_noise,
        )

    def comparable(self, setting: str) -> bool | None:
        """Whether the `noised` or `weights` result may be compared with the augmentation side: its σ = 0
        control reaches Identity's attack accuracy minus the margin. None where the study predates the gate."""
        control = self.control if setting == "noised" else self.weights
        if control is None or self.identity is None:
            return None
        return comparable(control.attack_accuracy, self.identity.attack_accuracy)

    def objectives(self) -> tuple[float, float]:
        return self.model_accuracy, self.noised.attack_accuracy

    def write(self, trial: Trial) -> None:
        store_attrs(
            trial,
            {
                "sigma": self.sigma,
                "max_grad_norm": self.max_grad_norm,
                "delta": self.delta,
                "epsilon": self.epsilon,
                "epsilon_prv": self.epsilon_prv,
                "epochs": self.epochs,
                "setting": "noised",
                "model_accuracy_per_label": labelled(self.model_accuracy_per_label),
                **self.noised.as_attrs(),
                **self.weights.as_attrs("weights_"),
                **(self.control.as_attrs("control_") if self.control else {}),
                **(self.identity.as_attrs("identity_") if self.identity else {}),
                "norm": self.norm,
                "nonprivate_accuracy": self.nonprivate_accuracy,
                "signal_to_noise": list(self.signal_to_noise),
                "noised_comparable": self.comparable("noised"),
                "weights_comparable": self.comparable("weights"),
                "train_seconds": self.train_seconds,
                "attack_seconds": self.attack_seconds,
            },
        )

    @classmethod
    def read(cls, trial: FrozenTrial) -> DPRecord:
        attrs = trial.user_attrs
        noised, weights = AttackRecord.from_attrs(attrs), AttackRecord.from_attrs(attrs, "weights_")
        if noised is None or weights is None:
            raise AutoshieldError(f"trial {trial.number} holds no DP-SGD evaluation")
        return cls(
            sigma=attrs["sigma"],
            max_grad_norm=attrs["max_grad_norm"],
            delta=attrs["delta"],
            epsilon=attrs["epsilon"],
            epsilon_prv=attrs.get("epsilon_prv"),
            epochs=attrs["epochs"],
            model_accuracy=trial.values[0],
            model_accuracy_per_label=unlabelled(attrs["model_accuracy_per_label"]),
            noised=noised,
            weights=weights,
            control=AttackRecord.from_attrs(attrs, "control_"),
            train_seconds=attrs["train_seconds"],
            attack_seconds=attrs["attack_seconds"],
            norm=attrs.get("norm"),
            nonprivate_accuracy=attrs.get("nonprivate_accuracy"),
            identity=AttackRecord.from_attrs(attrs, "identity_"),
            signal_to_noise=tuple(attrs.get("signal_to_noise", ())),
        )
