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
from matplotlib.ticker import MaxNLocator
from optuna.trial import FrozenTrial

from autoshield.core.choices import PRIVACY_WORDS
from autoshield.data.policy import IDENTITY
from autoshield.report.pareto import REFERENCE_POINT, best_tradeoff, hypervolume_history
from autoshield.report.studies import Studies, grid_identity, identities, network, search_identity, utility
from autoshield.study.analysis import privacy_of
from autoshield.study.catalog import completed
from autoshield.study.dp_records import DPRecord
from autoshield.study.params import cell_of, sigma_of
from autoshield.study.records import EvaluationRecord, StudyInfo

CHANCE = 0.1  # one in ten labels: the floor a study that predates the measured chance floor is read against


def _scatter(axis: Axes, trials: Sequence[FrozenTrial], **style: Any) -> None:
    axis.scatter([t.values[0] for t in trials], [t.values[1] for t in trials], **style)


def _error_bars(axis: Axes, points: Sequence[tuple[float, float, tuple[float, float]]], color: str) -> None:
    """Each point's 95 % interval of attack accuracy: at 50 victims it spans about ±14 points, which is what
    separates a front from noise."""
    if points:
        x, y, ci = zip(*points, strict=True)
        low = [max(0.0, v - c[0]) for v, c in zip(y, ci, strict=True)]
        high = [max(0.0, c[1] - v) for v, c in zip(y, ci, strict=True)]
        axis.errorbar(x, y, yerr=[low, high], fmt="none", ecolor=color, alpha=0.35, lw=0.8, zorder=2)


def _policy_bars(trials: Sequence[FrozenTrial]) -> list[tuple[float, float, tuple[float, float]]]:
    """Attack accuracy's intervals; an identifiability objective stores none."""
    records = [(t, EvaluationRecord.read(t)) for t in trials]
    return [(t.values[0], t.values[1], r.attack.attack_accuracy_ci) for t, r in records if r.privacy == "recognition"]


def _floor(studies: Studies) -> tuple[float, str]:
    """The chance floor to draw: measured on Identity's victims where a study has it, else one in ten."""
    for _, identity in identities(studies):
        floor = EvaluationRecord.read(identity).attack.chance_floor
        if floor is not None:
            return floor, f"chance floor {100 * floor:.0f} % (judge on information-free starts)"
    return CHANCE, "chance (1 in 10 labels)"


Panel = tuple[str, str, str, str]  # utility, network, privacy objective, profile fingerprint


def panel_of(study: optuna.Study) -> Panel:
    """Which panel a study's points go on: one per utility definition, network, privacy objective and profile (the
    attack budget is part of the profile), so that a DP point shares the policies' axes only when it was measured
    like them."""
    info = StudyInfo.read(study)
    return utility(study), network(study), privacy_of(study), info.profile_fingerprint if info else ""


