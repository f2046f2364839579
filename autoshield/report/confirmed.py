"""Found beside confirmed: what a policy scored where it was selected, and on fresh victims.

The gap between the two columns is the selection bias; headline claims use the
confirmed column only.
"""

from __future__ import annotations

from autoshield.core.choices import PRIVACY_WORDS
from autoshield.report.format import Rows, percent
from autoshield.study.analysis import Comparison
from autoshield.study.confirm import confirmation_groups, confirmed_comparisons
from autoshield.study.records import ConfirmationRecord


def confirmation_rows(records: list[ConfirmationRecord]) -> Rows:
    """One row per confirmed policy and victim set, its paired test against Identity on the same fresh victims."""
    rows = []
    for group in confirmation_groups(records).values():
        rows += [_row(record, confirmed_comparisons(group)) for record in group]
    return rows


def _row(record: ConfirmationRecord, comparisons: dict[tuple[str, int | None], Comparison]) -> dict[str, str]:
    attack = record.attack
    comparison = comparisons.get((record.policy, None))
    if comparison is None:
        verdict = "baseline" if record.policy == "Identity" else "—"
    else:
        test = comparison.test
        verdict = f"{test.only_cell}/{test.only_baseline}, p Holm {comparison.p_holm:.3g}" + (
            f": fewer {_counted(record)}" if comparison.significant else ": not significant"
        )
    low, high = attack.attack_accuracy_ci
    return {
        "source": record.source,
        "policy": record.policy,
        "victims/label": str(record.victims_per_label),
        f"found {'attack' if record.privacy == 'recognition' else 'identified'} %": percent(
            record.found_attack_accuracy
        ),
        "confirmed attack %": f"{percent(attack.attack_accuracy)} [{percent(low)}–{percent(high)}]",
        "confirmed identified %": percent(attack.identified),
        "floor %": percent(attack.chance_floor),
        "failed": str(attack.failed_reconstructions),
        "PSNR orig dB": f"{attack.psnr_original:.1f}",
        "vs Identity (only policy/only Id.)": verdict,
    }


def confirmed_claims(records: list[ConfirmationRecord]) -> list[str]:
    """The headline sentences: only policies whose confirmed attack accuracy is significantly below Identity's."""
    lines = []
    for group in confirmation_groups(records).values():
        comparisons = confirmed_comparisons(group)
        for record in group:
            comparison = comparisons.get((record.policy, None))
            if comparison is not None and comparison.significant:
                test = comparison.test
                lines.append(
                    f"{record.policy} ({record.source}): attack {_counted(record)} {test.cell_recognised}/{test.n} "
                    f"fresh victims vs Identity's {test.baseline_recognised}/{test.n} (exact McNemar, Holm p = "
                    f"{comparison.p_holm:.3g})"
                )
    return lines or [
        "No policy is confirmed: none was attacked significantly less successfully than Identity on fresh victims."
    ]


def _counted(record: ConfirmationRecord) -> str:
    return PRIVACY_WORDS[record.privacy].counted
