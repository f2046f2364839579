"""The report's figures: Pareto fronts against DP-SGD, hypervolume over trials, reconstruction sheets side by side.

Built with matplotlib's object API (`Figure`): no backend or pyplot state is touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import imread
from optuna.trial import FrozenTrial

from autoshield.report.pareto import REFERENCE_POINT, hypervolume_history
from autoshield.report.studies import Studies, grid_identity, network, utility
from autoshield.study.catalog import completed
from autoshield.study.dp_records import DPRecord
from autoshield.study.params import sigma_of


def _scatter(axis: Axes, trials: Sequence[FrozenTrial], **style: Any) -> None:
    axis.scatter([t.values[0] for t in trials], [t.values[1] for t in trials], **style)


def _panel_of(study: optuna.Study) -> tuple[str, str]:
    return utility(study), network(study)


def plot_pareto(studies: Studies, path: Path) -> Path:
    """Grid cells, search front and DP-SGD points (with ε and the σ = 0 control), one panel per (utility, network):
    a recognizability x value and a trained model's accuracy are different quantities, and two networks are two
    experiments, so neither ever shares an axis."""
    keys = list(dict.fromkeys(_panel_of(s) for s in studies.present()))
    figure = Figure(figsize=(1 + 6 * len(keys), 5))
    axes = figure.subplots(1, len(keys), squeeze=False)
    panel = dict(zip(keys, axes[0], strict=True))
    captions: dict[tuple[str, str], str] = {}  # per panel: DP-SGD's ε and σ = 0 controls, under the axis
    if studies.grid:
        axis, cells = panel[_panel_of(studies.grid)], completed(studies.grid)
        _scatter(axis, cells, marker="s", s=18, color="tab:gray", alpha=0.5, label="grid cells (one op for all labels)")
        if identity := grid_identity(studies.grid):
            axis.scatter(*identity.values, marker="*", s=180, color="black", label="Identity (no defence)", zorder=5)
    if studies.search:
        axis, trials = panel[_panel_of(studies.search)], completed(studies.search)
        front = studies.search.best_trials
        numbers = {t.number for t in front}
        dominated = [t for t in trials if t.number not in numbers]
        _scatter(axis, dominated, s=14, color="tab:blue", alpha=0.25, label="search trials (dominated)")
        steps = sorted((t.values for t in front), key=lambda v: -v[0])
        axis.step(
            [v[0] for v in steps], [v[1] for v in steps], where="post", color="tab:blue", label="search Pareto front"
        )
        axis.scatter([v[0] for v in steps], [v[1] for v in steps], s=26, color="tab:blue", zorder=4)
    if studies.dpsgd:
        axis, trials = panel[_panel_of(studies.dpsgd)], completed(studies.dpsgd)
        _scatter(axis, trials, marker="D", s=50, color="tab:red", label="DP-SGD (noised)", zorder=6)
        details = []
        for rank, trial in enumerate(sorted(trials, key=sigma_of)):
            record = DPRecord.read(trial)
            offset = (5, 5) if rank % 2 == 0 else (5, -12)  # σ values often land close together
            axis.annotate(f"σ={record.sigma:g}", trial.values, fontsize=7, xytext=offset, textcoords="offset points",
                          color="tab:red")  # fmt: skip
            gate = {True: "", False: ", not comparable", None: ""}[record.comparable("noised")]
            control = f", σ=0 control {100 * record.control.attack_accuracy:.0f} %" if record.control else ""
            details.append(f"σ={record.sigma:g}: ε={record.epsilon:,.3g}{control}{gate}")
        captions[_panel_of(studies.dpsgd)] = "DP-SGD " + "; ".join(details)
    for (name, norm), axis in panel.items():
        axis.set_title(f"model accuracy = {name}, network norm = {norm}", fontsize=9)
        caption = captions.get((name, norm))
        axis.set_xlabel("model accuracy (higher is better)" + (f"\n{caption}" if caption else ""), fontsize=8)
        axis.set_ylabel("attack accuracy (lower is better)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="best")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return path


def plot_hypervolume(studies: Sequence[optuna.Study], path: Path) -> Path:
    figure = Figure(figsize=(6, 4))
    axis = figure.subplots()
    for study in studies:
        history = hypervolume_history(study)
        axis.plot(range(1, len(history) + 1), history, label=study.study_name)
    axis.set_xlabel("completed trials")
    axis.set_ylabel("hypervolume")
    axis.set_title(
        f"reference point: model accuracy {REFERENCE_POINT[0]:g}, attack accuracy {REFERENCE_POINT[1]:g}", fontsize=8
    )
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return path


def plot_reconstructions(panels: Sequence[tuple[str, Path]], path: Path) -> Path:
    figure = Figure(figsize=(5 * len(panels), 10))
    axes = figure.subplots(1, len(panels), squeeze=False)
    for axis, (title, sheet) in zip(axes[0], panels, strict=True):
        axis.imshow(imread(sheet))
        axis.set_title(title, fontsize=9)
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return path
