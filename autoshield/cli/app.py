"""The `autoshield` command: one subcommand per module, each with its arguments beside its action.

Every user error surfaces as one `error: ...` line and a non-zero exit; logging
and warnings are configured here, at the entry point, never on import.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from contextlib import nullcontext

from autoshield import __version__
from autoshield.cli import confirm, explore, judge, outputs, plan, single, studies, table
from autoshield.cli.common import Parser, console, log_phases
from autoshield.core.errors import AutoshieldError
from autoshield.core.interrupts import EXIT_INTERRUPTED, EXIT_TERMINATED, exit_status, interruptible, stop_reason
from autoshield.core.kernels import VARIABLE, pin_kernels
from autoshield.core.runtime import phases

COMMANDS = (
    explore.register_data,
    explore.register_ops,
    single.register_train,
    single.register_attack,
    studies.register_grid,
    studies.register_search,
    studies.register_baseline,
    confirm.register_confirm,
    plan.register_plan,
    judge.register_judge,
    table.register_table,
    outputs.register_report,
    outputs.register_export,
    outputs.register_dashboard,
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="autoshield",
        description="Search per-label data augmentations that defend against gradient inversion, "
        "and compare them with DP-SGD.",
        epilog=f"{VARIABLE}=portable runs the same CPU kernels on every x86 machine with AVX2 (ATen's AVX2 "
        "kernels, oneDNN capped at AVX2, MKL's vendor-neutral branch), meant to round alike so that a judge or a "
        "table can be continued on another machine; benchmarks/portable.py shows whether two machines do, and the "
        "cost. native (the default) runs what torch picks for this processor.",
    )
    # a result is cited with the version that made it
    parser.add_argument("--version", action="version", version=f"autoshield {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for register in COMMANDS:
        register(commands)
    return parser


def stopped_line(stop: KeyboardInterrupt) -> str:
    """The one line a stopped command ends with: who stopped it, and that rerunning it resumes."""
    return f"{stop_reason(stop)}: finished work is saved; rerun the same command to resume"


def main(argv: Sequence[str] | None = None) -> int:
    from autoshield.study.storage import quiet_optuna

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, or a one-line usage error
        return int(exit_.code or 0)
    quiet_optuna()
    logged = nullcontext() if console.is_terminal else phases(log_phases())  # bars are drawn on terminals only
    try:
        with interruptible(), logged:
            pin_kernels()  # before any tensor is made: torch reads the kernels' variables once
            args.func(args)
    except AutoshieldError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (`Terminated`)
        print(stopped_line(stop), file=sys.stderr)
        return exit_status(stop)
    except OSError as error:  # the file system or the network refused: a path that is a file, no space, ...
        where = f": {error.filename}" if error.filename else ""
        print(f"error: {error.strerror or error}{where}", file=sys.stderr)
        return 2
    except Exception as error:
        from autoshield.study.storage import storage_failure

        if (reason := storage_failure(error)) is None:
            raise
        print(f"error: the study storage refused a write: {reason}", file=sys.stderr)
        return 2
    return 0


def program() -> int:
    """The `autoshield` program: `main`, and after an interrupt no second signal while the interpreter exits.

    Exit hooks still run then (multiprocessing's joins the workers); a second Ctrl-C or a scheduler's repeated
    SIGTERM arriving in one would print a traceback after the one line `main` said."""
    code = main()
    if code in (EXIT_INTERRUPTED, EXIT_TERMINATED):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return code
