"""`autoshield report`, `export` and `dashboard`: reading finished studies back out."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markdown import Markdown

from autoshield.cli.common import add_study_args, artifacts_of, console, fraction, storage_of, whole
from autoshield.core.choices import DEFAULT_TOLERANCE, KINDS
from autoshield.core.errors import AutoshieldError
from autoshield.core.files import file_stem


def register_report(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("report", help="Pareto fronts vs DP-SGD, hypervolume, per-label tables, sheets")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: studies/<study>-report)")
    parser.add_argument(
        "--tolerance",
        type=fraction,
        default=DEFAULT_TOLERANCE,
        help=f"best grid cell per label: allowed model-accuracy drop ({DEFAULT_TOLERANCE:g})",
    )
    add_study_args(parser)
    parser.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> None:
    from autoshield.core.files import writable_folder
    from autoshield.report.build import build_report
    from autoshield.study.storage import artifact_store, open_storage

    out = args.out or artifacts_of(args).parent / f"{file_stem(args.study)}-report"
    storage = open_storage(storage_of(args), heartbeat=False, create=False, writes=False)
    writable_folder(out)
    path = build_report(
        storage=storage, name=args.study, store=artifact_store(artifacts_of(args)), out=out, tolerance=args.tolerance
    )
    written = sorted(p.name for p in out.iterdir() if p.is_file() and p != path)
    console.print(f"wrote {path} with {', '.join(written)} and sheets/ beside it")
    console.print(Markdown(path.read_text().split("## Per label")[0].replace("![", "[")))


def register_export(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "export",
        help="write a trial's policy as JSON for autoshield.load_policy, or every victim's verdict as CSV",
        description="A policy as JSON (default: the search's best trade-off), or with --victims one CSV row per "
        "(trial or cell, attacker, victim) of every stored attack: pool slot, training index, label, cell, "
        "recognised, the judge's label and its probability for the true one, PSNR and SSIM against the original "
        "and the transformed image, the adaptive attacker's kept sign, the rank in the line-up, failed, seconds. "
        "The rows are the evidence behind a claim: benchmarks/recompute.py recomputes every k/n and p-value from "
        "them.",
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--trial", type=whole(0, 10**9), default=None, help="trial number")
    which.add_argument(
        "--best-tradeoff", action="store_true", help="the Pareto trial with max model - attack accuracy (default)"
    )
    which.add_argument(
        "--victims", action="store_true", help="every stored attack's per-victim verdicts as CSV (default: all kinds)"
    )
    parser.add_argument(
        "--kind",
        choices=KINDS,
        default=None,
        help="which study: a policy comes from search (default) or grid; --victims reads every kind unless named",
    )
    parser.add_argument(
        "-o", "--output", type=Path, default=None, help="output path (policy.json; victims.csv with --victims)"
    )
    add_study_args(parser)
    parser.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> None:
    from autoshield.core.files import writable_folder
    from autoshield.study.storage import open_storage

    if args.victims:
        from autoshield.report.victims import victim_rows, write_victims

        output = args.output or Path("victims.csv")
        writable_folder(output.parent)
        storage = open_storage(storage_of(args), heartbeat=False, create=False, writes=False)
        rows = victim_rows(storage=storage, name=args.study, kinds=(args.kind,) if args.kind else KINDS)
        try:
            write_victims(rows, output)
        except OSError as error:
            raise AutoshieldError(f"cannot write {output}: {error.strerror or error}") from None
        attacks = {(r.study, r.source, r.setting, r.attacker) for r in rows}
        console.print(f"{len(rows)} victim rows from {len(attacks)} attacks -> {output}")
        return
    _export_policy(args)


def _export_policy(args: argparse.Namespace) -> None:
    from optuna.trial import TrialState

    from autoshield.core.files import writable_folder
    from autoshield.report.format import percent
    from autoshield.report.pareto import best_tradeoff
    from autoshield.study.catalog import find_study
    from autoshield.study.marks import fail_reason
    from autoshield.study.params import policy_of
    from autoshield.study.storage import open_storage, study_name

    kind = args.kind or "search"
    if kind == "dpsgd":
        raise AutoshieldError("a DP-SGD study holds no policy; export --victims reads its attacks")
    args.output = args.output or Path("policy.json")
    storage = open_storage(storage_of(args), heartbeat=False, create=False, writes=False)
    writable_folder(args.output.parent)
    study = find_study(storage, args.study, kind)
    if study is None:
        raise AutoshieldError(f"no study {study_name(args.study, kind)!r} in this storage")
    if args.trial is None:
        trial = best_tradeoff(study)
    else:
        trials = [t for t in study.get_trials(deepcopy=False) if t.number == args.trial]
        if not trials:
            raise AutoshieldError(f"study {study.study_name!r} has no trial {args.trial}")
        trial = trials[0]
    if trial.state != TrialState.COMPLETE:
        reason = fail_reason(trial) or trial.state.name.lower()
        raise AutoshieldError(f"trial {trial.number} did not complete ({reason}); nothing to export")
    policy = policy_of(trial)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(policy.to_json() + "\n")
    console.print(
        f"trial {trial.number}: model {percent(trial.values[0])} %, attack {percent(trial.values[1])} %, "
        f"policy {policy} -> {args.output}"
    )


def register_dashboard(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("dashboard", help="open the studies in optuna-dashboard, with reconstruction sheets")
    add_study_args(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=whole(1, 65_535), default=8080, help="port (default: 8080)")
    parser.add_argument(
        "--read-only",
        action="store_true",
        help="refuse every change (optuna-dashboard can delete studies with their artifacts, rename them, add "
        "notes); always on with --allow-remote",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="needed for any --host other than loopback: optuna-dashboard has no authentication, so everyone who "
        "can reach the port sees every study; the dashboard is then read-only",
    )
    parser.set_defaults(func=run_dashboard)


def run_dashboard(args: argparse.Namespace) -> None:
    from autoshield.report.dashboard import guarded, is_loopback, listen, log_line
    from autoshield.study.storage import artifact_store, open_storage, redact

    remote = not is_loopback(args.host)
    if remote and not args.allow_remote:
        raise AutoshieldError(
            f"--host {args.host} is reachable from other machines and optuna-dashboard has no authentication: "
            "anyone who reaches it could delete studies and their artifacts; add --allow-remote (read-only) to proceed"
        )
    read_only = args.read_only or remote
    url = f"http://{args.host}:{args.port}/"
    mode = "read-only" if read_only else "read-write (--read-only refuses changes)"
    console.print(f"optuna-dashboard for {redact(storage_of(args))} at {url}, {mode}; starting... (Ctrl-C stops)")
    try:
        from optuna_dashboard import wsgi
    except ModuleNotFoundError:
        raise AutoshieldError("optuna-dashboard is not installed: pip install 'autoshield[dashboard]'") from None
    storage = open_storage(storage_of(args), heartbeat=False, create=False, writes=not read_only)
    folder = artifacts_of(args)
    app = guarded(
        wsgi(storage, artifact_store=artifact_store(folder)), read_only=read_only, artifacts=folder, log=log_line
    )
    server = listen(app, host=args.host, port=args.port)
    console.print(f"serving {url}")
    with server:
        server.serve_forever()
