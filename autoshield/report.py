"""Reports: Pareto fronts against DP-SGD, hypervolume, per-label tables, reconstruction sheets.

Everything is read back from the studies (values and user attrs), so a report
can be rebuilt at any time from the storage alone.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import optuna
from optuna.artifacts import FileSystemArtifactStore, download_artifact, get_all_artifact_meta
from optuna.trial import FrozenTrial

from autoshield.data import CLASSES
from autoshield.errors import AutoshieldError
from autoshield.evaluate import NO_NOISE_NOTE
from autoshield.policy import IDENTITY, Policy
from autoshield.study import best_cells, completed, creation_info

REFERENCE_POINT = (0.0, 1.0)  # (model accuracy, attack accuracy): the worst possible corner


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """`a` is at least as good as `b` on (maximised model accuracy, minimised attack accuracy), better on one."""
    return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])


def hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float] = REFERENCE_POINT) -> float:
    """Area dominated by `points` (model accuracy up, attack accuracy down) and bounded by `reference`.

    Optuna's hypervolume code is private, so this is the exact 2-D sweep: sort by model accuracy,
    descending, and add the strip each point contributes below the best attack accuracy so far.
    """
    inside = sorted((p for p in points if p[0] > reference[0] and p[1] < reference[1]), key=lambda p: -p[0])
    area, best_attack = 0.0, reference[1]
    for index, (model, attack) in enumerate(inside):
        best_attack = min(best_attack, attack)
        next_model = inside[index + 1][0] if index + 1 < len(inside) else reference[0]
        area += (model - next_model) * (reference[1] - best_attack)
    return area


@dataclass(frozen=True)
class Studies:
    grid: optuna.Study | None
    search: optuna.Study | None
    dpsgd: optuna.Study | None


def load_studies(storage: optuna.storages.BaseStorage, name: str) -> Studies:
    names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    found = {
        kind: optuna.load_study(study_name=f"{name}-{kind}", storage=storage) if f"{name}-{kind}" in names else None
        for kind in ("grid", "search", "dpsgd")
    }
    if not any(found.values()):
        raise AutoshieldError(f"no study named {name}-grid, {name}-search or {name}-dpsgd in this storage")
    if not any(study and completed(study) for study in found.values()):
        raise AutoshieldError(f"the studies of {name!r} have no completed trials yet")
    return Studies(**found)


def best_tradeoff(study: optuna.Study) -> FrozenTrial:
    """The Pareto-optimal trial with the largest model accuracy minus attack accuracy."""
    front = study.best_trials
    if not front:
        raise AutoshieldError(f"study {study.study_name!r} has no completed trials")
    return max(front, key=lambda t: (t.values[0] - t.values[1], t.values[0]))


def trial_policy(trial: FrozenTrial) -> Policy:
    if trial.state != optuna.trial.TrialState.COMPLETE:
        reason = trial.user_attrs.get("fail_reason", trial.state.name.lower())
        raise AutoshieldError(f"trial {trial.number} did not complete ({reason}); nothing to export")
    return Policy.from_mapping(dict(trial.params)) if "cell" not in trial.params else Policy.parse(trial.params["cell"])


def utility(study: optuna.Study) -> str:
    """What a study's model accuracy means: `trained` (clean accuracy) or `recognizability`."""
    return creation_info(study).get("utility", "trained")


def dp_at(studies: Studies, sigma: float) -> FrozenTrial | None:
    if studies.dpsgd is None:
        return None
    matches = [t for t in completed(studies.dpsgd) if math.isclose(t.params["sigma"], sigma)]
    return matches[0] if matches else None


def _pct(value: float) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}"


def grid_identity(grid: optuna.Study) -> FrozenTrial | None:
    """The grid's completed Identity cell: the no-defence point every defence is read against."""
    return next((t for t in completed(grid) if t.params.get("cell") == str(IDENTITY)), None)


def _scatter(axis: plt.Axes, trials: Sequence[FrozenTrial], **style: Any) -> None:
    axis.scatter([t.values[0] for t in trials], [t.values[1] for t in trials], **style)


