"""The three kinds of study, as objects: the exhaustive grid, the per-label search, the DP-SGD baselines.

A job owns everything that differs between kinds: how many trials a finished
study has, what `prepare` queues first, which sampler proposes trials, the
objective that evaluates one, and the info a study is created with. The worker
loop (`worker`) and the processes (`launch`) never ask which kind they run.
Jobs are frozen and picklable: `--n-jobs` hands them to spawned processes.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import optuna
import torch
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.trial import Trial, TrialState

from autoshield.core.choices import DEFAULT_TOLERANCE, PRIVACY_CHOICES, SAMPLERS, UTILITIES
from autoshield.core.config import Profile
from autoshield.core.errors import AutoshieldError
from autoshield.core.runtime import phase
from autoshield.data.cifar import Cifar10
from autoshield.data.effects import identity_equivalent
from autoshield.data.policy import IDENTITY, Cell, Policy
from autoshield.data.spaces import SearchSpace
from autoshield.data.victims import require_calibration
from autoshield.dp.config import require_private_trainable
from autoshield.evaluation.attackers import attackers_of
from autoshield.evaluation.dpsgd import evaluate_dpsgd
from autoshield.evaluation.evaluate import evaluate_policy
from autoshield.evaluation.judge import AttackResult
from autoshield.evaluation.sheets import landscape_sheet, reconstruction_sheet
from autoshield.evaluation.table import RowStore
from autoshield.privacy.cache import AttackCache
from autoshield.study.analysis import best_cells, best_policy
from autoshield.study.catalog import completed, enqueue_once, find_study
from autoshield.study.dp_records import DPRecord
from autoshield.study.marks import mark_duplicate
from autoshield.study.params import (
    dp_params,
    grid_params,
    search_params,
    sigma_of,
    suggest_cell,
    suggest_policy,
    suggest_sigma,
)
from autoshield.study.records import EvaluationRecord, StudyInfo
from autoshield.study.worker import Objective

SIGMA_RANGE = (1e-3, 1e3)  # DP-SGD noise multipliers a baseline study accepts
MAX_TRIALS = 100_000  # a search's trial target: far beyond any budget (`paper` trials take GPU-minutes each)
PROBE_IMAGES = 256  # training images a cell must leave unchanged to be merged with Identity


@dataclass(frozen=True)
class Context:
    """What a worker has loaded once and every trial uses."""

    data: Cifar10
    reference: torch.nn.Module
    device: torch.device
    cache: AttackCache
    store: FileSystemArtifactStore
    table: RowStore | None = None  # the study's attack table (`study.attack_table`): a problem judged once


def make_sampler(name: str, *, seed: int) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise AutoshieldError(f"unknown sampler {name!r}; choose from {', '.join(SAMPLERS)}")


def upload_sheets(trial: Trial, sheets: dict[str, AttackResult], store: FileSystemArtifactStore) -> None:
    """Reconstruction sheets (PNG artifacts) per named attack, shown by optuna-dashboard: a wide one that its
    thumbnail keeps legible, then the full portrait one."""
    with tempfile.TemporaryDirectory() as folder:
        for name, attack in sheets.items():
            wide = Path(folder) / f"trial-{trial.number}-{name}-wide.png"
            full = Path(folder) / f"trial-{trial.number}-{name}.png"
            landscape_sheet(attack, wide, title=f"trial {trial.number}: {name}")
            reconstruction_sheet(attack, full, title=f"trial {trial.number}: {name}")
            for path in (wide, full):
                upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=trial, mimetype="image/png")


@dataclass(frozen=True, kw_only=True)
class Job(ABC):
    """Where a study lives and what its numbers depend on; subclasses say what a trial is."""

    kind: ClassVar[str]
    storage: str
    name: str  # study name prefix
    profile: Profile
    data_root: str | None = None
    artifacts: str

    @abstractmethod
    def total(self, study: optuna.Study) -> int:
        """Completed trials a finished study has."""

    def target(self) -> int | None:
        """Completed trials at which workers stop; None: when nothing is queued or running."""
        return None

    def finished(self, study: optuna.Study) -> int:
        """Completed trials that count towards `total`."""
        return len(completed(study))

    @abstractmethod
    def info(self, data: Cifar10) -> StudyInfo:
        """What the study is created with, and checked against when a worker joins."""

    def sampler(self, worker: int, *, started: int) -> optuna.samplers.BaseSampler | None:
        """The sampler of `worker` joining a study that holds `started` trials (None: the study's default)."""
        return None

    @abstractmethod
    def prepare(self, study: optuna.Study, storage: optuna.storages.BaseStorage, data: Cifar10) -> list[str]:
        """Queue what must run first; returns notes for the user."""

    @abstractmethod
    def evaluate(self, trial: Trial, context: Context) -> tuple[EvaluationRecord | DPRecord, dict[str, AttackResult]]:
        """Evaluate the trial's parameters: the record to store and the attacks to draw, by sheet name."""

    def objective(self, context: Context) -> Objective:
        """Evaluate one trial, store its record and reconstruction sheets, return its two objectives."""

        def run(trial: Trial) -> tuple[float, float]:
            record, sheets = self.evaluate(trial, context)
            phase(f"storing trial {trial.number}")
            record.write(trial)
            upload_sheets(trial, sheets, context.store)
            return record.objectives()

        return run


@dataclass(frozen=True, kw_only=True)
class _PolicyJob(Job):
    """Grid and search: policies drawn from a space, judged by one utility and scored against one attacker
    choice (`evaluation.attackers`)."""

    space: SearchSpace
    utility: str = "trained"
    attacker: str = "naive"
    privacy: str = "recognition"

    def __post_init__(self) -> None:
        if self.utility not in UTILITIES:
            raise AutoshieldError(f"unknown utility {self.utility!r} ({', '.join(UTILITIES)})")
        if self.privacy not in PRIVACY_CHOICES:
            raise AutoshieldError(f"unknown privacy objective {self.privacy!r} ({', '.join(PRIVACY_CHOICES)})")
        attackers_of(self.attacker)  # an unknown attacker fails before anything is written
        if self.attacker == "calibrated":
            require_calibration(self.profile)  # as does a pool too small to calibrate on

    def cells(self, data: Cifar10) -> list[Cell]:
        """Identity (the baseline every paired test needs, added when the space lacks it), then the space's
        cells without those that leave the data's images unchanged (merged with Identity)."""
        return self._kept(self.merged(data))

    def merged(self, data: Cifar10) -> list[Cell]:
        """The space's cells that are Identity under another name, judged on the first training images."""
        return identity_equivalent(self.space.cells(), data.train.images[:PROBE_IMAGES])

    def _kept(self, merged: list[Cell]) -> list[Cell]:
        return [IDENTITY, *(cell for cell in self.space.cells() if cell not in merged and cell != IDENTITY)]

    def info(self, data: Cifar10) -> StudyInfo:
        merged = self.merged(data)
        return StudyInfo(
            kind=self.kind,
            space=self.space.name,
            cells=tuple(str(c) for c in self._kept(merged)),
            profile=self.profile.name,
            profile_fingerprint=self.profile.fingerprint(),
            norm=self.profile.norm,
            utility=self.utility,
            data=data.fingerprint,
            merged=tuple(str(c) for c in merged),
            attacker=self.attacker,
            privacy=self.privacy,
        )

    @staticmethod
    def _study_cells(trial: Trial) -> list[Cell]:
        """The cells the study was created with: the samplers' fixed choices, read rather than judged again."""
        info = StudyInfo.read(trial.study)
        if info is None:
            raise AutoshieldError(f"study {trial.study.study_name!r} holds no autoshield info")
        return [Cell.parse(text) for text in info.cells]

    @abstractmethod
    def _policy(self, trial: Trial, cells: list[Cell]) -> Policy:
        """The policy this trial evaluates, drawn from `cells` through the trial's parameters."""

    def refuse_duplicate(self, trial: Trial) -> None:
        """Raise `TrialPruned` when the trial's policy was already evaluated; only a sampler repeats itself (a grid's
        queued cells are deduplicated by the worker)."""
        return None

    def evaluate(self, trial: Trial, context: Context) -> tuple[EvaluationRecord, dict[str, AttackResult]]:
        policy = self._policy(trial, self._study_cells(trial))
        self.refuse_duplicate(trial)
        evaluation = evaluate_policy(
            policy=policy,
            data=context.data,
            profile=self.profile,
            reference=context.reference,
            device=context.device,
            utility=self.utility,
            attacker=self.attacker,
            privacy=self.privacy,
            cache=context.cache,
            table=context.table,
        )
        sheets = {"reconstructions": evaluation.attack}
        if len(evaluation.attacks) > 1:  # the objective's sheet, then every attacker's under its name
            sheets |= {f"reconstructions-{name}": attack for name, attack in evaluation.attacks.items()}
        return EvaluationRecord.of(evaluation), sheets


@dataclass(frozen=True, kw_only=True)
class GridJob(_PolicyJob):
    """Every distinct cell of the space, applied to all labels: one trial per cell."""

    kind: ClassVar[str] = "grid"

    def total(self, study: optuna.Study) -> int:
        info = StudyInfo.read(study)
        return len(info.cells) if info else len(self.space.cells())

    def prepare(self, study: optuna.Study, storage: optuna.storages.BaseStorage, data: Cifar10) -> list[str]:
        merged = self.merged(data)
        cells = self._kept(merged)
        queued = sum(enqueue_once(study, grid_params(cell)) for cell in cells)
        notes = [f"{len(cells)} distinct cells, {len(completed(study))} done, {queued} queued now"]
        if merged:
            notes.append(
                f"merged with Identity (they leave every probed image unchanged): {', '.join(map(str, merged))}"
            )
        return notes

    def _policy(self, trial: Trial, cells: list[Cell]) -> Policy:
        return Policy.uniform(suggest_cell(trial, cells))


@dataclass(frozen=True, kw_only=True)
class SearchJob(_PolicyJob):
    """Per-label policies proposed by a sampler until `trials` are complete; Identity and the grid's best
    per-label policy are queued first."""

    kind: ClassVar[str] = "search"
    trials: int
    sampler_name: str = "tpe"
    tolerance: float = DEFAULT_TOLERANCE

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.trials <= MAX_TRIALS:
            raise AutoshieldError(f"--trials must be from 1 to {MAX_TRIALS:,}, got {self.trials:,}")
        make_sampler(self.sampler_name, seed=0)  # an unknown sampler fails before anything is written

    def total(self, study: optuna.Study) -> int:
        return self.trials

    def target(self) -> int | None:
        return self.trials

    def sampler(self, worker: int, *, started: int) -> optuna.samplers.BaseSampler | None:
        """Seeded by the profile, the worker and the trials the study held when it joined: reproducible, and a
        resumed run or a second machine does not replay the first run's proposals."""
        key = f"{self.profile.seed}:{worker}:{started}".encode()
        return make_sampler(self.sampler_name, seed=int(hashlib.sha256(key).hexdigest()[:8], 16))

    def refuse_duplicate(self, trial: Trial) -> None:
        """A policy with a COMPLETE trial, or one already running under a lower number, is not evaluated again:
        the trial is pruned (it does not count toward --trials) and says which trial it repeats. A FAIL does not
        count as evaluated, so a failed policy may be retried."""
        for other in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
            if other.number == trial.number or other.params != trial.params:
                continue
            if other.state == TrialState.COMPLETE or other.number < trial.number:
                mark_duplicate(trial, other.number)
                raise optuna.TrialPruned(f"the policy of trial {other.number} again")

    def prepare(self, study: optuna.Study, storage: optuna.storages.BaseStorage, data: Cifar10) -> list[str]:
        notes = []
        if enqueue_once(study, search_params(Policy.identity())):
            notes.append("queued the Identity policy first")
        grid = self._existing_grid(storage, data)
        if grid is not None:
            policy = best_policy(best_cells(grid, tolerance=self.tolerance)[0])
            if enqueue_once(study, search_params(policy)):
                notes.append(f"queued the grid's best-per-label policy: {policy}")
        notes.append(f"{len(completed(study))} of {self.trials} trials already complete")
        return notes

    def _existing_grid(self, storage: optuna.storages.BaseStorage, data: Cifar10) -> optuna.Study | None:
        """The same-named grid study when it was run with this space, profile and data."""
        grid = find_study(storage, self.name, "grid")
        if grid is None:
            return None
        info = StudyInfo.read(grid)
        same = (
            info is not None
            and info.space == self.space.name
            and info.profile_fingerprint == self.profile.fingerprint()
            and info.data == data.fingerprint
            and info.attacker == self.attacker
            and info.privacy == self.privacy
        )
        return grid if same and completed(grid) else None

    def _policy(self, trial: Trial, cells: list[Cell]) -> Policy:
        return suggest_policy(trial, cells)


@dataclass(frozen=True, kw_only=True)
class DPJob(Job):
    """DP-SGD at each noise multiplier: one trial per σ."""

    kind: ClassVar[str] = "dpsgd"
    sigmas: tuple[float, ...]
    max_grad_norm: float = 1.0

    def __post_init__(self) -> None:
        if not self.sigmas:
            raise AutoshieldError("give at least one --sigma")
        for sigma in self.sigmas:
            if not SIGMA_RANGE[0] <= sigma <= SIGMA_RANGE[1]:
                raise AutoshieldError(f"--sigma must be in [{SIGMA_RANGE[0]}, {SIGMA_RANGE[1]}], got {sigma}")
        if not (math.isfinite(self.max_grad_norm) and self.max_grad_norm > 0):
            raise AutoshieldError(f"--max-grad-norm must be finite and > 0, got {self.max_grad_norm}")
        require_private_trainable(self.profile.norm)

    def total(self, study: optuna.Study) -> int:
        return len(set(self.sigmas))

    def finished(self, study: optuna.Study) -> int:
        """A rerun may ask for fewer σ than are done: only the asked ones count."""
        return sum(sigma_of(t) in self.sigmas for t in completed(study))

    def info(self, data: Cifar10) -> StudyInfo:
        return StudyInfo(
            kind=self.kind,
            space="",
            cells=(),
            profile=self.profile.name,
            profile_fingerprint=self.profile.fingerprint(),
            norm=self.profile.norm,
            utility="trained",
            data=data.fingerprint,
        )

    def prepare(self, study: optuna.Study, storage: optuna.storages.BaseStorage, data: Cifar10) -> list[str]:
        queued = sum(enqueue_once(study, dp_params(sigma)) for sigma in sorted(set(self.sigmas)))
        return [f"{queued} of {len(set(self.sigmas))} noise multipliers queued (the others are done or running)"]

    def evaluate(self, trial: Trial, context: Context) -> tuple[DPRecord, dict[str, AttackResult]]:
        evaluation = evaluate_dpsgd(
            sigma=suggest_sigma(trial, *SIGMA_RANGE),
            max_grad_norm=self.max_grad_norm,
            data=context.data,
            profile=self.profile,
            reference=context.reference,
            device=context.device,
            cache=context.cache,
        )
        return DPRecord.of(evaluation), {"noised": evaluation.noised, "weights": evaluation.weights}
