"""Found beside confirmed: what a policy scored where it was selected, and on fresh victims.

The gap between the two columns is the selection bias; headline claims use the
confirmed column only.
"""

from __future__ import annotations

from autoshield.report.format import Rows, percent
from autoshield.study.confirm import confirmed_comparisons
from autoshield.study.records import ConfirmationRecord


def confirmation_rows(records: list[ConfirmationRecord]) -> Rows:
    """One row per confirmed policy, its paired test against Identity on the same fresh victims."""
    comparisons = confirmed_comparisons(records)
    rows = []
    for record in records:
        attack = record.attack
        comparison = comparisons.get((record.policy, None))
        if comparison is None:
            verdict = "baseline" if record.policy == "Identity" else "—"
        else:
            test = comparison.test
            verdict = f"{test.only_cell}/{test.only_baseline}, p Holm {comparison.p_holm:.3g}" + (
                ": fewer recognised" if comparison.significant else ": not significant"
            )
        rows.append(
            {
                "source": record.source,
                "policy": record.policy,
                "found attack %": percent(record.found_attack_accuracy),
                "confirmed attack %": f"{percent(attack.attack_accuracy)} [{percent(attack.attack_accuracy_ci[0])}–"
                f"{percent(attack.attack_accuracy_ci[1])}]",
                "n": str(len(attack.outcomes.victims)) if attack.outcomes else "—",
                "floor %": percent(attack.chance_floor),
                "failed": str(attack.failed_reconstructions),
                "PSNR orig dB": f"{attack.psnr_original:.1f}",
                "vs Identity (only policy/only Id.)": verdict,
            }
        )
    return rows


def confirmed_claims(records: list[ConfirmationRecord]) -> list[str]:
    """The headline sentences: only policies whose confirmed attack accuracy is significantly below Identity's."""
    comparisons = confirmed_comparisons(records)
    lines = []
    for record in records:
        comparison = comparisons.get((record.policy, None))
        if comparison is not None and comparison.significant:
            test = comparison.test
            lines.append(
                f"{record.policy} ({record.source}): attack recognised {test.cell_recognised}/{test.n} fresh victims "
                f"vs Identity's {test.baseline_recognised}/{test.n} (exact McNemar, Holm p = {comparison.p_holm:.3g})"
            )
    return lines or ["No policy is confirmed: none recognised significantly fewer fresh victims than Identity."]
