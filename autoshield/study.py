"""Optuna studies: storage, the exhaustive grid, the per-label search.

One storage holds `<name>-grid`, `<name>-search` and `<name>-dpsgd`. Every
evaluation is a trial with values (model accuracy, attack accuracy). Workers
on one or many machines share a study through the storage; each worker runs
`run_worker`, which takes one trial at a time, so the number of completed
trials is exactly the target however many workers there are, and a killed
worker's trial is failed by the heartbeat and retried by a survivor.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import sqlite3
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, Trial, TrialState

from autoshield.cache import AttackCache
from autoshield.config import Profile
from autoshield.data import CLASSES, Cifar10, cache_dir, load_cifar10
from autoshield.errors import AutoshieldError
from autoshield.evaluate import AttackResult, DPEvaluation, Evaluation, evaluate_dpsgd, evaluate_policy
from autoshield.metrics import reference_classifier
from autoshield.policy import Cell, Policy, SearchSpace
from autoshield.runtime import resolve_device

DEFAULT_STORAGE = "sqlite:///studies/autoshield.db"
DIRECTIONS = ("maximize", "minimize")
METRIC_NAMES = ("model_accuracy", "attack_accuracy")
SAMPLERS = ("tpe", "nsga2", "gp", "random")
SIGMA_RANGE = (1e-3, 1e3)  # DP-SGD noise multipliers a baseline study accepts
MAX_CONSECUTIVE_FAILURES = 3
HEARTBEAT_SECONDS = 10
GRACE_SECONDS = 30
INFO_ATTR = "autoshield"  # study user attr holding the StudyInfo it was created with

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeat, metric names


def redact(url: str) -> str:
    """The storage URL safe to print: any password replaced by ***."""
    if "://" not in url or "@" not in url:
        return url
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is printed without its credentials part
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[-1]}"


def _check_sqlite_file(url: str) -> None:
    """Refuse a file that is not SQLite, or a SQLite database of another program, before Optuna writes to it.

    The check opens the file read-write (never creating it) because a worker killed mid-write leaves a
    hot journal that only a read-write connection can roll back; reading the table list writes nothing else."""
    path = Path(url.removeprefix("sqlite:///"))
    if not path.exists() or path.stat().st_size == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        return
    try:
        with sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=30) as connection:
            tables = {row[0] for row in connection.execute("select name from sqlite_master where type='table'")}
    except sqlite3.DatabaseError as error:
        raise AutoshieldError(f"{path} is not a usable SQLite database ({error})") from None
    if tables and "studies" not in tables:
        raise AutoshieldError(f"{path} is a SQLite database of another program (no Optuna tables); not touching it")


def open_storage(url: str | None = None, *, heartbeat: bool = True) -> optuna.storages.BaseStorage:
    """`sqlite:///…`, `postgresql+psycopg://…` (any SQLAlchemy URL) or `journal:PATH` for a shared file system."""
    url = url or DEFAULT_STORAGE
    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        _check_sqlite_file(url)
        engine_kwargs = {"connect_args": {"timeout": 120}}  # workers queue for the lock instead of failing
    elif url.startswith("postgresql"):
        engine_kwargs = {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    try:
        return _rdb_storage(url, engine_kwargs, heartbeat)
    except ModuleNotFoundError as error:
        raise AutoshieldError(
            f"storage {redact(url)} needs the '{error.name}' driver: pip install 'autoshield[postgres]'"
        ) from None
    except Exception as error:  # SQLAlchemy/driver errors: one line, never the password
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise AutoshieldError(f"cannot open storage {redact(url)}: {reason.replace(url, redact(url))}") from None


def _rdb_storage(url: str, engine_kwargs: dict[str, Any], heartbeat: bool) -> RDBStorage:
    """RDBStorage, retried when workers starting together race to create the schema of a new database."""
    from sqlalchemy.exc import IntegrityError, OperationalError

    for attempt in range(5):
        try:
            return RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=HEARTBEAT_SECONDS if heartbeat else None,
                grace_period=GRACE_SECONDS if heartbeat else None,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3) if heartbeat else None,
            )
        except (IntegrityError, OperationalError) as error:
            # the other process holds the lock, or created a table between our check and our CREATE
            racing = isinstance(error, IntegrityError) or any(m in str(error) for m in ("locked", "already exists"))
            if not racing or attempt == 4:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def artifact_store(path: Path) -> FileSystemArtifactStore:
    path.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(path))


@dataclass(frozen=True)
class StudyInfo:
    """What a study's numbers depend on; a study refuses a worker whose info differs."""

    kind: str  # grid | search | dpsgd
    space: str
    cells: tuple[str, ...]
    profile: str
    profile_fingerprint: str
    utility: str
    data: str  # data fingerprint


