"""Choices and defaults the command line offers, kept light so that `--help` loads no heavy library."""

UTILITIES = ("trained", "recognizability")  # what "model accuracy" means (docs/design.md §1)
SAMPLERS = ("tpe", "nsga2", "gp", "random")  # Optuna samplers a search can use
DEFAULT_TOLERANCE = 0.05  # allowed per-label model-accuracy drop of a grid's best cell
