"""Every table autoshield shows, built once as rows: the CLI prints them, reports write them to Markdown/CSV."""

from __future__ import annotations

import statistics

import optuna
from optuna.trial import FrozenTrial

from autoshield.core.choices import PRIVACY_WORDS
from autoshield.data.cifar import CLASSES
from autoshield.data.policy import Policy
from autoshield.evaluation.judge import AttackResult
from autoshield.learn.train import Accuracy
from autoshield.privacy.paired import compare, holm, scored, significantly_fewer
from autoshield.report.format import Rows, interval, percent
from autoshield.report.pareto import best_tradeoff, dominates
from autoshield.report.studies import COMPARE_SIGMA, Studies, dp_at, incomparable, search_identity, utility
from autoshield.study.analysis import NONE_BETTER, BestCell, best_cells, compare_all, privacy_of
from autoshield.study.catalog import completed
from autoshield.study.dp_records import DPRecord
from autoshield.study.params import policy_of, sigma_of
from autoshield.study.records import EvaluationRecord

LOOSE_EPSILON = 100  # above this, ε is no meaningful guarantee (ε ≤ 10 is the usual bar)
NO_NOISE_NOTE = (
    "'no noise' is the same attack on the noised setting's network and victims with exact gradients (clipping only "
    "scales a gradient, which the attack's cosine ignores); 'Identity' is the Identity policy attacked on the "
    "augmentation side's network, same victims. A DP result is comparable only when its σ = 0 control ('no noise' "
    "for noised, the weights attack itself for weights) reaches Identity minus 10 points; otherwise the attack, not "
    "the noise, failed. SNR is ‖clipped g‖ / (σ·C·√d) per victim: far below 1, the observation is nearly all noise."
)


def accuracy_rows(policy: Policy, accuracy: Accuracy) -> Rows:
    """Clean test accuracy per label of a network trained on `policy`."""
    rows = [
        {"label": name, "cell": str(cell), "accuracy %": percent(value)}
        for name, cell, value in zip(CLASSES, policy.cells, accuracy.per_label, strict=True)
    ]
    return [*rows, {"label": "overall", "cell": "", "accuracy %": percent(accuracy.overall)}]


def _most_common(counts: tuple[int, ...]) -> str:
    """The label the judge gave unrecognised reconstructions most often, with its share."""
    total = sum(counts)
    if not total:
        return "—"
    top = max(range(len(counts)), key=counts.__getitem__)
    return f"{CLASSES[top]} {percent(counts[top] / total)} %"


def _rank(median: float | None, lineup: int) -> str:
    """'median / line-up size': noise sits near the middle, a singled-out victim at 1."""
    return "—" if median is None else f"{median:.0f} / {lineup}"


def privacy_rows(result: AttackResult, policy: Policy) -> Rows:
    """Per label and overall: what the attack recovered of `policy`'s victims, beside the chance floor; and, with no
    judge involved, how often the reconstruction singled its victim out of the line-up (null: 1 / line-up)."""
    cells = [str(cell) for cell in policy.cells]
    named = list(zip(CLASSES, cells, result.per_label, strict=True))
    return [
        {
            "label": name,
            "cell": cell,
            "attack acc %": interval(stats.attack_accuracy),
            "n": str(stats.attack_accuracy.n),
            "floor %": percent(stats.chance_floor.mean),
            "unrecognised judged as": _most_common(stats.unrecognised_as),
            "identified %": percent(stats.identified.mean if stats.identified else None),
            "median rank": _rank(stats.median_rank, stats.lineup),
            "failed": str(stats.failed),
            "PSNR orig dB": f"{stats.psnr_original.mean:.1f}",
            "PSNR x' dB": f"{stats.psnr_transformed.mean:.1f}",
            "SSIM orig": f"{stats.ssim_original.mean:.3f}",
            "recognis. %": percent(stats.recognisability.mean),
            "label rec %": percent(stats.label_recovery.mean),
        }
        for name, cell, stats in [*named, ("overall", "", result.overall)]
    ]