def open_study(
    storage: optuna.storages.BaseStorage,
    *,
    name: str,
    info: StudyInfo,
    sampler: optuna.samplers.BaseSampler | None = None,
) -> optuna.Study:
    """Create or load `<name>-<kind>`; refuse to mix results of another space, profile, data or utility."""
    study_name = f"{name}-{info.kind}"
    study = optuna.create_study(
        storage=storage, study_name=study_name, directions=list(DIRECTIONS), sampler=sampler, load_if_exists=True
    )
    wanted = [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    if study.directions != wanted:
        found = ", ".join(d.name.lower() for d in study.directions)
        raise AutoshieldError(f"study {study_name!r} exists with directions ({found}), not (maximize, minimize)")
    current = info.__dict__ | {"cells": list(info.cells)}
    existing = study.user_attrs.get(INFO_ATTR)
    if existing is None:
        study.set_user_attr(INFO_ATTR, current)
        study.set_metric_names(list(METRIC_NAMES))
    else:
        differing = [k for k in current if existing.get(k) != current[k]]
        if differing:
            details = "; ".join(f"{k}: study has {existing.get(k)!r}, this run {current[k]!r}" for k in differing)
            raise AutoshieldError(f"refusing to mix results in study {study_name!r}: {details}")
    return study


def creation_info(study: optuna.Study) -> dict[str, Any]:
    """The StudyInfo a study was created with (space, cells, profile, utility, data), as stored."""
    return study.user_attrs.get(INFO_ATTR, {})


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


def completed(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def _attack_attrs(attack: AttackResult, prefix: str = "") -> dict[str, Any]:
    overall, per_label = attack.overall, attack.per_label
    return {
        f"{prefix}attack_accuracy": overall.attack_accuracy.mean,
        f"{prefix}attack_accuracy_per_label": [s.attack_accuracy.mean for s in per_label],
        f"{prefix}attack_accuracy_ci": [overall.attack_accuracy.low, overall.attack_accuracy.high],
        f"{prefix}psnr_original": overall.psnr_original.mean,
        f"{prefix}psnr_original_per_label": [s.psnr_original.mean for s in per_label],
        f"{prefix}psnr_transformed": overall.psnr_transformed.mean,
        f"{prefix}ssim_original": overall.ssim_original.mean,
        f"{prefix}ssim_transformed": overall.ssim_transformed.mean,
        f"{prefix}recognisability": overall.recognisability.mean,
        f"{prefix}recognisability_per_label": [s.recognisability.mean for s in per_label],
        f"{prefix}label_recovery": overall.label_recovery.mean,
        f"{prefix}failed_reconstructions": overall.failed,
        f"{prefix}attacks_from_cache": attack.cached,
    }


def _store(
    trial: Trial, attrs: dict[str, Any], sheets: dict[str, AttackResult], store: FileSystemArtifactStore
) -> None:
    """User attrs plus one reconstruction sheet (PNG artifact) per named attack."""
    from autoshield.sheets import reconstruction_sheet

    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    with tempfile.TemporaryDirectory() as folder:
        for name, attack in sheets.items():
            path = Path(folder) / f"trial-{trial.number}-{name}.png"
            reconstruction_sheet(attack, path, title=f"trial {trial.number}: {name}")
            upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=trial, mimetype="image/png")


def record(trial: Trial, evaluation: Evaluation, *, store: FileSystemArtifactStore) -> tuple[float, float]:
    """Store everything about one policy evaluation on its trial; return the two objectives."""
    attrs = {
        "policy": str(evaluation.policy),
        "policy_json": json.dumps(evaluation.policy.as_mapping()),
        "utility": evaluation.utility,
        "model_accuracy_per_label": list(evaluation.model_accuracy_per_label),
        **_attack_attrs(evaluation.attack),
        "train_seconds": evaluation.train_seconds,
        "attack_seconds": evaluation.attack_seconds,
    }
    _store(trial, attrs, {"reconstructions": evaluation.attack}, store)
    return evaluation.model_accuracy, evaluation.attack_accuracy


def record_dpsgd(trial: Trial, evaluation: DPEvaluation, *, store: FileSystemArtifactStore) -> tuple[float, float]:
    """Both threat settings are stored; the study's attack objective is the `noised` one (DESIGN §4)."""
    attrs = {
        "sigma": evaluation.sigma,
        "max_grad_norm": evaluation.max_grad_norm,
        "delta": evaluation.delta,
        "epsilon": evaluation.epsilon,
        "epsilon_prv": evaluation.epsilon_prv,
        "epochs": evaluation.epochs,
        "setting": "noised",
        "model_accuracy_per_label": list(evaluation.model_accuracy_per_label),
        **_attack_attrs(evaluation.noised),
        **_attack_attrs(evaluation.weights, prefix="weights_"),
        **_attack_attrs(evaluation.control, prefix="control_"),
        "train_seconds": evaluation.train_seconds,
        "attack_seconds": evaluation.attack_seconds,
    }
    _store(trial, attrs, {"noised": evaluation.noised, "weights": evaluation.weights}, store)
    return evaluation.model_accuracy, evaluation.noised.overall.attack_accuracy.mean


Objective = Callable[[Trial], tuple[float, float]]


def _surplus(trials: list[FrozenTrial], trial: FrozenTrial, target: int) -> bool:
    """More trials complete or started before this one than the target: this one must not run."""
    ahead = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE or (t.state == TrialState.RUNNING and t.number < trial.number)
    ]
    return len(ahead) >= target


