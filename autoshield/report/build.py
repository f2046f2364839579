"""The report: every table and figure of a name's studies written into one folder, with `report.md`.

Everything is read back from the studies (values and stored records), so a
report can be rebuilt at any time from the storage alone.
"""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore, download_artifact, get_all_artifact_meta
from optuna.trial import FrozenTrial

from autoshield.data.policy import IDENTITY
from autoshield.report.format import Rows, markdown_table, percent, write_rows
from autoshield.report.pareto import REFERENCE_POINT, best_tradeoff, hypervolume_history
from autoshield.report.plots import plot_hypervolume, plot_pareto, plot_reconstructions
from autoshield.report.studies import COMPARE_SIGMA, Studies, dp_at, grid_identity, load_studies, utility
from autoshield.report.tables import (
    LOOSE_EPSILON,
    NO_NOISE_NOTE,
    dominance_lines,
    dp_records,
    dp_rows,
    dp_title,
    loose_guarantees,
    per_label_rows,
)
from autoshield.study.catalog import completed
from autoshield.study.records import EvaluationRecord, StudyInfo, cell_of


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
            picks.append((f"grid {IDENTITY} (no defence)", studies.grid, identity, "reconstructions"))
        if cell_of(best) != IDENTITY:
            title = f"grid cell {cell_of(best)} (best trade-off)"
            picks.append((title, studies.grid, best, "reconstructions"))
    if studies.search and completed(studies.search):
        chosen = best_tradeoff(studies.search)
        title = f"search trial {chosen.number} (best trade-off)"
        picks.append((title, studies.search, chosen, "reconstructions"))
    if studies.dpsgd and (dp := dp_at(studies, COMPARE_SIGMA)):
        picks.append((f"DP-SGD σ={COMPARE_SIGMA:g}, noised gradients", studies.dpsgd, dp, "noised"))
    return picks


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
        for title, study, trial, artifact in _reconstruction_trials(studies)
        if (sheet := _sheet(trial, storage, store, artifact, sheets, study=study.study_name))
    ]
    if panels:
        plot_reconstructions(panels, out / "reconstructions.png")
    path = out / "report.md"
    path.write_text(_report_text(studies, rows, tolerance=tolerance, has_reconstructions=bool(panels)))
    return path


def _report_text(studies: Studies, rows: Rows, *, tolerance: float, has_reconstructions: bool) -> str:
    any_study = studies.search or studies.grid or studies.dpsgd
    first = StudyInfo.read(any_study)
    lines = [
        f"# autoshield report: {any_study.study_name.rsplit('-', 1)[0]}",
        "",
        f"Profile `{first and first.profile}` (fingerprint {first and first.profile_fingerprint}), data "
        f"{first and first.data}, search space `{first and first.space}`. Attack accuracy is the share of "
        "gradient-inversion reconstructions that the reference classifier labels correctly (lower is better). "
        "Model accuracy is, per study: "
        + ", ".join(f"{s.study_name} `{utility(s)}`" for s in studies.present())
        + " (`trained`: clean test accuracy of the network trained on the transformed data; `recognizability`: "
        "the reference classifier's accuracy on the transformed test images, the poster's protocol).",
        "",
        "![Pareto front](pareto.png)",
        "",
    ]
    if studies.grid and completed(studies.grid):
        grid_info = StudyInfo.read(studies.grid)
        total = len(grid_info.cells) if grid_info else 0
        done = len(completed(studies.grid))
        lines += [
            "## Grid",
            "",
            f"Search space `{grid_info and grid_info.space}`: {done} of {total} cells "
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
            f"{percent(chosen.values[0])} %, attack {percent(chosen.values[1])} %, policy "
            f"`{EvaluationRecord.read(chosen).policy}`.",
            "",
            "![hypervolume](hypervolume.png)",
            "",
        ]
    if studies.dpsgd and completed(studies.dpsgd):
        records = dp_records(studies.dpsgd)
        lines += ["## DP-SGD baselines", "", f"{dp_title(records)}:", "", markdown_table(dp_rows(records))]
        if loose := loose_guarantees(records):
            listed = ", ".join(f"σ = {r.sigma:g} (ε = {r.epsilon:,.4g})" for r in loose)
            lines += [f"No meaningful privacy guarantee (ε above {LOOSE_EPSILON}): {listed}.", ""]
        lines += [NO_NOISE_NOTE, ""]
    lines += [
        "## Per label (the poster's comparison)",
        "",
        f"Grid best cell: lowest attack accuracy within {100 * tolerance:.0f} points of Identity's model accuracy on "
        f"that label. Advantage = model-accuracy gain + attack-accuracy drop against DP-SGD σ = {COMPARE_SIGMA:g}.",
        "",
        markdown_table(rows),
        "Dominance of DP-SGD points by search policies: [dominance.md](dominance.md).",
        "",
    ]
    if has_reconstructions:
        lines += ["## Reconstructions", "", "![reconstructions](reconstructions.png)", ""]
    return "\n".join(lines)
