"""The attackers of one policy side by side: what knowing the policy adds (issue #15, docs/design.md §10)."""

from __future__ import annotations

from collections.abc import Mapping

import optuna

from autoshield.data.cifar import CLASSES
from autoshield.data.policy import IDENTITY
from autoshield.evaluation.judge import AttackResult
from autoshield.privacy.paired import Outcomes, compare
from autoshield.report.format import Rows, interval, percent
from autoshield.study.analysis import compare_all, grid_cells


def attacker_rows(results: Mapping[str, AttackResult]) -> Rows:
    """One row per attacker, each paired with the naive attack on the same victims and starts: exact McNemar on
    the recognised verdicts, Wilcoxon on PSNR against the original. Not corrected for multiplicity: two tests per
    policy, read as the size of what the policy leaks to an attacker who knows it."""
    naive = results.get("naive")
    rows = []
    for name, result in results.items():
        stats = result.overall
        row = {
            "attacker": name,
            "attack acc %": interval(stats.attack_accuracy),
            "floor %": percent(stats.chance_floor.mean),
            "failed": str(stats.failed),
            "PSNR orig dB": f"{stats.psnr_original.mean:.1f}",
            "SSIM orig": f"{stats.ssim_original.mean:.3f}",
            "s attacking": f"{result.seconds:.0f}",
        }
        if naive is not None:
            test = compare(result.outcomes, naive.outcomes)
            versus = name != "naive"
            row |= {
                "k/n vs naive": f"{test.cell_recognised}/{test.n} vs {test.baseline_recognised}/{test.n}",
                "only this / only naive": f"{test.only_cell}/{test.only_baseline}" if versus else "—",
                "p McNemar": f"{test.p_mcnemar:.3g}" if versus else "—",
                "ΔPSNR dB (median)": f"{test.psnr_delta:+.2f}" if versus else "—",
                "p Wilcoxon": f"{test.p_wilcoxon:.3g}" if versus else "—",
            }
        rows.append(row)
    return rows


def _sign_split(outcomes: Outcomes | None) -> tuple[list[bool], list[bool]]:
    """The recognised verdicts of the victims whose sign the adaptive attacker guessed right, and wrong."""
    pairs = list(zip(outcomes.sign_right, outcomes.recognised, strict=True)) if outcomes and outcomes.sign_right else []
    return [bool(seen) for sign, seen in pairs if sign == 1], [bool(seen) for sign, seen in pairs if sign == 0]


def sign_columns(outcomes: Outcomes | None) -> dict[str, str]:
    """How often the adaptive attacker kept the client's secret sign, and its verdicts split by right and wrong
    sign: a wrong sign inverts the op the wrong way (a split that also reflects how well the gradient matched)."""
    right, wrong = _sign_split(outcomes)
    if not right and not wrong:
        return {"sign right": "—", "recognised: right / wrong sign": "—"}
    return {
        "sign right": f"{len(right)}/{len(right) + len(wrong)}",
        "recognised: right / wrong sign": f"{sum(right)}/{len(right)} / {sum(wrong)}/{len(wrong)}",
    }


def sign_line(outcomes: Outcomes | None) -> str | None:
    """`sign_columns` as a sentence, for a terminal whose attackers table has no room for two more columns."""
    right, wrong = _sign_split(outcomes)
    if not right and not wrong:
        return None
    return (
        f"kept the client's sign for {len(right)}/{len(right) + len(wrong)} victims of signed cells "
        f"(recognised {sum(right)}/{len(right)} of them) and the other sign for {len(wrong)} "
        f"(recognised {sum(wrong)}/{len(wrong)})"
    )


