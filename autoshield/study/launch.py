"""Worker processes: one command runs one worker per entry of `devices` on this machine until the study is done.

This process is worker 0; the others are spawned (not forked), so each has
its own torch threads and CUDA context, and the machine's threads are split
between them. On Ctrl-C every worker's trial is marked failed and a rerun of
the same command resumes.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import optuna
import torch

from autoshield.core.config import Profile
from autoshield.core.errors import AutoshieldError
from autoshield.core.files import cache_dir
from autoshield.core.interrupts import EXIT_TERMINATED, Terminated, on_sigterm
from autoshield.core.runtime import resolve_device
from autoshield.data.cifar import CLASSES, Cifar10, load_cifar10
from autoshield.privacy.cache import AttackCache
from autoshield.privacy.judge_file import JudgeFile, JudgeIdentity
from autoshield.privacy.reference import local_judge
from autoshield.study.attack_table import StudyTable
from autoshield.study.catalog import find_study, open_study, refuse_mixing
from autoshield.study.jobs import Context, Job
from autoshield.study.judges import stored_judge, study_judge
from autoshield.study.records import StudyInfo
from autoshield.study.storage import artifact_store, open_storage, quiet_optuna
from autoshield.study.worker import run_worker


def the_judge(job: Job, data: Cifar10, *, device: torch.device, progress: bool = False) -> tuple[JudgeFile, bool]:
    """The judge the job's studies are scored with (`study.judges`): the one stored with them, else this machine's,
    stored now. Returns it and whether this call stored it. A run the job's existing study would refuse is refused
    first, so that a mistaken run never stores its judge for the name."""
    storage = open_storage(job.storage)  # Optuna's tables first: a SQLite file holding only ours would look foreign
    existing = find_study(storage, job.name, job.kind)
    recorded = StudyInfo.read(existing) if existing else None
    if existing is not None and recorded is not None:
        refuse_mixing(existing, dataclasses.replace(job.info(data), judge=recorded.judge))
        if recorded.judge and stored_judge(url=job.storage, name=job.name) is None:
            raise AutoshieldError(
                f"study {existing.study_name!r} was scored by judge {recorded.judge[:12]}, which its storage no "
                f"longer holds: put it back with `autoshield judge import FILE --study {job.name}`"
            )
    return study_judge(
        url=job.storage,
        name=job.name,
        identity=JudgeIdentity.of(data, job.profile),
        local=lambda: local_judge(data, job.profile, device=device, progress=progress),
    )


def prepare(job: Job, data: Cifar10, judge: JudgeFile) -> tuple[optuna.Study, list[str]]:
    """Create or check the job's study, scored by `judge`, and queue what must run first; returns notes for the
    user."""
    storage = open_storage(job.storage)
    study = open_study(storage, name=job.name, info=dataclasses.replace(job.info(data), judge=judge.digest))
    return study, job.prepare(study, storage, data)


def work(
    job: Job,
    worker: int = 0,
    on_trial: Callable[[optuna.Study], None] | None = None,
    *,
    data: Cifar10 | None = None,
    device_name: str | None = None,
    judge: JudgeFile | None = None,
) -> None:
    """One worker: load data and the study's judge (unless the caller has them: the first worker's caller fetched
    the judge to prepare the study), then take trials until the study is done, on `device_name` (default: the
    profile's device)."""
    data = data or load_cifar10(job.data_root)
    device = resolve_device(device_name or job.profile.device)
    judge = judge or the_judge(job, data, device=device)[0]
    context = Context(
        data=data,
        reference=judge.model(seed=job.profile.seed, device=device),
        device=device,
        cache=AttackCache(cache_dir() / "attacks"),
        store=artifact_store(Path(job.artifacts)),
        table=StudyTable(job.storage),
    )
    storage = open_storage(job.storage)
    study = open_study(storage, name=job.name, info=dataclasses.replace(job.info(data), judge=judge.digest))
    sampler = job.sampler(worker, started=len(study.get_trials(deepcopy=False)))
    if sampler is not None:
        study.sampler = sampler
    run_worker(study, job.objective(context), storage=storage, target=job.target(), on_trial=on_trial)


def check_workers(n_jobs: int) -> None:
    if n_jobs < 1:
        raise AutoshieldError(f"--n-jobs must be >= 1, got {n_jobs}")


def worker_devices(*, n_jobs: int, workers_per_gpu: int | None, gpus: int, device: str) -> list[str]:
    """The device of each worker. `workers_per_gpu` K puts K workers on every visible GPU (worker i on GPU i mod G):
    one process launches a ResNet's small kernels one after another and leaves a large card idle between them, so
    several share it (benchmarks/RESULTS.md). Otherwise `n_jobs` workers on the profile's device."""
    check_workers(n_jobs)
    if workers_per_gpu is None:
        return [device] * n_jobs
    if workers_per_gpu < 1:
        raise AutoshieldError(f"--workers-per-gpu must be >= 1, got {workers_per_gpu}")
    if n_jobs != 1:
        raise AutoshieldError("--n-jobs and --workers-per-gpu are alternatives: give one of them")
    if gpus == 0:
        raise AutoshieldError("--workers-per-gpu needs a CUDA GPU and this machine has none: use --n-jobs")
    if device not in ("auto", "cuda"):
        raise AutoshieldError(f"--workers-per-gpu places workers on every GPU itself: drop --device {device}")
    return [f"cuda:{i % gpus}" for i in range(workers_per_gpu * gpus)]


# A CPU worker's peak resident memory, fitted to `/usr/bin/time` on the 2-core VM (torch 2.14.1, 2026-12-03,
# benchmarks/FINDINGS.md): 1.05 GB for the interpreter, torch and decoded CIFAR-10; 17 MB per image attacked at
# once at width 16 (1.22 GB at 10, 1.90 GB at 50) and 46 MB at width 32 (1.49 and 3.32 GB), about width^1.5; a
# training batch of 128 adds 0.24 GB at width 16 and 0.54 GB at width 32.
_BASE_BYTES = 1.05e9
_ATTACK_BYTES_PER_IMAGE = 17e6  # at width 16
_TRAIN_BYTES_PER_IMAGE = 1.9e6  # at width 16


def worker_memory(profile: Profile) -> int:
    """Bytes one CPU worker is expected to need at its peak: the attack on as many victims as it batches, or one
    training batch, whichever is larger (an estimate from the measurements above, rounded up by the exponent)."""
    scale = (max(profile.width, profile.reference_width) / 16) ** 1.5
    victims = len(CLASSES) * profile.images_per_label
    attack = min(profile.attack.batch_size * profile.attack.leak_batch, victims) * _ATTACK_BYTES_PER_IMAGE
    train = max(profile.train.batch_size, profile.dp_train.batch_size) * _TRAIN_BYTES_PER_IMAGE
    return int(_BASE_BYTES + scale * max(attack, train))


def available_memory() -> int | None:
    """What the kernel says new processes can have without swapping (`MemAvailable`); None where it does not say."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_memory(profile: Profile, devices: Sequence[str]) -> None:
    """Refuse, before anything starts, more CPU workers than this machine's free memory holds at `profile`."""
    cpu_workers = sum(1 for d in devices if resolve_device(d).type == "cpu")
    free = available_memory()
    if cpu_workers < 2 or free is None:
        return
    each = worker_memory(profile)
    if cpu_workers * each > free:
        fits = max(1, free // each)
        raise AutoshieldError(
            f"{cpu_workers} workers at profile {profile.name} need about {cpu_workers * each / 1e9:.1f} GB "
            f"({each / 1e9:.1f} GB each, estimated) and this machine has {free / 1e9:.1f} GB available: "
            f"use --n-jobs {fits}"
        )


def _threads_per_worker(n_jobs: int) -> int:
    """Split this process's torch threads (the cores, or OMP_NUM_THREADS) so workers never oversubscribe."""
    return max(1, torch.get_num_threads() // n_jobs)


def _child(job: Job, worker: int, threads: int, device_name: str) -> None:
    quiet_optuna()
    on_sigterm()  # the parent terminates its workers with SIGTERM: each fails its running trial and exits quietly
    torch.set_num_threads(threads)
    try:
        work(job, worker, device_name=device_name)
    except AutoshieldError as error:  # one line, not multiprocessing's traceback
        print(f"error: worker {worker}: {error}", file=sys.stderr)
        sys.exit(2)
    except Terminated:
        sys.exit(EXIT_TERMINATED)
    finally:  # the parent's terminate() may land in this process's exit hooks: there it should just end it
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def run(
    job: Job,
    *,
    devices: Sequence[str] = ("auto",),
    on_trial: Callable[[optuna.Study], None] | None = None,
    data: Cifar10 | None = None,
    judge: JudgeFile | None = None,
) -> None:
    """Run one worker per entry of `devices` (`worker_devices`) until the study is done; this process is worker 0,
    with the caller's `data` and `judge` where it has them."""
    check_workers(len(devices))
    threads = _threads_per_worker(len(devices))
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=_child, args=(job, i, threads, devices[i]), daemon=True) for i in range(1, len(devices))
    ]
    # Children start with SIGINT ignored (Python keeps an ignored SIGINT ignored), so Ctrl-C, which reaches the
    # whole process group, is this process's alone: it says one line and terminates them below, even while they
    # are still importing.
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for child in children:
            child.start()
    finally:
        signal.signal(signal.SIGINT, handler)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        work(job, 0, on_trial, data=data, device_name=devices[0], judge=judge)
        for child in children:
            child.join()
    finally:
        torch.set_num_threads(previous)
        for child in children:
            if child.is_alive():
                child.terminate()
