"""The power of a study's own design, for its header: a design that cannot detect the effect it looks for reports
"no difference" whatever the truth, and a reader should know that before reading its tables (issue #34)."""

from __future__ import annotations

from autoshield.data.cifar import CLASSES
from autoshield.privacy.power import mcnemar_power
from autoshield.report.format import percent
from autoshield.report.studies import Studies, grid_identity, search_identity
from autoshield.study.catalog import completed
from autoshield.study.records import EvaluationRecord, StudyInfo

# The yardstick: a Solarize:9-sized effect against the naive attacker, as `autoshield plan` prices it in the README
# (34 % of victims leaked only under Identity, 8 % only under the cell).
REFERENCE_ONLY_IDENTITY = 0.34
REFERENCE_ONLY_CELL = 0.08


def design_line(*, kind: str, compared: int, victims_per_label: int) -> str | None:
    """One sentence: the power of `compared` cells (grid, per label and overall) or policies (search, overall)
    against Identity on `victims_per_label` victims, Holm over the study's family; None for DP-SGD or nothing
    to compare."""
    if kind not in ("grid", "search") or compared < 1 or victims_per_label < 1:
        return None
    effect = {"only_baseline": REFERENCE_ONLY_IDENTITY, "only_cell": REFERENCE_ONLY_CELL}
    overall = mcnemar_power(victims=victims_per_label * len(CLASSES), family=compared, **effect)
    scope = f"overall {percent(overall)} % (Holm over {compared} {'cells' if kind == 'grid' else 'policies'})"
    if kind == "grid":
        family = compared * len(CLASSES)
        label = mcnemar_power(victims=victims_per_label, family=family, **effect)
        scope = f"per label {percent(label)} % (Holm over {compared} cells x {len(CLASSES)} labels), {scope}"
    return (
        f"design: {victims_per_label} victims per label; power for a Solarize:9-sized effect "
        f"({percent(REFERENCE_ONLY_IDENTITY)} % of victims leaked only under Identity, {percent(REFERENCE_ONLY_CELL)} "
        f"% only under the cell): {scope}; `autoshield plan` sizes a design"
    )


def study_design_lines(studies: Studies) -> list[str]:
    """`design_line` of the name's grid and search as stored: the grid's cells, the search's completed trials, and
    the victims per label its Identity trial was scored on."""
    lines = []
    for study, identity_of in ((studies.grid, grid_identity), (studies.search, search_identity)):
        info = study and StudyInfo.read(study)
        identity = study and completed(study) and identity_of(study)
        if not (info and identity and (outcomes := EvaluationRecord.read(identity).attack.outcomes)):
            continue
        compared = len(info.cells) - 1 if info.kind == "grid" else len(completed(study)) - 1
        victims = len(outcomes.where(0))
        if line := design_line(kind=info.kind, compared=compared, victims_per_label=victims):
            lines.append(f"{study.study_name} {line}.")
    return lines
