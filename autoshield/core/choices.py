"""Choices and defaults the command line offers, kept light so that `--help` loads no heavy library."""

from dataclasses import dataclass
from typing import Literal

# the network's normalisation (learn/models.py says what each is)
Norm = Literal["batch", "group", "layer", "none", "fixup", "gnws", "branch"]
NORMS: tuple[Norm, ...] = ("batch", "group", "layer", "none", "fixup", "gnws", "branch")

UTILITIES = ("trained", "recognizability")  # what "model accuracy" means (docs/design.md §1)
SAMPLERS = ("tpe", "nsga2", "gp", "random")  # Optuna samplers a search can use
DEFAULT_TOLERANCE = 0.05  # allowed per-label model-accuracy drop of a grid's best cell

# Who attacks (issues #15 and #36, docs/design.md §10), in order of what they know: the naive attacker ignores the
# policy; the post-hoc one undoes the policy's op on the naive reconstruction; the learned one does so with a
# network trained on public images where the op has no exact inverse; the adaptive one puts the op inside the
# inversion.
Attacker = Literal["naive", "posthoc", "learned", "adaptive"]
ATTACKERS: tuple[Attacker, ...] = ("naive", "posthoc", "learned", "adaptive")
# What a study scores as its privacy objective: one attacker; the strongest of the three on each policy, picked on
# the scored victims (an upper bound); or, per label, the one that was strongest on calibration victims.
AttackerChoice = Literal["naive", "learned", "adaptive", "worst", "calibrated"]
ATTACKER_CHOICES: tuple[AttackerChoice, ...] = ("naive", "learned", "adaptive", "worst", "calibrated")

# What a study's privacy objective counts (issue #34): victims the judge recognises, or victims the reconstruction
# singles out of the identification line-up, which needs no judge.
Privacy = Literal["recognition", "identifiability"]
PRIVACY_CHOICES: tuple[Privacy, ...] = ("recognition", "identifiability")


@dataclass(frozen=True)
class PrivacyWords:
    """How every table, plot and report names a privacy objective, so that no two places say it differently."""

    figure: str  # the share the objective scores
    short: str  # a column's prefix
    counted: str  # what happened to a victim the figure counts


PRIVACY_WORDS: dict[str, PrivacyWords] = {
    "recognition": PrivacyWords(figure="attack accuracy", short="attack", counted="recognised"),
    "identifiability": PrivacyWords(
        figure="identified share", short="identified", counted="singled out of the line-up"
    ),
}

# The studies one name holds: `<name>-grid`, `<name>-search`, `<name>-dpsgd`.
Kind = Literal["grid", "search", "dpsgd"]
KINDS: tuple[Kind, ...] = ("grid", "search", "dpsgd")
