"""The report: every table and figure of a name's studies written into one folder, with `report.md`.

Everything is read back from the studies (values and stored records), so a
report can be rebuilt at any time from the storage alone.
"""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore, download_artifact, get_all_artifact_meta
from optuna.trial import FrozenTrial

from autoshield.core.files import file_stem
from autoshield.data.policy import IDENTITY
from autoshield.report.attackers import attacker_cell_rows, survivor_rows
from autoshield.report.cells import cell_rows
from autoshield.report.confirmed import confirmation_rows, confirmed_claims
from autoshield.report.design import study_design_lines
from autoshield.report.format import Rows, markdown_table, percent, write_rows
from autoshield.report.matched import matched_lines
from autoshield.report.pareto import REFERENCE_POINT, best_tradeoff, hypervolume_history
from autoshield.report.plots import CHANCE, plot_hypervolume, plot_pareto, plot_reconstructions
from autoshield.report.premise import premise, premise_lines
from autoshield.report.studies import (
    COMPARE_SIGMA,
    Studies,
    dp_at,
    grid_identity,
    identities,
    judge_line,
    load_studies,
    utility,
)
from autoshield.report.tables import (
    LOOSE_EPSILON,
    NO_NOISE_NOTE,
    dominance_lines,
    dp_records,
    dp_rows,
    dp_title,
    grid_best_rows,
    loose_guarantees,
    pareto_rows,
    per_label_rows,
    table_utility,
)
from autoshield.study.analysis import best_cells, privacy_of
from autoshield.study.catalog import completed
from autoshield.study.params import cell_of
from autoshield.study.records import ConfirmationRecord, EvaluationRecord, StudyInfo


def _sheet(
    trial: FrozenTrial,
    storage: optuna.storages.BaseStorage,
    store: FileSystemArtifactStore,
    name: str,
    folder: Path,
    *,
    study: str,
) -> Path | None:
    """Download the trial's portrait reconstruction sheet `trial-<n>-<name>.png` (not its wide twin); trial
    numbers repeat across studies, so the local file starts with the study's name."""
    for meta in get_all_artifact_meta(trial, storage=storage):
        if meta.filename.endswith(f"-{name}.png"):
            path = folder / f"{file_stem(study)}-{file_stem(meta.filename)}"
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
    if studies.grid and completed(studies.grid):
        write_rows(cell_rows(studies.grid), out / "cells")
        if attackers := attacker_cell_rows(studies.grid):
            write_rows(attackers, out / "attackers")
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


def _confirmed_lines(studies: Studies) -> list[str]:
    """The headline: claims from confirmation on fresh victims only, with found and confirmed side by side."""
    records = next((r for s in (studies.grid, studies.search) if s and (r := ConfirmationRecord.read_all(s))), [])
    if not records:
        return [
            "## Headline",
            "",
            "**Nothing is confirmed yet**: every number below was measured on the victims the policies were "
            "selected on, so the best of them is biased low. Run `autoshield confirm` to re-score them on fresh "
            "victims.",
            "",
        ]
    sizes = sorted({r.victims_per_label for r in records})
    return [
        "## Headline (confirmed on fresh victims)",
        "",
        *[f"- {line}" for line in confirmed_claims(records)],
        "",
        f"Found (on the study's victims) and confirmed (on {', '.join(map(str, sizes))} fresh victims per label, "
        "paired with Identity on the same victims, Holm over the policies):",
        "",
        markdown_table(confirmation_rows(records)),
    ]


def _banners(studies: Studies, info: StudyInfo | None) -> list[str]:
    """What must be read before any figure: a `smoke` run, or an undefended attack that is not above chance."""
    lines = []
    if info and info.profile == "smoke":
        lines.append(
            "> **`smoke` profile**: a test of the machinery on a tiny network and one victim per label; no figure "
            "in this report says anything about privacy."
        )
    for study, identity in identities(studies):
        attack = EvaluationRecord.read(identity).attack
        floor = attack.chance_floor if attack.chance_floor is not None else CHANCE
        if attack.attack_accuracy_ci[0] <= floor:
            lines.append(
                f"> **The undefended attack is at chance in {study.study_name}**: Identity is recognised in "
                f"{percent(attack.attack_accuracy)} % (95 % interval from {percent(attack.attack_accuracy_ci[0])} %), "
                f"against a chance floor of {percent(floor)} %. No defence can show an effect against an attack "
                "that does not work: raise the attack budget (`--set attack.iterations=…`) before reading on."
            )
    return [line for banner in lines for line in (banner, "")]