def plot_pareto(studies: Studies, path: Path) -> Path:
    """Grid cells, search front and DP-SGD points, one panel per utility: a recognizability x value and a
    trained model's accuracy are different quantities and never share an axis."""
    present = [s for s in (studies.grid, studies.search, studies.dpsgd) if s]
    utilities = list(dict.fromkeys(utility(s) for s in present))
    figure, axes = plt.subplots(1, len(utilities), figsize=(1 + 6 * len(utilities), 5), squeeze=False)
    panel = dict(zip(utilities, axes[0], strict=True))
    if studies.grid:
        axis, cells = panel[utility(studies.grid)], completed(studies.grid)
        _scatter(axis, cells, marker="s", s=18, color="tab:gray", alpha=0.5, label="grid cells (one op for all labels)")
        if identity := grid_identity(studies.grid):
            axis.scatter(*identity.values, marker="*", s=180, color="black", label="Identity (no defence)", zorder=5)
    if studies.search:
        axis, trials = panel[utility(studies.search)], completed(studies.search)
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
        axis, trials = panel[utility(studies.dpsgd)], completed(studies.dpsgd)
        _scatter(axis, trials, marker="D", s=50, color="tab:red", label="DP-SGD", zorder=6)
        for trial in trials:
            axis.annotate(
                f"σ={trial.params['sigma']:g}\nε={trial.user_attrs['epsilon']:,.3g}",
                trial.values,
                fontsize=7,
                xytext=(5, 5),
                textcoords="offset points",
                color="tab:red",
            )
    for name, axis in panel.items():
        axis.set_title(f"model accuracy = {name}", fontsize=9)
        axis.set_xlabel("model accuracy (higher is better)")
        axis.set_ylabel("attack accuracy (lower is better)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="best")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def hypervolume_history(study: optuna.Study) -> list[float]:
    """Hypervolume of the front after each completed trial, in trial order."""
    points: list[tuple[float, float]] = []
    history = []
    for trial in sorted(completed(study), key=lambda t: t.number):
        points.append((trial.values[0], trial.values[1]))
        history.append(hypervolume(points))
    return history


def plot_hypervolume(studies: Sequence[optuna.Study], path: Path) -> Path:
    figure, axis = plt.subplots(figsize=(6, 4))
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
    plt.close(figure)
    return path


def per_label_rows(studies: Studies, *, tolerance: float) -> list[dict[str, str]]:
    """The poster's table: per label, grid best cell, search choice, and DP-SGD σ = 0.5 beside them."""
    grid = best_cells(studies.grid, tolerance=tolerance)[0] if studies.grid and completed(studies.grid) else None
    chosen = best_tradeoff(studies.search) if studies.search and completed(studies.search) else None
    dp = dp_at(studies, 0.5)
    rows = []
    for i, label in enumerate(CLASSES):
        row = {"label": label}
        if grid:
            row |= {
                "grid cell": str(grid[i].cell),
                "grid model %": _pct(grid[i].model_accuracy),
                "grid attack %": _pct(grid[i].attack_accuracy),
            }
        if chosen:
            model = chosen.user_attrs["model_accuracy_per_label"][i]
            attack = chosen.user_attrs["attack_accuracy_per_label"][i]
            row |= {"search cell": chosen.params[label], "search model %": _pct(model), "search attack %": _pct(attack)}
        if dp:
            dp_model = dp.user_attrs["model_accuracy_per_label"][i]
            dp_attack = dp.user_attrs["attack_accuracy_per_label"][i]
            row |= {"DP σ=0.5 model %": _pct(dp_model), "DP σ=0.5 attack %": _pct(dp_attack)}
            if chosen:
                advantage = (model - dp_model) + (dp_attack - attack)
                beats = model >= dp_model and attack <= dp_attack
                row |= {"advantage (pts)": f"{100 * advantage:+.1f}", "beats DP on both": "yes" if beats else "no"}
        rows.append(row)
    return rows


def dominance_lines(studies: Studies) -> list[str]:
    if not (studies.dpsgd and studies.search):
        return ["(needs both a DP-SGD baseline study and a search study)"]
    lines = []
    for dp in sorted(completed(studies.dpsgd), key=lambda t: t.params["sigma"]):
        winners = [t for t in completed(studies.search) if dominates(t.values, dp.values)]
        lines.append(
            f"## DP-SGD σ = {dp.params['sigma']:g} (ε = {dp.user_attrs['epsilon']:,.4g}): model "
            f"{_pct(dp.values[0])} %, attack {_pct(dp.values[1])} %"
        )
        if not winners:
            lines.append("\nNo search policy dominates it.\n")
            continue
        lines.append(f"\n{len(winners)} search policies dominate it:\n")
        lines.append("| trial | model % (margin) | attack % (margin) | policy |")
        lines.append("|---|---|---|---|")
        for t in sorted(winners, key=lambda t: -(t.values[0] - t.values[1])):
            lines.append(
                f"| {t.number} | {_pct(t.values[0])} ({100 * (t.values[0] - dp.values[0]):+.1f}) | "
                f"{_pct(t.values[1])} ({100 * (t.values[1] - dp.values[1]):+.1f}) | {t.user_attrs['policy']} |"
            )
        lines.append("")
    return lines


def _sheet(
    trial: FrozenTrial,
    storage: optuna.storages.BaseStorage,
    store: FileSystemArtifactStore,
    name: str,
    folder: Path,
    *,
    study: str,
) -> Path | None:
    """Download the trial's reconstruction sheet (the artifact whose file name contains `name`); trial
    numbers repeat across studies, so the local file starts with the study's name."""
    for meta in get_all_artifact_meta(trial, storage=storage):
        if name in meta.filename:
            path = folder / f"{study}-{meta.filename}"
            if not path.exists():
                download_artifact(artifact_store=store, artifact_id=meta.artifact_id, file_path=str(path))
            return path
    return None


def _reconstruction_trials(studies: Studies) -> list[tuple[str, optuna.Study, FrozenTrial, str]]:
    """(title, study, trial, artifact name) of the sheets a report shows: no defence first, then each
    study's pick."""
    picks = []
    if studies.grid and completed(studies.grid):
        identity, best = grid_identity(studies.grid), best_tradeoff(studies.grid)
        if identity:
            picks.append(("grid Identity (no defence)", studies.grid, identity, "reconstructions"))
        if best.params.get("cell") != str(IDENTITY):
            title = f"grid cell {best.params['cell']} (best trade-off)"
            picks.append((title, studies.grid, best, "reconstructions"))
    if studies.search and completed(studies.search):
        chosen = best_tradeoff(studies.search)
        title = f"search trial {chosen.number} (best trade-off)"
        picks.append((title, studies.search, chosen, "reconstructions"))
    if studies.dpsgd and (dp := dp_at(studies, 0.5)):
        picks.append(("DP-SGD σ=0.5, noised gradients", studies.dpsgd, dp, "noised"))
    return picks


def plot_reconstructions(panels: Sequence[tuple[str, Path]], path: Path) -> Path:
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 10), squeeze=False)
    for axis, (title, sheet) in zip(axes[0], panels, strict=True):
        axis.imshow(plt.imread(sheet))
        axis.set_title(title, fontsize=9)
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def write_rows(rows: list[dict[str, str]], stem: Path) -> tuple[Path, Path]:
    """The same rows as CSV and as a Markdown table (columns: union of the rows' keys, in order)."""
    header = list(dict.fromkeys(key for row in rows for key in row))
    csv_path, md_path = stem.with_suffix(".csv"), stem.with_suffix(".md")
    stem.parent.mkdir(parents=True, exist_ok=True)
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, restval="")
        writer.writeheader()
        writer.writerows(rows)
    md_path.write_text(markdown_table(rows, header))
    return csv_path, md_path