def grid_best_rows(table: list[BestCell], *, privacy: str = "recognition") -> Rows:
    """The best cell per label, or NONE_BETTER; Identity's numbers stand in the rows where no cell qualifies. The
    privacy columns name what the study's objective counts (`study.analysis.privacy_of`)."""
    figure, count = ("attack acc %", "attack k/n") if privacy == "recognition" else ("identified %", "identified k/n")
    rows = []
    for row in table:
        test = row.comparison.test if row.comparison else None
        rows.append(
            {
                "label": row.label,
                "best cell": str(row.cell) if row.significant else NONE_BETTER,
                "model acc %": percent(row.model_accuracy),
                figure: percent(row.attack_accuracy),
                "floor %": percent(row.floor),
                "failed": "—" if row.failed is None else str(row.failed),
                count: f"{test.cell_recognised}/{test.n}" if test else "—",
                "Identity k/n": f"{test.baseline_recognised}/{test.n}" if test else "—",
                "p Holm": f"{row.comparison.p_holm:.3g}" if row.comparison else "—",
                "PSNR dB": f"{row.psnr:.1f}",
            }
        )
    return rows


def pareto_rows(study: optuna.Study) -> Rows:
    """The Pareto front, each policy paired with the search's Identity trial on the same victims. The front was
    selected on these victims, so Holm runs over every completed trial, not the front alone, and the figures
    stay exploratory until `confirm` re-scores them on fresh victims."""
    front = sorted(study.best_trials, key=lambda t: -t.values[0])
    records = {t.number: EvaluationRecord.read(t) for t in completed(study)}
    identity = _search_identity_record(study)
    comparisons = {}
    if identity is not None and identity.attack.outcomes is not None:
        privacy = privacy_of(study)
        outcomes = {
            r.policy: scored(r.attack.outcomes, privacy)
            for r in records.values()
            if r.attack.outcomes and r.policy != identity.policy
        }
        comparisons = compare_all(outcomes, scored(identity.attack.outcomes, privacy), labels=(None,))
    family = f"p Holm vs Identity (over {len(comparisons)} trials)"
    rows = []
    for trial in front:
        record = records[trial.number]
        comparison = comparisons.get((record.policy, None))
        rows.append(
            {
                "trial": str(trial.number),
                "model acc %": percent(record.model_accuracy),
                SHORTCUT: worst_label_drop(record, identity),
                "attack acc %": percent(record.attack.attack_accuracy),
                "floor %": percent(record.attack.chance_floor),
                "failed": str(record.attack.failed_reconstructions),
                "identified %": percent(record.attack.identified),
                family: f"{comparison.p_holm:.3g}{' fewer*' if comparison.significant else ''}" if comparison else "—",
                "PSNR dB": f"{record.attack.psnr_original:.1f}",
                "policy": record.policy,
            }
        )
    return rows


SHORTCUT = "worst label vs Identity (pts)"


def worst_label_drop(record: EvaluationRecord, identity: EvaluationRecord | None) -> str:
    """The label whose clean accuracy the policy costs most against the search's Identity trial, in points: a
    per-label policy may teach a shortcut (the transform itself names the label) that clean test images lack
    (issue #37 item 2), and the overall accuracy hides it."""
    if identity is None or record.policy == identity.policy:
        return "—"
    drops = [a - b for a, b in zip(record.model_accuracy_per_label, identity.model_accuracy_per_label, strict=True)]
    worst = min(range(len(drops)), key=lambda i: drops[i])
    return f"{100 * drops[worst]:+.1f} ({CLASSES[worst]})"


def _search_identity_record(search: optuna.Study) -> EvaluationRecord | None:
    trial = search_identity(search)
    return EvaluationRecord.read(trial) if trial else None


def dp_records(study: optuna.Study, sigmas: set[float] | None = None) -> list[DPRecord]:
    """The study's DP-SGD results in σ order (only the asked σ values when given)."""
    trials = sorted(completed(study), key=sigma_of)
    return [DPRecord.read(t) for t in trials if sigmas is None or sigma_of(t) in sigmas]


NOT_COMPARABLE = "not comparable: the attack fails on this network even without noise"


def comparability(record: DPRecord, setting: str) -> str:
    """The gate of a DP attack result (`evaluation.dpsgd`), as a reader should see it."""
    verdict = record.comparable(setting)
    if verdict is None:
        return "not gated (study predates the control)"
    return "comparable" if verdict else NOT_COMPARABLE