def _pooled_lines(grid: optuna.Study, *, tolerance: float, pools: bool) -> list[str]:
    """Where privacy showed no cell x label interaction: the best cell per label with each cell's privacy read over
    every label's victims (issue #37 item 1), beside the label-by-label table above."""
    if not pools:
        return []
    table, rule = best_cells(grid, tolerance=tolerance, pooled=True)
    return [
        f"Privacy pooled over labels (the premise test above found no cell x label interaction). Rule: {rule}.",
        "",
        markdown_table(grid_best_rows(table, privacy=privacy_of(grid))),
    ]


def _report_text(studies: Studies, rows: Rows, *, tolerance: float, has_reconstructions: bool) -> str:
    any_study = studies.search or studies.grid or studies.dpsgd
    first = StudyInfo.read(any_study)
    tested = premise(studies.grid) if studies.grid else None  # once: its bootstrap is the report's slowest part
    lines = [
        f"# autoshield report: {any_study.study_name.rsplit('-', 1)[0]}",
        "",
        f"Profile `{first and first.profile}` (fingerprint {first and first.profile_fingerprint}), data "
        f"{first and first.data}"
        + (f", search space `{first.space}`" if first and first.space else "")
        + ". Attack accuracy is the share of "
        "gradient-inversion reconstructions that the reference classifier labels correctly (lower is better). "
        "Model accuracy is, per study: "
        + ", ".join(f"{s.study_name} `{utility(s)}`" for s in studies.present())
        + " (`trained`: clean test accuracy of the network trained on the transformed data; `recognizability`: "
        "the reference classifier's accuracy on the transformed test images, the poster's protocol). Victims are "
        "held-out training images the reference classifier never trained on; a failed reconstruction counts as "
        "not recognised. " + judge_line(studies),
        "",
        *(line for design in study_design_lines(studies) for line in (design, "")),
        *premise_lines(tested),
        *_banners(studies, first),
        *_confirmed_lines(studies),
        "![Pareto front](pareto.png)",
        "",
    ]
    if studies.grid and completed(studies.grid):
        table, rule = best_cells(studies.grid, tolerance=tolerance)
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
            f"Best cell per label. Rule: {rule}.",
            "",
            markdown_table(grid_best_rows(table, privacy=privacy_of(studies.grid))),
            *_pooled_lines(studies.grid, tolerance=tolerance, pools=bool(tested and tested.pools)),
            "Every cell × label, with the victims behind each figure (k/n), the chance floor (what the judge says of "
            "the attack's information-free starts), failed reconstructions and the paired test against Identity: "
            "[cells.md](cells.md) ([cells.csv](cells.csv)).",
            "",
        ]
        if survivors := survivor_rows(studies.grid):
            lines += [
                f"Attacker: `{grid_info and grid_info.attacker}` (the privacy objective is the strongest attacker "
                "per cell). Cells that protect against the naive attacker (significantly fewer victims recognised "
                "than Identity, Holm over cells x labels) and how many still do against attackers that know the "
                "policy:",
                "",
                markdown_table(survivors),
                "Every cell under every attacker, paired with Identity under the same attacker: "
                "[attackers.md](attackers.md) ([attackers.csv](attackers.csv)).",
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
            "Pareto front, each policy paired with the search's Identity trial on the same victims:",
            "",
            markdown_table(pareto_rows(search)),
            "![hypervolume](hypervolume.png)",
            "",
        ]
    if studies.dpsgd and completed(studies.dpsgd):
        records = dp_records(studies.dpsgd)
        lines += ["## DP-SGD baselines", "", f"{dp_title(records)}:", "", markdown_table(dp_rows(records))]
        if loose := loose_guarantees(records):
            listed = ", ".join(f"σ = {r.sigma:g} (ε = {r.epsilon:,.4g})" for r in loose)
            lines += [f"No meaningful privacy guarantee (ε above {LOOSE_EPSILON}): {listed}.", ""]
        lines += [NO_NOISE_NOTE, "", *matched_lines(studies)]
    same = table_utility(studies)
    left_out = [
        f"{study.study_name} (model accuracy `{utility(study)}`)"
        for study in (studies.grid, studies.dpsgd)
        if study and completed(study) and utility(study) != same
    ]
    lines += [
        "## Per label (the poster's comparison)",
        "",
        f"Model accuracy in this table is `{same}`"
        + (f"; left out, as measured on another scale: {', '.join(left_out)}." if left_out else "."),
        "",
        f"Grid best cell: as in the grid section (significant against Identity on that label, within "
        f"{100 * tolerance:.0f} points of its model accuracy). These are found numbers, on the victims the cells were "
        f"selected on. Advantage = model-accuracy gain + attack-accuracy drop against DP-SGD σ = {COMPARE_SIGMA:g}.",
        "",
        markdown_table(rows),
        "Dominance of DP-SGD points by search policies: [dominance.md](dominance.md).",
        "",
    ]
    if has_reconstructions:
        lines += ["## Reconstructions", "", "![reconstructions](reconstructions.png)", ""]
    return "\n".join(lines)