def markdown_table(rows: list[dict[str, str]], header: Sequence[str] | None = None) -> str:
    header = list(header or dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row.get(k, "") for k in header) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def build_report(
    *, storage: optuna.storages.BaseStorage, name: str, store: FileSystemArtifactStore, out: Path, tolerance: float
) -> Path:
    """Write every report file into `out`; returns the path of report.md."""
    studies = load_studies(storage, name)
    out.mkdir(parents=True, exist_ok=True)
    plot_pareto(studies, out / "pareto.png")
    if studies.search and completed(studies.search):
        plot_hypervolume([studies.search], out / "hypervolume.png")
    rows = per_label_rows(studies, tolerance=tolerance)
    write_rows(rows, out / "per_label")
    (out / "dominance.md").write_text(
        "# Search policies that dominate DP-SGD\n\n" + "\n".join(dominance_lines(studies))
    )
    sheets = out / "sheets"
    sheets.mkdir(exist_ok=True)
    panels = [
        (title, sheet)
        for title, study, trial, name in _reconstruction_trials(studies)
        if (sheet := _sheet(trial, storage, store, name, sheets, study=study.study_name))
    ]
    if panels:
        plot_reconstructions(panels, out / "reconstructions.png")
    path = out / "report.md"
    path.write_text(_report_text(studies, rows, tolerance=tolerance, has_reconstructions=bool(panels)))
    return path


