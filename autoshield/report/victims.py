"""Every stored attack, one row per victim: the evidence behind a claim, for a reader to recompute.

Reports publish aggregates; a p-value, another correction or another bar for
"recognised" needs the verdicts themselves. A row names where it came from (the
study, the trial or cell, the DP setting, the attacker), which victim it is (pool
slot and training index) and what the judge and the metrics said of it.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna

from autoshield.core.choices import KINDS, Kind
from autoshield.core.config import Profile
from autoshield.core.errors import AutoshieldError
from autoshield.core.files import atomic_path
from autoshield.data.cifar import CLASSES
from autoshield.data.policy import Policy
from autoshield.evaluation.judge import AttackResult
from autoshield.study.catalog import completed, find_study
from autoshield.study.dp_records import DPRecord
from autoshield.study.records import AttackRecord, ConfirmationRecord, EvaluationRecord, StudyInfo
from autoshield.study.storage import study_name


@dataclass(frozen=True)
class VictimRow:
    """One victim under one attack. Empty text where a study stored before the field has none."""

    study: str
    profile: str
    fingerprint: str  # the profile's fingerprint: rows pair only within one
    source: str  # the grid's cell, "trial N" of a search, "sigma S" of DP-SGD, "confirm: <who>" of `confirm`
    setting: str  # "" for policies; DP-SGD: noised | weights | control | identity; `attack --csv`: also null
    attacker: str
    slot: str  # the victim's slot in the held-out pool (slots [0, k) are a study's, later ones `confirm`'s)
    index: int  # the training-split index: the pairing key
    label: str
    cell: str  # the cell the policy applied to this victim's label
    recognised: int
    judged: str  # the judge's label for the reconstruction ("failed": non-finite)
    p_true: str  # the judge's probability for the true label
    floor: int  # the judge gives the attack's information-free start the true label (the chance floor)
    recognisable: int  # the judge recognises the transformed image itself
    psnr_original: str
    psnr_transformed: str
    ssim_original: str
    ssim_transformed: str
    sign_right: str  # the adaptive attacker kept the client's sign: 1/0, "" no guess or not stored
    rank: str  # the victim's rank in the identification line-up (1: singled out); "" not ranked
    failed: int
    seconds: str  # the attack's wall time shared over its victims (they are reconstructed jointly); 0 if cached


COLUMNS = tuple(f.name for f in dataclasses.fields(VictimRow))


def _number(value: float, digits: int) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _rows(
    record: AttackRecord, *, head: dict[str, str], policy: Policy, attacker: str, setting: str = ""
) -> Iterator[VictimRow]:
    """The victims of one stored attack; none when it predates per-victim storage."""
    outcomes = record.outcomes
    if outcomes is None:
        return
    n = len(outcomes.victims)
    share = "" if record.seconds is None else _number(record.seconds / n, 3)

    def column(values: tuple, i: int, missing: str = "") -> object:
        return values[i] if i < len(values) else missing

    for i, (index, label) in enumerate(zip(outcomes.victims, outcomes.labels, strict=True)):
        slot, sign, sure = (
            column(outcomes.slots, i, -1),
            column(outcomes.sign_right, i, -1),
            column(outcomes.true_probability, i, math.nan),
        )
        yield VictimRow(
            **head,
            setting=setting,
            attacker=attacker,
            slot="" if slot == -1 else str(slot),
            index=index,
            label=CLASSES[label],
            cell=str(policy.cells[label]),
            recognised=int(outcomes.recognised[i]),
            judged="failed" if outcomes.predicted[i] < 0 else CLASSES[outcomes.predicted[i]],
            p_true=_number(sure, 4),
            floor=int(outcomes.floor[i]),
            recognisable=int(outcomes.recognisable[i]),
            psnr_original=_number(outcomes.psnr_original[i], 3),
            psnr_transformed=_number(outcomes.psnr_transformed[i], 3),
            ssim_original=_number(outcomes.ssim_original[i], 4),
            ssim_transformed=_number(outcomes.ssim_transformed[i], 4),
            sign_right="" if sign == -1 else str(sign),
            rank=str(column(outcomes.rank, i)),
            failed=int(outcomes.failed[i]),
            seconds=share,
        )


def attack_rows(
    attack: AttackResult, *, profile: Profile, source: str, policy: Policy, attacker: str, setting: str = ""
) -> list[VictimRow]:
    """One attack outside a study (`autoshield attack --csv`), in a study export's columns, so that the two pair
    by training index."""
    head = {"study": "", "profile": profile.name, "fingerprint": profile.fingerprint(), "source": source}
    return list(_rows(AttackRecord.of(attack), head=head, policy=policy, attacker=attacker, setting=setting))


def _study_rows(study: optuna.Study, kind: Kind) -> Iterator[VictimRow]:
    info = StudyInfo.read(study)
    base = {
        "study": study.study_name,
        "profile": info.profile if info else "",
        "fingerprint": info.profile_fingerprint if info else "",
    }
    for trial in completed(study):
        if kind == "dpsgd":
            dp = DPRecord.read(trial)
            head = {**base, "source": f"sigma {dp.sigma:g}"}
            settings = {"noised": dp.noised, "weights": dp.weights, "control": dp.control, "identity": dp.identity}
            for setting, record in settings.items():
                if record is not None:
                    yield from _rows(record, head=head, policy=Policy.identity(), attacker="naive", setting=setting)
            continue
        evaluation = EvaluationRecord.read(trial)
        policy = Policy.from_json(evaluation.policy_json)
        source = str(policy.cells[0]) if kind == "grid" else f"trial {trial.number}"
        for attacker, record in evaluation.attacks.items():
            yield from _rows(record, head={**base, "source": source}, policy=policy, attacker=attacker)
    for confirmation in ConfirmationRecord.read_all(study):
        head = {**base, "source": f"confirm: {confirmation.source}"}
        policy = Policy.parse(confirmation.policy)
        yield from _rows(confirmation.attack, head=head, policy=policy, attacker=confirmation.attacker)


def victim_rows(*, storage: optuna.storages.BaseStorage, name: str, kinds: tuple[Kind, ...] = KINDS) -> list[VictimRow]:
    """Every victim of every stored attack in `<name>-<kind>` for each kind the storage holds."""
    studies = {kind: study for kind in kinds if (study := find_study(storage, name, kind)) is not None}
    if not studies:
        wanted = " or ".join(repr(study_name(name, kind)) for kind in kinds)
        raise AutoshieldError(f"no study {wanted} in this storage")
    rows = [row for kind, study in studies.items() for row in _study_rows(study, kind)]
    if not rows:
        names = ", ".join(s.study_name for s in studies.values())
        raise AutoshieldError(f"{names} holds no per-victim attack results: nothing to export")
    return rows


def write_victims(rows: list[VictimRow], path: Path) -> None:
    """CSV with a header, written atomically: an interrupted export leaves no half file."""
    with atomic_path(path) as temporary, temporary.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(dataclasses.astuple(row) for row in rows)