def attacker_cell_rows(grid: optuna.Study) -> Rows:
    """Every cell under every attacker the grid scored, each paired with Identity under the same attacker on the
    same victims (exact McNemar, Holm over the cells within each attacker; Wilcoxon on PSNR against the original);
    in a calibrated study, how many labels each attacker scored per cell. Empty unless the grid scored several
    attackers."""
    cells = grid_cells(grid)
    identity = cells.get(IDENTITY)
    if identity is None or len(identity.evaluation.attacks) < 2:
        return []
    rows = []
    choices = (  # calibrated: which labels each attacker scored, per cell
        {str(c): r.evaluation.choice for c, r in cells.items()} if identity.evaluation.attacker == "calibrated" else {}
    )
    for name, baseline in identity.evaluation.attacks.items():
        scored = {str(c): r.evaluation.attacks[name] for c, r in cells.items() if r.evaluation.attacks.get(name)}
        tests = compare_all(
            {c: a.outcomes for c, a in scored.items() if c != str(IDENTITY)}, baseline.outcomes, labels=(None,)
        )
        for cell, attack in scored.items():
            comparison = tests.get((cell, None))
            test = comparison.test if comparison else None
            rows.append(
                {
                    "cell": cell,
                    "attacker": name,
                    "attack acc %": percent(attack.attack_accuracy),
                    "k/n": f"{test.cell_recognised}/{test.n}" if test else "—",
                    "Identity k/n": f"{test.baseline_recognised}/{test.n}" if test else "—",
                    "floor %": percent(attack.chance_floor),
                    "PSNR orig dB": f"{attack.psnr_original:.1f}",
                    "SSIM orig": f"{attack.ssim_original:.3f}",
                    "p Holm": f"{comparison.p_holm:.3g}" if comparison else "—",
                    "protects": ("yes" if comparison.significant else "no") if comparison else "—",
                    "ΔPSNR dB vs Identity": f"{test.psnr_delta:+.2f}" if test else "—",
                    "p Wilcoxon": f"{test.p_wilcoxon:.3g}" if test else "—",
                    "s attacking": "—" if attack.seconds is None else f"{attack.seconds:.0f}",
                    **sign_columns(attack.outcomes),
                    **({"labels facing it": _facing(choices[cell], name)} if choices else {}),
                }
            )
    order = [str(cell) for cell in cells]
    return sorted(rows, key=lambda row: order.index(row["cell"]))


def survivor_rows(grid: optuna.Study) -> Rows:
    """Per label (and over all labels), the grid cells that protect against the naive attacker (recognised
    significantly fewer victims than Identity, Holm over cells x labels) and how many of them still do against each
    attacker that knows the policy, and against the study's objective: the strongest per cell, picked on the scored
    victims themselves (`worst`, an upper bound), or per label on calibration victims (`calibrated`, its own
    column). Empty unless the grid scored several attackers."""
    cells = grid_cells(grid)
    identity = cells.get(IDENTITY)
    if identity is None or len(identity.evaluation.attacks) < 2:
        return []
    others = {cell: record.evaluation for cell, record in cells.items() if cell != IDENTITY}

    def protective(outcomes: dict[str, Outcomes], baseline: Outcomes) -> dict[int | None, set[str]]:
        found: dict[int | None, set[str]] = {}
        for (name, label), comparison in compare_all(outcomes, baseline).items():
            found.setdefault(label, set())
            if comparison.significant:
                found[label].add(name)
        return found

    attackers = list(identity.evaluation.attacks)
    by_attacker = {
        name: protective(
            {str(c): e.attacks[name].outcomes for c, e in others.items() if e.attacks.get(name)},
            identity.evaluation.attacks[name].outcomes,
        )
        for name in attackers
    }
    worst = protective({str(c): e.attack.outcomes for c, e in others.items()}, identity.evaluation.attack.outcomes)
    rows = []
    for label in (*range(len(CLASSES)), None):
        naive = by_attacker.get("naive", {}).get(label, set())
        row = {"label": "overall" if label is None else CLASSES[label], "protect vs naive": _named(naive)}
        for name in attackers:
            if name != "naive":
                row[f"still vs {name}"] = _named(naive & by_attacker[name].get(label, set()))
        if identity.evaluation.attacker != "calibrated":
            row["still vs worst case (upper bound)"] = _named(naive & worst.get(label, set()))
        rows.append(row)
    return rows


def _facing(choice: tuple[str, ...], attacker: str) -> str:
    """How many labels a calibrated study scored by `attacker` on one cell ("calibrated": all of them)."""
    return str(len(choice) if attacker == "calibrated" else sum(a == attacker for a in choice))


def _named(cells: set[str]) -> str:
    return f"{len(cells)}" + (f" ({', '.join(sorted(cells))})" if cells else "")