def _median(values: tuple[float, ...]) -> str:
    return f"{statistics.median(values):.2g}" if values else "—"


def dp_rows(records: list[DPRecord]) -> Rows:
    return [
        {
            "σ": f"{r.sigma:g}",
            "ε (RDP)": f"{r.epsilon:,.4g}",
            "network": r.norm or "group (old)",
            "model %": percent(r.model_accuracy),
            "non-private %": percent(r.nonprivate_accuracy),
            "attack % noised": percent(r.noised.attack_accuracy),
            "floor %": percent(r.noised.chance_floor),
            "identified % noised": percent(r.noised.identified),
            "no noise %": percent(r.control.attack_accuracy if r.control else None),
            "Identity %": percent(r.identity.attack_accuracy if r.identity else None),
            "noised is": comparability(r, "noised"),
            "attack % weights": percent(r.weights.attack_accuracy),
            "weights is": comparability(r, "weights"),
            "SNR (median)": _median(r.signal_to_noise),
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


def table_utility(studies: Studies) -> str:
    """The one utility the per-label table uses: the search's if there is one, else the grid's, else trained."""
    first = next((s for s in (studies.search, studies.grid) if s and completed(s)), None)
    return utility(first) if first else "trained"


def per_label_rows(studies: Studies, *, tolerance: float) -> Rows:
    """The poster's table: per label, grid best cell, search choice, and DP-SGD at COMPARE_SIGMA beside them.

    One utility per table (`table_utility`): a grid or DP-SGD study scored by another one is left out (DP-SGD's
    is always trained accuracy), so a recognisability figure never stands beside a trained accuracy."""
    same = table_utility(studies)
    grid = None
    grid_privacy = "recognition"
    if studies.grid and completed(studies.grid) and utility(studies.grid) == same:
        grid = best_cells(studies.grid, tolerance=tolerance)[0]
        grid_privacy = privacy_of(studies.grid)
    chosen = best_tradeoff(studies.search) if studies.search and completed(studies.search) else None
    chosen_record = EvaluationRecord.read(chosen) if chosen else None
    versus = _per_label_versus_identity(studies.search, chosen_record) if chosen_record else {}
    identity = _search_identity_record(studies.search) if chosen_record and studies.search else None
    dp_trial = dp_at(studies, COMPARE_SIGMA) if same == "trained" else None
    dp = DPRecord.read(dp_trial) if dp_trial else None
    dp_name = f"DP σ={COMPARE_SIGMA:g}"
    gate = None  # why the search's per-label figures may not be set against DP's, if they may not
    if dp and studies.dpsgd and studies.search:
        gate = incomparable(studies.dpsgd, studies.search) or (
            None if dp.comparable("noised") is not False else NOT_COMPARABLE
        )
    rows = []
    for i, label in enumerate(CLASSES):
        row = {"label": label}
        if grid:
            row |= {
                "grid cell": str(grid[i].cell) if grid[i].significant else NONE_BETTER,
                "grid model %": percent(grid[i].model_accuracy),
                f"grid {PRIVACY_WORDS[grid_privacy].short} %": percent(grid[i].attack_accuracy),
            }
        if chosen_record:
            model = chosen_record.model_accuracy_per_label[i]
            attack = chosen_record.attack.figure(chosen_record.privacy, i)
            cell = str(policy_of(chosen).cells[i])
            row |= {
                "search cell": cell,
                "search model %": percent(model),
                f"search {PRIVACY_WORDS[chosen_record.privacy].short} %": percent(attack),
            }
            if identity is not None and identity.policy != chosen_record.policy:  # a shortcut shows here
                drop = model - identity.model_accuracy_per_label[i]
                row["search model vs Identity (pts)"] = f"{100 * drop:+.1f}"
            if i in versus:
                row["search vs Identity (exploratory)"] = versus[i]
        if dp:
            dp_model = dp.model_accuracy_per_label[i]
            dp_attack = dp.noised.attack_accuracy_per_label[i]
            row |= {f"{dp_name} model %": percent(dp_model), f"{dp_name} attack %": percent(dp_attack)}
            if chosen_record and gate:
                row["beats DP on both"] = gate
            elif chosen_record:
                advantage = (model - dp_model) + (dp_attack - attack)
                beats = model > dp_model and attack < dp_attack  # a tie is not a win
                row |= {"advantage (pts)": f"{100 * advantage:+.1f}", "beats DP on both": "yes" if beats else "no"}
        rows.append(row)
    return rows


def _per_label_versus_identity(search: optuna.Study, chosen: EvaluationRecord) -> dict[int, str]:
    """Per label, the chosen search policy against the search's Identity trial on that label's victims:
    'k/n vs k/n, p' with Holm over the labels. Exploratory: the policy was chosen on these victims."""
    identity = _search_identity_record(search)
    if identity is None or identity.attack.outcomes is None or chosen.attack.outcomes is None:
        return {}
    if chosen.policy == identity.policy:
        return {}
    cell, baseline = (scored(r.attack.outcomes, chosen.privacy) for r in (chosen, identity))
    tests = [compare(cell, baseline, label=i) for i in range(len(CLASSES))]
    adjusted = holm([t.p_mcnemar for t in tests])
    return {
        i: f"{t.cell_recognised}/{t.n} vs {t.baseline_recognised}/{t.n}, p Holm {p:.2g}"
        for i, (t, p) in enumerate(zip(tests, adjusted, strict=True))
    }


def _dominance_table(dp: DPRecord, winners: list[FrozenTrial]) -> list[str]:
    """Search trials that dominate a DP point by their values, each paired with DP's noised attack on the same
    victims (exact McNemar, Holm over the winners): only a significant attack difference supports a claim."""
    records = [EvaluationRecord.read(t) for t in winners]
    tests = [
        compare(r.attack.outcomes, dp.noised.outcomes) if r.attack.outcomes and dp.noised.outcomes else None
        for r in records
    ]
    adjusted = holm([t.p_mcnemar if t else 1.0 for t in tests])
    lines = [
        "| trial | model % (margin) | attack % (margin) | recognised policy / DP (only policy / only DP) | p Holm "
        "| significant | policy |",
        "|---|---|---|---|---|---|---|",
    ]
    values = dp.objectives()
    for t, record, test, p in zip(winners, records, tests, adjusted, strict=True):
        paired = (
            f"{test.cell_recognised}/{test.baseline_recognised} ({test.only_cell}/{test.only_baseline})"
            if test
            else "—"
        )
        verdict = "yes" if test and significantly_fewer(test, p) else "no"
        lines.append(
            f"| {t.number} | {percent(t.values[0])} ({100 * (t.values[0] - values[0]):+.1f}) | "
            f"{percent(t.values[1])} ({100 * (t.values[1] - values[1]):+.1f}) | {paired} | {p:.3g} | {verdict} | "
            f"{record.policy} |"
        )
    return lines


def dominance_lines(studies: Studies) -> list[str]:
    """Which search policies beat each DP-SGD point: only like with like (`incomparable`), only where DP's
    σ = 0 control shows the attack works on this network, and a claim only with paired significance."""
    if not (studies.dpsgd and studies.search):
        return ["(needs both a DP-SGD baseline study and a search study)"]
    if reason := incomparable(studies.dpsgd, studies.search):
        return [f"{reason}; no dominance is claimed."]
    lines = []
    for dp in dp_records(studies.dpsgd):
        dp_values = dp.objectives()
        lines.append(
            f"## DP-SGD σ = {dp.sigma:g} (ε = {dp.epsilon:,.4g}): model "
            f"{percent(dp_values[0])} %, attack {percent(dp_values[1])} %"
        )
        if dp.comparable("noised") is not True:
            lines.append(f"\n{comparability(dp, 'noised')}; no dominance is claimed.\n")
            continue
        winners = [t for t in completed(studies.search) if dominates(t.values, dp_values)]
        if not winners:
            lines.append("\nNo search policy dominates it.\n")
            continue
        winners.sort(key=lambda t: -(t.values[0] - t.values[1]))
        lines.append(
            f"\n{len(winners)} search policies dominate it by their values; a claim needs 'significant' (attack "
            f"accuracy below DP's on the same victims, exact McNemar, Holm over these {len(winners)}; model "
            "accuracy is compared by value):\n"
        )
        lines += [*_dominance_table(dp, winners), ""]
    return lines
