"""Choices and defaults the command line offers, kept light so that `--help` loads no heavy library."""

from typing import Literal

Norm = Literal["batch", "group", "layer", "none"]  # the network's normalisation (learn/models.py says what each is)
NORMS: tuple[Norm, ...] = ("batch", "group", "layer", "none")

UTILITIES = ("trained", "recognizability")  # what "model accuracy" means (docs/design.md §1)
SAMPLERS = ("tpe", "nsga2", "gp", "random")  # Optuna samplers a search can use
DEFAULT_TOLERANCE = 0.05  # allowed per-label model-accuracy drop of a grid's best cell