def _queued_twice(trials: list[FrozenTrial], trial: FrozenTrial) -> bool:
    """Workers starting together may queue the same parameters twice; the lower-numbered copy wins."""
    live = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
    params = trial.system_attrs["fixed_params"]
    return any(
        t.number < trial.number and t.state in live and t.system_attrs.get("fixed_params") == params for t in trials
    )


def fail_orphans(study: optuna.Study, storage: optuna.storages.BaseStorage) -> list[int]:
    """Fail and requeue RUNNING trials that never recorded a heartbeat and started over GRACE_SECONDS ago.

    A worker killed between creating its trial and the first heartbeat leaves such a trial; Optuna's
    stale-trial check skips trials without a heartbeat, so without this a grid would wait for it forever."""
    if not isinstance(storage, RDBStorage) or storage.heartbeat_interval is None:
        return []  # no heartbeats at all: a running trial without one proves nothing
    from sqlalchemy import DateTime, bindparam, text

    query = text(
        "select t.trial_id from trials t where t.study_id = :study and t.state = 'RUNNING' and t.datetime_start < "
        ":cutoff and not exists (select 1 from trial_heartbeats h where h.trial_id = t.trial_id)"
    ).bindparams(bindparam("cutoff", type_=DateTime))  # formatted as Optuna stores datetime_start
    study_id = storage.get_study_id_from_name(study.study_name)
    cutoff = datetime.now() - timedelta(seconds=GRACE_SECONDS)  # Optuna writes datetime_start as local time
    with storage.engine.connect() as connection:
        orphans = [row[0] for row in connection.execute(query, {"study": study_id, "cutoff": cutoff})]
    failed = []
    for trial_id in orphans:
        number = storage.get_trial_number_from_id(trial_id)
        if study.tell(number, state=TrialState.FAIL, skip_if_finished=True).state != TrialState.FAIL:
            continue  # its worker was alive after all and finished it
        if callback := storage.get_heartbeat_stale_trial_callback():
            callback(study, storage.get_trial(trial_id))
        failed.append(number)
    return failed


