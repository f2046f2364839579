"""Every table autoshield shows, built once as rows: the CLI prints them, reports write them to Markdown/CSV."""

from __future__ import annotations

import optuna

from autoshield.data.cifar import CLASSES
from autoshield.data.policy import Policy
from autoshield.evaluation.evaluate import AttackResult
from autoshield.learn.train import Accuracy
from autoshield.report.format import Rows, interval, percent
from autoshield.report.pareto import best_tradeoff, dominates
from autoshield.report.studies import COMPARE_SIGMA, Studies, dp_at
from autoshield.study.analysis import BestCell, best_cells
from autoshield.study.catalog import completed
from autoshield.study.records import DPRecord, EvaluationRecord, policy_of, sigma_of

LOOSE_EPSILON = 100  # above this, ε is no meaningful guarantee (ε ≤ 10 is the usual bar)
NO_NOISE_NOTE = (
    "'no noise' is the same attack on the noised setting's network and victims with exact gradients: where it is "
    "near chance (10 %), a low noised attack accuracy shows the attacker's limit at this profile, not the noise's."
)


def accuracy_rows(policy: Policy, accuracy: Accuracy) -> Rows:
    """Clean test accuracy per label of a network trained on `policy`."""
    rows = [
        {"label": name, "cell": str(cell), "accuracy %": percent(value)}
        for name, cell, value in zip(CLASSES, policy.cells, accuracy.per_label, strict=True)
    ]
    return [*rows, {"label": "overall", "cell": "", "accuracy %": percent(accuracy.overall)}]


def privacy_rows(result: AttackResult, policy: Policy) -> Rows:
    """Per label and overall: what the attack recovered of `policy`'s victims."""
    cells = [str(cell) for cell in policy.cells]
    named = list(zip(CLASSES, cells, result.per_label, strict=True))
    return [
        {
            "label": name,
            "cell": cell,
            "attack acc %": interval(stats.attack_accuracy),
            "PSNR orig dB": f"{stats.psnr_original.mean:.1f}",
            "PSNR x' dB": f"{stats.psnr_transformed.mean:.1f}",
            "SSIM orig": f"{stats.ssim_original.mean:.3f}",
            "recognis. %": percent(stats.recognisability.mean),
            "label rec %": percent(stats.label_recovery.mean),
        }
        for name, cell, stats in [*named, ("overall", "", result.overall)]
    ]


def grid_best_rows(table: list[BestCell]) -> Rows:
    return [
        {
            "label": row.label,
            "op": row.cell.op,
            "magnitude": str(row.cell.magnitude) if row.cell.magnitude else "—",
            "model acc %": percent(row.model_accuracy),
            "attack acc %": percent(row.attack_accuracy),
            "PSNR dB": f"{row.psnr:.1f}",
        }
        for row in table
    ]


def pareto_rows(study: optuna.Study) -> Rows:
    front = sorted(study.best_trials, key=lambda t: -t.values[0])
    rows = []
    for trial in front:
        record = EvaluationRecord.read(trial)
        rows.append(
            {
                "trial": str(trial.number),
                "model acc %": percent(record.model_accuracy),
                "attack acc %": percent(record.attack.attack_accuracy),
                "PSNR dB": f"{record.attack.psnr_original:.1f}",
                "policy": record.policy,
            }
        )
    return rows


def dp_records(study: optuna.Study, sigmas: set[float] | None = None) -> list[DPRecord]:
    """The study's DP-SGD results in σ order (only the asked σ values when given)."""
    trials = sorted(completed(study), key=sigma_of)
    return [DPRecord.read(t) for t in trials if sigmas is None or sigma_of(t) in sigmas]


def dp_rows(records: list[DPRecord]) -> Rows:
    return [
        {
            "σ": f"{r.sigma:g}",
            "ε (RDP)": f"{r.epsilon:,.4g}",
            "model %": percent(r.model_accuracy),
            "attack % noised": percent(r.noised.attack_accuracy),
            "attack % weights": percent(r.weights.attack_accuracy),
            "attack % no noise": percent(r.control.attack_accuracy if r.control else None),
            "PSNR dB noised": f"{r.noised.psnr_original:.1f}",
            "PSNR dB weights": f"{r.weights.psnr_original:.1f}",
            "minutes": f"{(r.train_seconds + r.attack_seconds) / 60:.1f}",
        }
        for r in records
    ]