def plot_pareto(studies: Studies, path: Path) -> Path:
    """Grid cells, search front and DP-SGD points (with ε and the σ = 0 control), one panel per (utility, network,
    privacy objective): a recognizability x value and a trained model's accuracy are different quantities, as are
    attack accuracy and the identified share, and two networks are two experiments, so none ever shares an axis."""
    keys = list(dict.fromkeys(panel_of(s) for s in studies.present()))
    figure = Figure(figsize=(1 + 6 * len(keys), 5))
    axes = figure.subplots(1, len(keys), squeeze=False)
    panel = dict(zip(keys, axes[0], strict=True))
    captions: dict[Panel, str] = {}  # per panel: DP-SGD's ε and σ = 0 controls, under the axis
    if studies.grid:
        axis, cells = panel[panel_of(studies.grid)], completed(studies.grid)
        _scatter(axis, cells, marker="s", s=18, color="tab:gray", alpha=0.5, label="grid cells (one op for all labels)")
        _error_bars(axis, _policy_bars(cells), "tab:gray")
        if cells and cell_of(best := best_tradeoff(studies.grid)) != IDENTITY:
            axis.scatter(*best.values, marker="s", s=60, facecolor="none", edgecolor="tab:green", lw=1.5, zorder=6,
                         label=f"best grid trade-off: {cell_of(best)}")  # fmt: skip
            axis.annotate(str(cell_of(best)), best.values, fontsize=7, xytext=(6, 6), textcoords="offset points",
                          color="tab:green")  # fmt: skip
        if identity := grid_identity(studies.grid):
            _no_defence(axis, identity)
    if studies.search:
        axis, trials = panel[panel_of(studies.search)], completed(studies.search)
        front = studies.search.best_trials
        numbers = {t.number for t in front}
        dominated = [t for t in trials if t.number not in numbers]
        _scatter(axis, dominated, s=14, color="tab:blue", alpha=0.25, label="search trials (dominated)")
        _error_bars(axis, _policy_bars(front), "tab:blue")
        shown = studies.grid is not None and panel_of(studies.grid) == panel_of(studies.search)
        if (identity := search_identity(studies.search)) and not shown:  # every panel marks its no-defence point
            _no_defence(axis, identity)
        steps = sorted((t.values for t in front), key=lambda v: -v[0])
        axis.step(
            [v[0] for v in steps], [v[1] for v in steps], where="post", color="tab:blue", label="search Pareto front"
        )
        axis.scatter([v[0] for v in steps], [v[1] for v in steps], s=26, color="tab:blue", zorder=4)
    if studies.dpsgd:
        axis, trials = panel[panel_of(studies.dpsgd)], completed(studies.dpsgd)
        _scatter(axis, trials, marker="D", s=50, color="tab:red", label="DP-SGD (noised)", zorder=4)
        curve = sorted(trials, key=sigma_of)
        axis.plot([t.values[0] for t in curve], [t.values[1] for t in curve], ls=":", lw=1, color="tab:red",
                  label="DP-SGD between measured σ (straight, not measured)")  # fmt: skip
        details = []
        bars = []
        for rank, trial in enumerate(sorted(trials, key=sigma_of)):
            record = DPRecord.read(trial)
            bars.append((*trial.values, record.noised.attack_accuracy_ci))
            offset = (5, 5) if rank % 2 == 0 else (5, -12)  # σ values often land close together
            axis.annotate(f"σ={record.sigma:g}", trial.values, fontsize=7, xytext=offset, textcoords="offset points",
                          color="tab:red")  # fmt: skip
            gate = {True: "", False: ", not comparable", None: ""}[record.comparable("noised")]
            control = f", σ=0 control {100 * record.control.attack_accuracy:.0f} %" if record.control else ""
            details.append(f"σ={record.sigma:g}: ε={record.epsilon:,.3g}{control}{gate}")
        captions[panel_of(studies.dpsgd)] = "DP-SGD " + "; ".join(details)
        _error_bars(axis, bars, "tab:red")
    floor, floor_label = _floor(studies)
    for key, axis in panel.items():
        name, norm, privacy, fingerprint = key
        if privacy == "recognition":  # the judge's floor; identification's null is 1 / line-up, near 0
            axis.axhline(floor, color="tab:purple", ls="--", lw=1, label=floor_label)
        axis.set_xlim(0, 1)  # the whole scale: a zoomed axis turns noise at chance into a front
        axis.set_ylim(0, 1)
        title = f"model accuracy = {name}, network norm = {norm}, privacy = {privacy}, profile {fingerprint[:8]}"
        axis.set_title(title, fontsize=9)
        caption = captions.get(key)
        axis.set_xlabel("model accuracy (higher is better)" + (f"\n{caption}" if caption else ""), fontsize=8)
        axis.set_ylabel(f"{PRIVACY_WORDS[privacy].figure} (lower is better)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="best")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return path


def _no_defence(axis: Axes, identity: FrozenTrial) -> None:
    """Identity, drawn above every other marker and named, so that no DP diamond hides it."""
    axis.scatter(*identity.values, marker="*", s=200, color="black", label="Identity (no defence)", zorder=8)
    axis.annotate("no defence", identity.values, fontsize=7, xytext=(6, -12), textcoords="offset points")


def plot_hypervolume(studies: Sequence[optuna.Study], path: Path) -> Path:
    figure = Figure(figsize=(6, 4))
    axis = figure.subplots()
    for study in studies:
        history = hypervolume_history(study)
        axis.plot(range(1, len(history) + 1), history, marker="o", ms=3, label=study.study_name)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # trials are counted, never fractional
    axis.set_ylim(bottom=0)
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
    """The sheets side by side at their own aspect ratio, so the figure is images, not margins."""
    images = [imread(sheet) for _, sheet in panels]
    width = 4.0
    height = width * max(image.shape[0] / image.shape[1] for image in images)
    figure = Figure(figsize=(width * len(panels), height + 0.4))
    axes = figure.subplots(1, len(panels), squeeze=False)
    for axis, (title, _), image in zip(axes[0], panels, images, strict=True):
        axis.imshow(image)
        axis.set_title(title, fontsize=10)
        axis.axis("off")
    figure.subplots_adjust(left=0.005, right=0.995, bottom=0.005, top=1 - 0.35 / (height + 0.4), wspace=0.02)
    figure.savefig(path, dpi=130)
    return path
