"""The `autoshield` command: thin argument parsing over the library.

Every user error surfaces as one `error: ...` line and a non-zero exit.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

from autoshield.config import PRESETS, Profile, load_profile
from autoshield.data import CLASSES, Cifar10, default_data_root, load_cifar10
from autoshield.errors import AutoshieldError
from autoshield.ops import MAX_MAGNITUDE, OPS, op_value
from autoshield.policy import Policy, load_search_space, policy_from_argument

if TYPE_CHECKING:
    from optuna import Study

    from autoshield.evaluate import AttackResult
    from autoshield.metrics import Estimate

console = Console()
if not console.is_terminal:
    console.width = 160  # logs and pipes: wide tables instead of 80-column wrapping


def _add_data_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help="CIFAR-10 folder: cifar-10-batches-py/ or train/+test/ ImageFolder "
        f"(default: $AUTOSHIELD_DATA or {default_data_root()})",
    )
    parser.add_argument("--download", action="store_true", help="download CIFAR-10 with torchvision if it is missing")


def _add_profile_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="quick", help=f"preset: {', '.join(PRESETS)} (default: quick)")
    parser.add_argument("--config", type=Path, default=None, help="TOML file overriding profile fields")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one profile field, e.g. --set attack.iterations=500 (repeatable)",
    )
    parser.add_argument("--device", default=None, help="auto (default), cpu, cuda or cuda:N")
    _add_data_args(parser)


def _profile(args: argparse.Namespace) -> Profile:
    overrides = list(args.overrides)
    if args.device:
        overrides.append(f"device={args.device!r}")
    return load_profile(args.profile, toml_path=args.config, overrides=tuple(overrides))


def _data(args: argparse.Namespace) -> Cifar10:
    return load_cifar10(args.data_root, download=args.download)


def _percent(value: float) -> str:
    return f"{100 * value:.1f}"


def cmd_data(args: argparse.Namespace) -> None:
    start = time.perf_counter()
    data = _data(args)
    seconds = time.perf_counter() - start
    table = Table(title=f"CIFAR-10 ({data.fingerprint}), loaded in {seconds:.1f} s")
    table.add_column("label")
    table.add_column("train", justify="right")
    table.add_column("test", justify="right")
    for name, n_train, n_test in zip(CLASSES, data.train.counts(), data.test.counts(), strict=True):
        table.add_row(name, str(n_train), str(n_test))
    table.add_row("total", str(len(data.train)), str(len(data.test)), style="bold")
    console.print(table)


def cmd_ops(args: argparse.Namespace) -> None:
    space = load_search_space(args.space)
    magnitudes = list(range(MAX_MAGNITUDE + 1)) if args.all_magnitudes else list(space.magnitudes)
    table = Table(title=f"operations of {space.name}: value at magnitude m (signed ops flip sign per image)")
    table.add_column("op")
    for m in magnitudes:
        table.add_column(str(m), justify="right")
    for name in space.ops:
        op = OPS[name]
        suffix = " ±" if op.signed else ""
        if op.magnitude_free:
            table.add_row(name, *(["—"] * len(magnitudes)))
        else:
            table.add_row(name + suffix, *(op.describe(op_value(name, m)) for m in magnitudes))
    console.print(table)
    cells = space.cells()
    console.print(f"{len(cells)} distinct (op, magnitude) cells")
    if args.sheet:
        data = _data(args)
        image = data.test.images[args.image]
        from autoshield.sheets import ops_sheet

        ops_sheet(image, cells, args.sheet)
        console.print(f"wrote {args.sheet} (test image {args.image}, {CLASSES[int(data.test.labels[args.image])]})")


def cmd_train(args: argparse.Namespace) -> None:
    from autoshield.evaluate import train_policy
    from autoshield.runtime import resolve_device

    profile = _profile(args)
    policy = policy_from_argument(args.policy)
    data = _data(args)
    device = resolve_device(profile.device)
    console.print(f"policy: {policy}  profile: {profile.name}  device: {device}")
    result = train_policy(policy=policy, data=data, profile=profile, device=device, progress=True)
    table = Table(
        title=f"clean test accuracy after {profile.train.epochs} epochs "
        f"({result.seconds:.0f} s, {result.images_per_second:.0f} img/s)"
    )
    table.add_column("label")
    table.add_column("cell")
    table.add_column("accuracy %", justify="right")
    for name, cell, accuracy in zip(CLASSES, policy.cells, result.accuracy.per_label, strict=True):
        table.add_row(name, str(cell), _percent(accuracy))
    table.add_row("overall", "", _percent(result.accuracy.overall), style="bold")
    console.print(table)


def _interval(estimate: Estimate) -> str:
    """A proportion as 'mean [low–high]' in percent."""
    return f"{_percent(estimate.mean)} [{_percent(estimate.low)}–{_percent(estimate.high)}]"


def _privacy_table(title: str, result: AttackResult, policy: Policy) -> Table:
    table = Table(title=title)
    for column in (
        "label",
        "cell",
        "attack acc %",
        "PSNR orig dB",
        "PSNR x' dB",
        "SSIM orig",
        "recognis. %",
        "label rec %",
    ):
        table.add_column(column, justify="left" if column in ("label", "cell") else "right")
    rows = [(name, str(cell), stats) for name, cell, stats in zip(CLASSES, policy.cells, result.per_label, strict=True)]
    for name, cell, stats in [*rows, ("overall", "", result.overall)]:
        table.add_row(
            name,
            cell,
            _interval(stats.attack_accuracy),
            f"{stats.psnr_original.mean:.1f}",
            f"{stats.psnr_transformed.mean:.1f}",
            f"{stats.ssim_original.mean:.3f}",
            _percent(stats.recognisability.mean),
            _percent(stats.label_recovery.mean),
            style="bold" if name == "overall" else None,
        )
    return table


def cmd_attack(args: argparse.Namespace) -> None:
    from autoshield.cache import AttackCache
    from autoshield.data import cache_dir
    from autoshield.evaluate import attack_policy, train_policy, victims
    from autoshield.metrics import reference_classifier
    from autoshield.runtime import resolve_device
    from autoshield.sheets import reconstruction_sheet

    overrides = list(args.overrides)
    if args.images_per_label is not None:
        overrides.append(f"images_per_label={args.images_per_label}")
    if args.target is not None:
        overrides.append(f"attack.target={args.target!r}")
    args.overrides = overrides
    profile = _profile(args)
    policy = policy_from_argument(args.policy)
    data = _data(args)
    device = resolve_device(profile.device)
    reference = reference_classifier(data, profile, device=device, progress=True)
    console.print(f"reference classifier: {_percent(reference.accuracy.overall)} % clean test accuracy")
    model = None
    if profile.attack.target == "trained":
        model = train_policy(policy=policy, data=data, profile=profile, device=device, progress=True).model
    cache = None if args.no_cache else AttackCache(cache_dir() / "attacks")
    result = attack_policy(
        policy=policy,
        victims=victims(data, profile),
        profile=profile,
        reference=reference.model,
        device=device,
        model=model,
        cache=cache,
        progress=True,
    )
    n = len(result.labels)
    title = (
        f"gradient inversion of {n} images ({profile.attack.iterations} iterations, target {profile.attack.target}); "
        f"{result.cached} from cache, {result.seconds:.0f} s attacking"
    )
    console.print(_privacy_table(title, result, policy))
    if result.overall.failed:
        console.print(f"[red]{result.overall.failed} reconstructions turned non-finite and are excluded above")
    sheet = reconstruction_sheet(result, args.sheet, title=f"policy {policy}")
    console.print(f"wrote {sheet}: per label original | transformed | reconstruction")


def _add_grid_search_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--space", default="randaugment14", help="search space name or TOML (randaugment14)")
    parser.add_argument(
        "--utility",
        choices=("trained", "recognizability"),
        default="trained",
        help="model accuracy = clean accuracy of ResNet-18 trained on the transformed data (trained), or the "
        "reference classifier's accuracy on transformed images, the poster's protocol, no training (recognizability)",
    )
    parser.add_argument(
        "--tolerance", type=float, default=0.05, help="best cell per label: allowed model-accuracy drop (0.05)"
    )
    parser.add_argument("--n-jobs", type=int, default=1, help="worker processes on this machine (default: 1)")
    _add_study_args(parser)
    _add_profile_args(parser)


def _add_study_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage",
        default=None,
        help="Optuna storage URL: sqlite:///studies/autoshield.db (default), postgresql+psycopg://user@host/db, "
        "or journal:PATH for a shared file system",
    )
    parser.add_argument("--study", default="autoshield", help="study name prefix (default: autoshield)")
    parser.add_argument(
        "--artifacts", type=Path, default=None, help="artifact folder (default: artifacts/ beside the SQLite file)"
    )


def _storage_url(args: argparse.Namespace) -> str:
    from autoshield.study import DEFAULT_STORAGE

    return args.storage or DEFAULT_STORAGE


def _artifacts(args: argparse.Namespace) -> Path:
    if args.artifacts:
        return args.artifacts
    url = _storage_url(args)
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///")).parent / "artifacts"
    return Path("studies/artifacts")


def _run_study(args: argparse.Namespace, kind: str) -> Study:
    from autoshield.metrics import reference_classifier
    from autoshield.runtime import resolve_device
    from autoshield.study import Job, finished, prepare, redact, run, target_trials

    if kind == "search" and args.trials < 1:
        raise AutoshieldError(f"--trials must be >= 1, got {args.trials}")
    if args.n_jobs < 1:
        raise AutoshieldError(f"--n-jobs must be >= 1, got {args.n_jobs}")
    profile = _profile(args)
    space = load_search_space(getattr(args, "space", "randaugment14"))
    data = _data(args)
    job = Job(
        kind=kind,
        storage=_storage_url(args),
        name=args.study,
        space=space,
        profile=profile,
        data_root=str(args.data_root) if args.data_root else None,
        artifacts=str(_artifacts(args)),
        utility=getattr(args, "utility", "trained"),
        trials=getattr(args, "trials", 0),
        sampler=getattr(args, "sampler", "tpe"),
        tolerance=getattr(args, "tolerance", 0.05),
        sigmas=tuple(getattr(args, "sigma", ())),
        max_grad_norm=getattr(args, "max_grad_norm", 1.0),
    )
    if kind == "search":
        from autoshield.study import make_sampler

        make_sampler(job.sampler, seed=0)  # an unknown sampler fails before anything is written
    study, notes = prepare(job, data)
    console.print(f"study {study.study_name} in {redact(job.storage)} ({space.name}, profile {profile.name})")
    for note in notes:
        console.print(f"  {note}")
    reference = reference_classifier(data, profile, device=resolve_device(profile.device), progress=True)
    console.print(f"  reference classifier: {_percent(reference.accuracy.overall)} % clean test accuracy")
    target = target_trials(job)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn(f"[bold]{kind}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task(kind, total=target, completed=finished(job, study), status="")

        def update(study: Study) -> None:
            front = study.best_trials
            best_model = max((t.values[0] for t in front), default=float("nan"))
            best_attack = min((t.values[1] for t in front), default=float("nan"))
            bar.update(
                task,
                completed=finished(job, study),
                status=f"front {len(front)}: model ≤{_percent(best_model)} %, attack ≥{_percent(best_attack)} %",
            )

        run(job, n_jobs=args.n_jobs, on_trial=update, data=data)
        update(study)  # trials that other workers finished after this one's last
    return study


def _print_rows(title: str, rows: list[dict[str, str]]) -> None:
    table = Table(title=title)
    for key in rows[0]:
        table.add_column(key, justify="left" if key in ("label", "op", "policy") else "right")
    for row in rows:
        table.add_row(*row.values())
    console.print(table)


def cmd_grid(args: argparse.Namespace) -> None:
    from autoshield.study import best_cells

    study = _run_study(args, "grid")
    table, rule = best_cells(study, tolerance=args.tolerance)
    rows = [
        {
            "label": row.label,
            "op": row.cell.op,
            "magnitude": str(row.cell.magnitude) if row.cell.magnitude else "—",
            "model acc %": _percent(row.model_accuracy),
            "attack acc %": _percent(row.attack_accuracy),
            "PSNR dB": f"{row.psnr:.1f}",
        }
        for row in table
    ]
    _print_rows(f"best cell per label ({args.utility} utility)", rows)
    console.print(f"rule: {rule}")
    from autoshield.report import write_rows

    paths = write_rows(rows, _artifacts(args).parent / f"{args.study}-grid-best")
    console.print(f"wrote {paths[0]} and {paths[1]}")


def _pareto_rows(study: Study) -> list[dict[str, str]]:
    front = sorted(study.best_trials, key=lambda t: -t.values[0])
    return [
        {
            "trial": str(t.number),
            "model acc %": _percent(t.values[0]),
            "attack acc %": _percent(t.values[1]),
            "PSNR dB": f"{t.user_attrs.get('psnr_original', float('nan')):.1f}",
            "policy": t.user_attrs.get("policy", ""),
        }
        for t in front
    ]


def cmd_search(args: argparse.Namespace) -> None:
    from autoshield.study import completed

    study = _run_study(args, "search")
    trials = completed(study)
    seconds = [t.duration.total_seconds() for t in trials if t.duration]
    if seconds:
        console.print(f"{len(trials)} trials complete; {sum(seconds) / len(seconds):.0f} s per trial on average")
    rows = _pareto_rows(study)
    if rows:
        _print_rows(f"Pareto-optimal policies of {study.study_name}", rows)


def cmd_baseline(args: argparse.Namespace) -> None:
    from autoshield.study import completed

    study = _run_study(args, "dpsgd")
    wanted = set(args.sigma)
    rows = []
    for trial in sorted(completed(study), key=lambda t: t.params["sigma"]):
        a = trial.user_attrs
        if trial.params["sigma"] not in wanted:
            continue
        rows.append(
            {
                "sigma": f"{a['sigma']:g}",
                "epsilon": f"{a['epsilon']:,.4g}",
                "model acc %": _percent(trial.values[0]),
                "attack acc % (noised)": _percent(a["attack_accuracy"]),
                "attack acc % (weights)": _percent(a["weights_attack_accuracy"]),
                "attack acc % (no noise)": _percent(a.get("control_attack_accuracy", math.nan)),
                "PSNR dB (noised)": f"{a['psnr_original']:.1f}",
                "PSNR dB (weights)": f"{a['weights_psnr_original']:.1f}",
                "minutes": f"{(a['train_seconds'] + a['attack_seconds']) / 60:.1f}",
            }
        )
    if rows:
        _print_rows(f"DP-SGD baselines (δ = 1e-5, C = {args.max_grad_norm:g}, RDP accountant)", rows)
        from autoshield.evaluate import NO_NOISE_NOTE

        console.print(NO_NOISE_NOTE)
    for row in rows:
        if float(row["epsilon"].replace(",", "")) > 100:
            console.print(
                f"[yellow]σ = {row['sigma']} gives ε = {row['epsilon']}: no meaningful privacy guarantee "
                "(ε ≤ 10 is the usual bar)"
            )


def cmd_report(args: argparse.Namespace) -> None:
    from autoshield.report import build_report
    from autoshield.study import artifact_store, open_storage

    out = args.out or _artifacts(args).parent / f"{args.study}-report"
    storage = open_storage(_storage_url(args), heartbeat=False)
    path = build_report(
        storage=storage, name=args.study, store=artifact_store(_artifacts(args)), out=out, tolerance=args.tolerance
    )
    console.print(f"wrote {path} (with pareto.png, hypervolume.png, per_label.md/.csv, dominance.md)")
    console.print(Markdown(path.read_text().split("## Per label")[0].replace("![", "[")))


def cmd_export(args: argparse.Namespace) -> None:
    import optuna

    from autoshield.report import best_tradeoff, trial_policy
    from autoshield.study import open_storage

    storage = open_storage(_storage_url(args), heartbeat=False)
    name = f"{args.study}-{args.kind}"
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise AutoshieldError(f"no study {name!r} in this storage") from None
    if args.trial is None:
        trial = best_tradeoff(study)
    else:
        trials = [t for t in study.get_trials(deepcopy=False) if t.number == args.trial]
        if not trials:
            raise AutoshieldError(f"study {name!r} has no trial {args.trial}")
        trial = trials[0]
    policy = trial_policy(trial)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(policy.to_json() + "\n")
    console.print(
        f"trial {trial.number}: model {_percent(trial.values[0])} %, attack {_percent(trial.values[1])} %, "
        f"policy {policy} -> {args.output}"
    )


def cmd_dashboard(args: argparse.Namespace) -> None:
    from autoshield.study import open_storage, redact

    try:
        from optuna_dashboard import run_server
    except ModuleNotFoundError:
        raise AutoshieldError("optuna-dashboard is not installed: pip install 'autoshield[dashboard]'") from None
    from autoshield.study import artifact_store

    storage = open_storage(_storage_url(args), heartbeat=False)
    console.print(
        f"optuna-dashboard for {redact(_storage_url(args))} at http://{args.host}:{args.port}/ (Ctrl-C stops)"
    )
    run_server(storage, host=args.host, port=args.port, artifact_store=artifact_store(_artifacts(args)))


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the usage is one `--help` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="autoshield",
        description="Search per-label data augmentations that defend against gradient inversion, "
        "and compare them with DP-SGD.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    data = commands.add_parser("data", help="check and prepare CIFAR-10, print counts per label")
    _add_data_args(data)
    data.set_defaults(func=cmd_data)

    ops = commands.add_parser("ops", help="table of operations and their value at each magnitude; --sheet draws them")
    ops.add_argument("--space", default="randaugment14", help="search space name or TOML file (default: randaugment14)")
    ops.add_argument("--all-magnitudes", action="store_true", help="show magnitudes 0-10, not only the space's")
    ops.add_argument("--sheet", type=Path, default=None, help="write a PNG of one real image under every cell")
    ops.add_argument("--image", type=int, default=0, help="test-set index of the image for --sheet (default: 0)")
    _add_data_args(ops)
    ops.set_defaults(func=cmd_ops)

    train = commands.add_parser("train", help="train ResNet-18 on policy-transformed data, print per-label accuracy")
    policy_help = "'airplane=Rotate:5,cat=Equalize' (unlisted labels: Identity), one cell for all, or a policy .json"
    train.add_argument("--policy", default="identity", help=policy_help)
    _add_profile_args(train)
    train.set_defaults(func=cmd_train)

    attack = commands.add_parser(
        "attack", help="invert gradients of policy-transformed images, print per-label privacy metrics, draw a sheet"
    )
    attack.add_argument("--policy", default="identity", help=policy_help)
    attack.add_argument("--images-per-label", type=int, default=None, help="victims per label (profile default)")
    attack.add_argument(
        "--target",
        choices=("init", "trained"),
        default=None,
        help="attacked weights: the seeded untrained network (init, default) or the policy-trained one",
    )
    attack.add_argument("--sheet", type=Path, default=Path("studies/attack.png"), help="PNG sheet path")
    attack.add_argument("--no-cache", action="store_true", help="recompute every attack instead of reusing results")
    _add_profile_args(attack)
    attack.set_defaults(func=cmd_attack)

    grid = commands.add_parser(
        "grid", help="every distinct (op, magnitude) cell applied to all labels; the best cell per label"
    )
    _add_grid_search_args(grid)
    grid.set_defaults(func=cmd_grid)

    search = commands.add_parser("search", help="multi-objective Optuna search over per-label policies")
    search.add_argument("--trials", type=int, default=200, help="total completed trials, over all workers (200)")
    search.add_argument("--sampler", default="tpe", help="tpe (default), nsga2, gp or random")
    _add_grid_search_args(search)
    search.set_defaults(func=cmd_search)

    baseline = commands.add_parser(
        "baseline", help="DP-SGD (Opacus) at each noise multiplier: accuracy, ε, attack accuracy in both settings"
    )
    baseline.add_argument(
        "--sigma", type=float, nargs="+", default=[0.1, 0.5, 1.0], help="noise multipliers (default: 0.1 0.5 1.0)"
    )
    baseline.add_argument("--max-grad-norm", type=float, default=1.0, help="per-sample clipping norm C (1.0)")
    baseline.add_argument("--n-jobs", type=int, default=1, help="worker processes on this machine (default: 1)")
    _add_study_args(baseline)
    _add_profile_args(baseline)
    baseline.set_defaults(func=cmd_baseline)

    report = commands.add_parser("report", help="Pareto fronts vs DP-SGD, hypervolume, per-label tables, sheets")
    report.add_argument("--out", type=Path, default=None, help="output folder (default: studies/<study>-report)")
    report.add_argument(
        "--tolerance", type=float, default=0.05, help="best grid cell per label: allowed model-accuracy drop (0.05)"
    )
    _add_study_args(report)
    report.set_defaults(func=cmd_report)

    export = commands.add_parser("export", help="write a trial's policy as JSON for autoshield.load_policy")
    which = export.add_mutually_exclusive_group()
    which.add_argument("--trial", type=int, default=None, help="trial number")
    which.add_argument(
        "--best-tradeoff", action="store_true", help="the Pareto trial with max model - attack accuracy (default)"
    )
    export.add_argument("--kind", choices=("search", "grid"), default="search", help="which study (search)")
    export.add_argument("-o", "--output", type=Path, default=Path("policy.json"), help="JSON path (policy.json)")
    _add_study_args(export)
    export.set_defaults(func=cmd_export)

    dashboard = commands.add_parser(
        "dashboard", help="open the studies in optuna-dashboard, with reconstruction sheets"
    )
    _add_study_args(dashboard)
    dashboard.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    dashboard.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    dashboard.set_defaults(func=cmd_dashboard)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, or a one-line usage error
        return int(exit_.code or 0)
    try:
        args.func(args)
    except AutoshieldError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished work is saved; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