def dp_title(records: list[DPRecord]) -> str:
    deltas = ", ".join(sorted({f"{r.delta:g}".replace("e-0", "e-") for r in records}))
    norms = ", ".join(sorted({f"{r.max_grad_norm:g}" for r in records}))
    return f"DP-SGD baselines (δ = {deltas}, C = {norms}, RDP accountant)"


def loose_guarantees(records: list[DPRecord]) -> list[DPRecord]:
    """The σ values whose ε is no meaningful guarantee."""
    return [r for r in records if r.epsilon > LOOSE_EPSILON]


def per_label_rows(studies: Studies, *, tolerance: float) -> Rows:
    """The poster's table: per label, grid best cell, search choice, and DP-SGD at COMPARE_SIGMA beside them."""
    grid = best_cells(studies.grid, tolerance=tolerance)[0] if studies.grid and completed(studies.grid) else None
    chosen = best_tradeoff(studies.search) if studies.search and completed(studies.search) else None
    chosen_record = EvaluationRecord.read(chosen) if chosen else None
    dp_trial = dp_at(studies, COMPARE_SIGMA)
    dp = DPRecord.read(dp_trial) if dp_trial else None
    dp_name = f"DP σ={COMPARE_SIGMA:g}"
    rows = []
    for i, label in enumerate(CLASSES):
        row = {"label": label}
        if grid:
            row |= {
                "grid cell": str(grid[i].cell),
                "grid model %": percent(grid[i].model_accuracy),
                "grid attack %": percent(grid[i].attack_accuracy),
            }
        if chosen_record:
            model = chosen_record.model_accuracy_per_label[i]
            attack = chosen_record.attack.attack_accuracy_per_label[i]
            cell = str(policy_of(chosen).cells[i])
            row |= {"search cell": cell, "search model %": percent(model), "search attack %": percent(attack)}
        if dp:
            dp_model = dp.model_accuracy_per_label[i]
            dp_attack = dp.noised.attack_accuracy_per_label[i]
            row |= {f"{dp_name} model %": percent(dp_model), f"{dp_name} attack %": percent(dp_attack)}
            if chosen_record:
                advantage = (model - dp_model) + (dp_attack - attack)
                beats = model >= dp_model and attack <= dp_attack
                row |= {"advantage (pts)": f"{100 * advantage:+.1f}", "beats DP on both": "yes" if beats else "no"}
        rows.append(row)
    return rows


def dominance_lines(studies: Studies) -> list[str]:
    if not (studies.dpsgd and studies.search):
        return ["(needs both a DP-SGD baseline study and a search study)"]
    lines = []
    for dp in dp_records(studies.dpsgd):
        dp_values = dp.objectives()
        winners = [t for t in completed(studies.search) if dominates(t.values, dp_values)]
        lines.append(
            f"## DP-SGD σ = {dp.sigma:g} (ε = {dp.epsilon:,.4g}): model "
            f"{percent(dp_values[0])} %, attack {percent(dp_values[1])} %"
        )
        if not winners:
            lines.append("\nNo search policy dominates it.\n")
            continue
        lines.append(f"\n{len(winners)} search policies dominate it:\n")
        lines.append("| trial | model % (margin) | attack % (margin) | policy |")
        lines.append("|---|---|---|---|")
        for t in sorted(winners, key=lambda t: -(t.values[0] - t.values[1])):
            policy = EvaluationRecord.read(t).policy
            lines.append(
                f"| {t.number} | {percent(t.values[0])} ({100 * (t.values[0] - dp_values[0]):+.1f}) | "
                f"{percent(t.values[1])} ({100 * (t.values[1] - dp_values[1]):+.1f}) | {policy} |"
            )
        lines.append("")
    return lines
