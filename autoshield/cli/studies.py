"""`autoshield grid`, `search` and `baseline`: the three study kinds, run until done, resumable."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from autoshield.cli.common import (
    add_profile_args,
    add_study_args,
    artifacts_of,
    console,
    cores,
    data_of,
    fraction,
    network_of,
    print_rows,
    profile_of,
    storage_of,
    throttled,
    whole,
)
from autoshield.core.choices import ATTACKER_CHOICES, DEFAULT_TOLERANCE, PRIVACY_CHOICES, UTILITIES
from autoshield.core.files import file_stem
from autoshield.data.spaces import load_search_space

if TYPE_CHECKING:
    from optuna import Study

    from autoshield.study.jobs import Job

_REFRESH_SECONDS = 30.0  # how often worker 0's phases re-read the study for the other workers' finished trials


def _add_workers_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--n-jobs",
        type=whole(1, cores(), why=" (the cores this process may use)"),
        default=1,
        help=f"worker processes on this machine (default: 1; at most its {cores()} cores)",
    )
    parser.add_argument(
        "--workers-per-gpu",
        type=whole(1, 64),
        metavar="K",
        help="instead of --n-jobs: K worker processes on every CUDA GPU, for a card that one process leaves idle "
        "between small kernels (see benchmarks/RESULTS.md for the scaling measured)",
    )


def _add_policy_study_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--space", default="randaugment14", help="search space name or TOML (randaugment14)")
    parser.add_argument(
        "--utility",
        choices=UTILITIES,
        default="trained",
        help="model accuracy = clean accuracy of ResNet-18 trained on the transformed data (trained), or the "
        "reference classifier's accuracy on transformed images, the poster's protocol, no training (recognizability)",
    )
    parser.add_argument(
        "--tolerance",
        type=fraction,
        default=DEFAULT_TOLERANCE,
        help=f"best cell per label: allowed model-accuracy drop ({DEFAULT_TOLERANCE:g})",
    )
    parser.add_argument(
        "--attacker",
        choices=ATTACKER_CHOICES,
        default="naive",
        help="privacy objective: the attacker who ignores the policy (naive, default), the one who undoes each op "
        "on the naive reconstruction with a network trained on public images where the op has no exact inverse "
        "(learned: each cell's network is trained once per machine), the one who inverts through it (adaptive: "
        "about twice the attack time for signed ops), per policy the strongest of naive, post-hoc inverse, "
        "learned and adaptive, picked on the scored victims (worst: an upper bound), or per label the one that was "
        "strongest on calibration victims, the pool's last images_per_label slots (calibrated: what a real "
        "attacker earns; twice the attack work). A published policy is known to attackers; a study keeps its "
        "first choice",
    )
    parser.add_argument(
        "--privacy",
        choices=PRIVACY_CHOICES,
        default="recognition",
        help="what the privacy objective counts: victims the judge recognises in the reconstruction (recognition, "
        "default), or victims the reconstruction singles out of the held-out pool's line-up, which needs no judge "
        "and does not score the judge's blind spots as privacy (identifiability). A study keeps its first choice",
    )
    _add_workers_arg(parser)
    add_study_args(parser)
    add_profile_args(parser)


def _where(args: argparse.Namespace) -> dict[str, object]:
    """The fields every job shares, from the study and profile arguments."""
    return {
        "storage": storage_of(args),
        "name": args.study,
        "profile": profile_of(args),
        "data_root": str(args.data_root) if args.data_root else None,
        "artifacts": str(artifacts_of(args)),
    }


def run_study(job: Job, args: argparse.Namespace, *, space_name: str | None = None) -> Study:
    """Fetch the study's judge (or store this machine's), prepare the study, then run workers with a progress
    bar."""
    from autoshield.core.files import writable_folder
    from autoshield.core.runtime import gpu_count, phases, resolve_device
    from autoshield.report.design import design_line
    from autoshield.report.format import percent
    from autoshield.study import launch
    from autoshield.study.records import StudyInfo
    from autoshield.study.storage import check_storage, redact

    devices = launch.worker_devices(  # before anything is loaded or written
        n_jobs=args.n_jobs, workers_per_gpu=args.workers_per_gpu, gpus=gpu_count(), device=job.profile.device
    )
    launch.check_memory(job.profile, devices)
    writable_folder(Path(job.artifacts))  # before a trial's work, not after it
    check_storage(job.storage)  # a foreign, corrupt or read-only database, before the data loads
    data = data_of(args)
    judge, stored_now = launch.the_judge(job, data, device=resolve_device(devices[0]), progress=True)
    study, notes = launch.prepare(job, data, judge)
    about = f"profile {job.profile.name}, network {network_of(job.profile)}"
    if (attacker := getattr(job, "attacker", "naive")) != "naive":
        about += f", attacker {attacker}"
    if (privacy := getattr(job, "privacy", "recognition")) != "recognition":
        about += f", privacy {privacy}"
    about = f"{space_name}, {about}" if space_name else about
    console.print(f"study {study.study_name} in {redact(job.storage)} ({about})")
    for note in notes:
        console.print(f"  {note}")
    info = StudyInfo.read(study)
    compared = (len(info.cells) if info and job.kind == "grid" else job.total(study)) - 1
    if design := design_line(kind=job.kind, compared=compared, victims_per_label=job.profile.images_per_label):
        console.print(f"  {design}")
    whose = "this machine's, stored with the study now" if stored_now else "stored with the study"
    console.print(f"  judge {judge.digest[:12]} ({whose}): {percent(judge.accuracy.overall)} % clean test accuracy")
    with Progress(
        TextColumn(f"[bold]{job.kind}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TextColumn("[dim]{task.fields[phase]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),  # from this run's completed trials: unknown until the first one ends
        console=console,
    ) as bar:
        task = bar.add_task(job.kind, total=job.total(study), completed=job.finished(study), status="", phase="")

        logged = job.finished(study)  # the count of finished trials as last logged

        def update(study: Study) -> None:
            nonlocal logged
            front = study.best_trials
            best_model = max((t.values[0] for t in front), default=float("nan"))
            best_attack = min((t.values[1] for t in front), default=float("nan"))
            done = job.finished(study)
            model, attack = percent(best_model), percent(best_attack)
            status = f"best so far: model {model} %, attack {attack} % ({len(front)} on the front)"
            bar.update(task, completed=done, status=status)
            if not console.is_terminal and done != logged:  # a log file sees the bar only when it ends
                console.log(f"{job.kind}: {done}/{job.total(study)} trials done, {status}")
            logged = done

        # Worker 0's trial can outlast the others' (with 2 workers, Identity then a 3-attack cell beside a 3-attack
        # cell), so its phases also re-read the count now and then: else their trials would appear only when its ends.
        refresh = throttled(update, every=_REFRESH_SECONDS)

        def on_phase(text: str) -> None:
            bar.update(task, phase=f"worker 0: {text}")
            refresh(study)

        with phases(on_phase):
            launch.run(job, devices=devices, on_trial=update, data=data, judge=judge)
        update(study)  # trials that other workers finished after this one's last
    return study


def register_grid(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "grid", help="every distinct (op, magnitude) cell applied to all labels; the best cell per label"
    )
    _add_policy_study_args(parser)
    parser.set_defaults(func=run_grid)


def run_grid(args: argparse.Namespace) -> None:
    from autoshield.report.cells import cell_rows
    from autoshield.report.format import write_rows
    from autoshield.report.tables import grid_best_rows
    from autoshield.study.analysis import best_cells, privacy_of
    from autoshield.study.jobs import GridJob

    space = load_search_space(args.space)
    job = GridJob(space=space, utility=args.utility, attacker=args.attacker, privacy=args.privacy, **_where(args))
    study = run_study(job, args, space_name=space.name)
    table, rule = best_cells(study, tolerance=args.tolerance)
    rows = grid_best_rows(table, privacy=privacy_of(study))
    print_rows(f"best cell per label ({args.utility} utility)", rows)
    console.print(f"rule: {rule}")
    folder = artifacts_of(args).parent
    best = write_rows(rows, folder / f"{file_stem(args.study)}-grid-best")
    every = write_rows(cell_rows(study), folder / f"{file_stem(args.study)}-grid-cells")
    console.print(f"wrote {best[0]} and {best[1]}; every cell x label with its paired test: {every[0]}, {every[1]}")


def register_search(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("search", help="multi-objective Optuna search over per-label policies")
    parser.add_argument(
        "--trials", type=int, default=200, help="total completed trials, over all workers (200; at most 100,000)"
    )
    parser.add_argument("--sampler", default="tpe", help="tpe (default), nsga2, gp or random")
    _add_policy_study_args(parser)
    parser.set_defaults(func=run_search)


def run_search(args: argparse.Namespace) -> None:
    from autoshield.report.tables import pareto_rows
    from autoshield.study.catalog import completed
    from autoshield.study.jobs import SearchJob

    space = load_search_space(args.space)
    job = SearchJob(
        space=space,
        utility=args.utility,
        attacker=args.attacker,
        privacy=args.privacy,
        trials=args.trials,
        sampler_name=args.sampler,
        tolerance=args.tolerance,
        **_where(args),
    )
    study = run_study(job, args, space_name=space.name)
    trials = completed(study)
    seconds = [t.duration.total_seconds() for t in trials if t.duration]
    if seconds:
        console.print(f"{len(trials)} trials complete; {sum(seconds) / len(seconds):.0f} s per trial on average")
    rows = pareto_rows(study)
    if rows:
        print_rows(f"Pareto-optimal policies of {study.study_name}", rows)


def register_baseline(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "baseline", help="DP-SGD (Opacus) at each noise multiplier: accuracy, ε, attack accuracy in both settings"
    )
    parser.add_argument(
        "--sigma", type=float, nargs="+", default=[0.1, 0.5, 1.0], help="noise multipliers (default: 0.1 0.5 1.0)"
    )
    parser.add_argument("--max-grad-norm", type=float, default=1.0, help="per-sample clipping norm C (1.0)")
    _add_workers_arg(parser)
    add_study_args(parser)
    add_profile_args(parser)
    parser.set_defaults(func=run_baseline)


def run_baseline(args: argparse.Namespace) -> None:
    from autoshield.report.tables import NO_NOISE_NOTE, dp_records, dp_rows, dp_title, loose_guarantees
    from autoshield.study.jobs import DPJob

    job = DPJob(sigmas=tuple(args.sigma), max_grad_norm=args.max_grad_norm, **_where(args))
    study = run_study(job, args)
    records = dp_records(study, set(args.sigma))
    if records:
        print_rows(dp_title(records), dp_rows(records))
        console.print(NO_NOISE_NOTE)
    for record in loose_guarantees(records):
        console.print(
            f"[yellow]σ = {record.sigma:g} gives ε = {record.epsilon:,.4g}: no meaningful privacy guarantee "
            "(ε ≤ 10 is the usual bar)"
        )