def _report_text(studies: Studies, rows: list[dict[str, str]], *, tolerance: float, has_reconstructions: bool) -> str:
    any_study = studies.search or studies.grid or studies.dpsgd
    info = creation_info(any_study)
    lines = [
        f"# autoshield report: {any_study.study_name.rsplit('-', 1)[0]}",
        "",
        f"Profile `{info.get('profile')}` (fingerprint {info.get('profile_fingerprint')}), data {info.get('data')}, "
        f"search space `{info.get('space')}`. Attack accuracy is the share of gradient-inversion reconstructions "
        "that the reference classifier labels correctly (lower is better). Model accuracy is, per study: "
        + ", ".join(f"{s.study_name} `{utility(s)}`" for s in (studies.grid, studies.search, studies.dpsgd) if s)
        + " (`trained`: clean test accuracy of the network trained on the transformed data; `recognizability`: "
        "the reference classifier's accuracy on the transformed test images, the poster's protocol).",
        "",
        "![Pareto front](pareto.png)",
        "",
    ]
    if studies.grid and completed(studies.grid):
        grid_info = creation_info(studies.grid)
        total = len(grid_info.get("cells", ()))
        done = len(completed(studies.grid))
        lines += [
            "## Grid",
            "",
            f"Search space `{grid_info.get('space')}`: {done} of {total} cells "
            "evaluated, each applied to every label."
            + (
                ""
                if done >= total
                else " **Incomplete**: rerun `autoshield grid` to finish; best cells below are "
                "chosen among the evaluated ones only."
            ),
            "",
        ]
    if studies.search and completed(studies.search):
        search = studies.search
        front = search.best_trials
        history = hypervolume_history(search)
        chosen = best_tradeoff(search)
        lines += [
            "## Search",
            "",
            f"{len(completed(search))} completed trials, {len(front)} on the Pareto front, hypervolume "
            f"{history[-1]:.4f} (reference point model {REFERENCE_POINT[0]:g}, attack {REFERENCE_POINT[1]:g}).",
            "",
            f"Best trade-off (max model − attack accuracy on the front): trial {chosen.number}, model "
            f"{_pct(chosen.values[0])} %, attack {_pct(chosen.values[1])} %, policy `{chosen.user_attrs['policy']}`.",
            "",
            "![hypervolume](hypervolume.png)",
            "",
        ]
    if studies.dpsgd and completed(studies.dpsgd):
        lines += [
            "## DP-SGD baselines",
            "",
            "| σ | ε (RDP, δ=1e-5) | model % | attack % noised | attack % weights | attack % no noise |",
            "|---|---|---|---|---|---|",
        ]
        for t in sorted(completed(studies.dpsgd), key=lambda t: t.params["sigma"]):
            a = t.user_attrs
            lines.append(
                f"| {a['sigma']:g} | {a['epsilon']:,.4g} | {_pct(t.values[0])} | {_pct(a['attack_accuracy'])} | "
                f"{_pct(a['weights_attack_accuracy'])} | {_pct(a.get('control_attack_accuracy', math.nan))} |"
            )
        loose = [t.user_attrs for t in completed(studies.dpsgd) if t.user_attrs["epsilon"] > 100]
        if loose:
            listed = ", ".join(f"σ = {a['sigma']:g} (ε = {a['epsilon']:,.4g})" for a in loose)
            lines += ["", f"No meaningful privacy guarantee (ε above 100): {listed}."]
        lines += ["", NO_NOISE_NOTE, ""]
    lines += [
        "## Per label (the poster's comparison)",
        "",
        f"Grid best cell: lowest attack accuracy within {100 * tolerance:.0f} points of Identity's model accuracy on "
        "that label. Advantage = model-accuracy gain + attack-accuracy drop against DP-SGD σ = 0.5.",
        "",
        markdown_table(rows),
        "Dominance of DP-SGD points by search policies: [dominance.md](dominance.md).",
        "",
    ]
    if has_reconstructions:
        lines += ["## Reconstructions", "", "![reconstructions](reconstructions.png)", ""]
    return "\n".join(lines)