def run_worker(
    study: optuna.Study,
    objective: Objective,
    *,
    storage: optuna.storages.BaseStorage,
    target: int | None,
    on_trial: Callable[[optuna.Study], None] | None = None,
    poll_seconds: float = 2.0,
) -> None:
    """Run trials one at a time until `target` trials are complete, or, with no target, until no
    queued or running trial is left (grid cells, σ values). A trial that fails (NaN, bad numbers)
    is recorded as failed with its reason and the loop goes on, unless `MAX_CONSECUTIVE_FAILURES`
    fail in a row: then the settings themselves are broken and the worker stops with the reason."""
    queue_only = target is None
    failures: list[str] = []

    def guarded(trial: Trial) -> tuple[float, float]:
        trials = study.get_trials(deepcopy=False)
        frozen = next(t for t in trials if t.number == trial.number)
        fixed = "fixed_params" in frozen.system_attrs
        if (not fixed and (queue_only or _surplus(trials, frozen, target))) or (
            fixed and _queued_twice(trials, frozen)
        ):
            trial.set_user_attr("surplus", True)
            raise optuna.TrialPruned("surplus trial: the study already has its trials")
        try:
            values = objective(trial)
        except AutoshieldError as error:
            trial.set_user_attr("fail_reason", str(error))
            failures.append(str(error))
            raise
        failures.clear()
        return values

    while True:
        trials = study.get_trials(deepcopy=False)
        done = sum(t.state == TrialState.COMPLETE for t in trials)
        waiting = sum(t.state == TrialState.WAITING for t in trials)
        running = sum(t.state == TrialState.RUNNING for t in trials)
        if (queue_only and waiting == 0 and running == 0) or (not queue_only and done >= target):
            return
        if waiting == 0 and (queue_only or done + running >= target):
            optuna.storages.fail_stale_trials(study)  # a dead worker's trial comes back as WAITING
            fail_orphans(study, storage)
            time.sleep(poll_seconds)
            continue
        study.optimize(guarded, n_trials=1, catch=(AutoshieldError,))
        if len(failures) >= MAX_CONSECUTIVE_FAILURES:
            raise AutoshieldError(f"{len(failures)} trials in a row failed, stopping; last: {failures[-1]}")
        if on_trial:
            on_trial(study)


def enqueue_once(study: optuna.Study, params: dict[str, str]) -> bool:
    """Queue a trial unless one with these parameters is complete, queued or running."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING)):
        if trial.system_attrs.get("fixed_params", trial.params) == params:
            return False
    study.enqueue_trial(params)
    return True


def grid_params(cell: Cell) -> dict[str, str]:
    return {"cell": str(cell)}


def search_params(policy: Policy) -> dict[str, str]:
    return {label: str(cell) for label, cell in zip(CLASSES, policy.cells, strict=True)}


def suggest_policy(trial: Trial, space: SearchSpace) -> Policy:
    """One categorical per label over the space's distinct cells (fixed choice lists)."""
    choices = [str(c) for c in space.cells()]
    return Policy(tuple(Cell.parse(trial.suggest_categorical(label, choices)) for label in CLASSES))


def grid_cell(trial: Trial, space: SearchSpace) -> Cell:
    return Cell.parse(trial.suggest_categorical("cell", [str(c) for c in space.cells()]))


@dataclass(frozen=True)
class BestCell:
    label: str
    cell: Cell
    model_accuracy: float
    attack_accuracy: float
    psnr: float


def best_cells(study: optuna.Study, *, tolerance: float) -> tuple[list[BestCell], str]:
    """Per label, the grid cell with the lowest attack accuracy among those whose per-label model
    accuracy stays within `tolerance` of the reference (Identity, else the best cell); ties go to
    the higher model accuracy. Returns the table and the rule in words."""
    results: dict[str, FrozenTrial] = {}
    for trial in completed(study):
        results.setdefault(trial.params["cell"], trial)
    if not results:
        raise AutoshieldError(f"study {study.study_name!r} has no completed grid cells")
    rule_reference = "Identity" if "Identity" in results else "the best cell"
    table = []
    for i, label in enumerate(CLASSES):
        accuracy = {cell: t.user_attrs["model_accuracy_per_label"][i] for cell, t in results.items()}
        reference = accuracy["Identity"] if "Identity" in results else max(accuracy.values())
        allowed = [cell for cell in results if accuracy[cell] >= reference - tolerance]
        attack = {cell: results[cell].user_attrs["attack_accuracy_per_label"][i] for cell in allowed}
        best = min(allowed, key=lambda cell: (attack[cell], -accuracy[cell]))
        psnr = results[best].user_attrs["psnr_original_per_label"][i]
        table.append(BestCell(label, Cell.parse(best), accuracy[best], attack[best], psnr))
    rule = (
        f"per label: lowest attack accuracy among cells whose model accuracy on that label is within "
        f"{100 * tolerance:.0f} points of {rule_reference}'s; ties broken by higher model accuracy"
    )
    return table, rule


def best_policy(table: list[BestCell]) -> Policy:
    return Policy(tuple(row.cell for row in table))


@dataclass(frozen=True)
class Job:
    """Everything a worker process needs to join a study (picklable)."""

    kind: str  # grid | search | dpsgd
    storage: str
    name: str
    space: SearchSpace
    profile: Profile
    data_root: str | None
    artifacts: str
    utility: str = "trained"
    trials: int = 0  # search only
    sampler: str = "tpe"
    tolerance: float = 0.05
    sigmas: tuple[float, ...] = ()  # dpsgd only
    max_grad_norm: float = 1.0  # dpsgd only


def _context(job: Job, data: Cifar10 | None) -> tuple[Cifar10, torch.nn.Module, torch.device, AttackCache]:
    data = data or load_cifar10(job.data_root)
    device = resolve_device(job.profile.device)
    reference = reference_classifier(data, job.profile, device=device).model
    return data, reference, device, AttackCache(cache_dir() / "attacks")


def target_trials(job: Job) -> int:
    """Completed trials a finished study has: one per cell, per σ, or --trials."""
    if job.kind == "grid":
        return len(job.space.cells())
    if job.kind == "dpsgd":
        return len(set(job.sigmas))
    return job.trials


def finished(job: Job, study: optuna.Study) -> int:
    """Completed trials that count towards `target_trials` (a rerun may ask for fewer σ than are done)."""
    trials = completed(study)
    if job.kind == "dpsgd":
        return sum(t.params.get("sigma") in job.sigmas for t in trials)
    return len(trials)


def study_info(job: Job, data: Cifar10) -> StudyInfo:
    dpsgd = job.kind == "dpsgd"
    return StudyInfo(
        kind=job.kind,
        space="" if dpsgd else job.space.name,
        cells=() if dpsgd else tuple(str(c) for c in job.space.cells()),
        profile=job.profile.name,
        profile_fingerprint=job.profile.fingerprint(),
        utility=job.utility,
        data=data.fingerprint,
    )


def work(
    job: Job,
    worker: int = 0,
    on_trial: Callable[[optuna.Study], None] | None = None,
    *,
    data: Cifar10 | None = None,
) -> None:
    """One worker: load data (unless the caller has it) and the cached reference, then take trials
    until the study is done."""
    data, reference, device, cache = _context(job, data)
    sampler = make_sampler(job.sampler, seed=job.profile.seed + 1000 * worker) if job.kind == "search" else None
    storage = open_storage(job.storage)
    study = open_study(storage, name=job.name, info=study_info(job, data), sampler=sampler)
    store = artifact_store(Path(job.artifacts))

    def objective(trial: Trial) -> tuple[float, float]:
        if job.kind == "dpsgd":
            sigma = trial.suggest_float("sigma", SIGMA_RANGE[0], SIGMA_RANGE[1], log=True)
            dp = evaluate_dpsgd(
                sigma=sigma,
                max_grad_norm=job.max_grad_norm,
                data=data,
                profile=job.profile,
                reference=reference,
                device=device,
                cache=cache,
            )
            return record_dpsgd(trial, dp, store=store)
        policy = Policy.uniform(grid_cell(trial, job.space)) if job.kind == "grid" else suggest_policy(trial, job.space)
        evaluation = evaluate_policy(
            policy=policy,
            data=data,
            profile=job.profile,
            reference=reference,
            device=device,
            utility=job.utility,
            cache=cache,
        )
        return record(trial, evaluation, store=store)

    target = job.trials if job.kind == "search" else None
    run_worker(study, objective, storage=storage, target=target, on_trial=on_trial)


def prepare(job: Job, data: Cifar10) -> tuple[optuna.Study, list[str]]:
    """Create or check the study and queue what must run first; returns notes for the user."""
    if job.kind == "dpsgd":
        if not job.sigmas:
            raise AutoshieldError("give at least one --sigma")
        for sigma in job.sigmas:
            if not SIGMA_RANGE[0] <= sigma <= SIGMA_RANGE[1]:
                raise AutoshieldError(f"--sigma must be in [{SIGMA_RANGE[0]}, {SIGMA_RANGE[1]}], got {sigma}")
        if not (math.isfinite(job.max_grad_norm) and job.max_grad_norm > 0):
            raise AutoshieldError(f"--max-grad-norm must be finite and > 0, got {job.max_grad_norm}")
    storage = open_storage(job.storage)
    study = open_study(storage, name=job.name, info=study_info(job, data))
    notes = []
    if job.kind == "dpsgd":
        queued = sum(enqueue_once(study, {"sigma": float(sigma)}) for sigma in sorted(set(job.sigmas)))
        notes.append(f"{queued} of {len(set(job.sigmas))} noise multipliers queued (the others are done or running)")
        return study, notes
    if job.kind == "grid":
        queued = sum(enqueue_once(study, grid_params(cell)) for cell in job.space.cells())
        notes.append(f"{len(job.space.cells())} distinct cells, {len(completed(study))} done, {queued} queued now")
        return study, notes
    if "Identity" in job.space.ops and enqueue_once(study, search_params(Policy.identity())):
        notes.append("queued the Identity policy first")
    grid = _existing_grid(job, data, storage)
    if grid is not None:
        table, _ = best_cells(grid, tolerance=job.tolerance)
        if enqueue_once(study, search_params(best_policy(table))):
            notes.append(f"queued the grid's best-per-label policy: {best_policy(table)}")
    notes.append(f"{len(completed(study))} of {job.trials} trials already complete")
    return study, notes


def _existing_grid(job: Job, data: Cifar10, storage: optuna.storages.BaseStorage) -> optuna.Study | None:
    """The same-named grid study when it was run with this space, profile and data."""
    names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    if f"{job.name}-grid" not in names:
        return None
    grid = optuna.load_study(study_name=f"{job.name}-grid", storage=storage)
    info = creation_info(grid)
    same = info.get("space") == job.space.name and info.get("profile_fingerprint") == job.profile.fingerprint()
    return grid if same and info.get("data") == data.fingerprint and completed(grid) else None


def _threads_per_worker(n_jobs: int) -> int:
    """Split this process's torch threads (the cores, or OMP_NUM_THREADS) so workers never oversubscribe."""
    return max(1, torch.get_num_threads() // n_jobs)


def _child(job: Job, worker: int, threads: int) -> None:
    torch.set_num_threads(threads)
    work(job, worker)


def run(
    job: Job,
    *,
    n_jobs: int = 1,
    on_trial: Callable[[optuna.Study], None] | None = None,
    data: Cifar10 | None = None,
) -> None:
    """Run `n_jobs` workers on this machine (this process is worker 0) until the study is done.

    Child processes are spawned, not forked, so each has its own torch threads; on Ctrl-C every
    worker's trial is marked failed and a rerun of the same command resumes."""
    if n_jobs < 1:
        raise AutoshieldError(f"--n-jobs must be >= 1, got {n_jobs}")
    threads = _threads_per_worker(n_jobs)
    context = multiprocessing.get_context("spawn")
    children = [context.Process(target=_child, args=(job, i, threads), daemon=True) for i in range(1, n_jobs)]
    for child in children:
        child.start()
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        work(job, 0, on_trial, data=data)
        for child in children:
            child.join()
    finally:
        torch.set_num_threads(previous)
        for child in children:
            if child.is_alive():
                child.terminate()
