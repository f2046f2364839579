"""What every command shares: the console, the profile/data/study arguments, and printing rows as a table."""

from __future__ import annotations

import argparse
import math
import os
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

from rich.console import Console
from rich.table import Table

from autoshield.core.config import PRESETS, Profile, load_profile
from autoshield.core.errors import AutoshieldError
from autoshield.data.cifar import CLASSES, Cifar10, default_data_root, load_cifar10

T = TypeVar("T")

console = Console(log_path=False)  # a log line names the time, not the source line that wrote it
if not console.is_terminal:
    console.width = 160  # logs and pipes: wide tables instead of 80-column wrapping


def throttled(action: Callable[[T], None], *, every: float) -> Callable[[T], None]:
    """`action` at most once per `every` seconds (the first call runs it): for listeners that fire far more often
    than a log line or a storage read is worth."""
    last = -math.inf

    def call(argument: T) -> None:
        nonlocal last
        if (now := time.monotonic()) - last >= every:
            last = now
            action(argument)

    return call


def log_phases(*, every: float = 60.0) -> Callable[[str], None]:
    """A listener for `phases` where no bar can be drawn (a pipe, a log file: rich draws it only when it ends): a
    long step's phase as a timestamped line, at most one per `every` seconds, so an overnight run's log says how far
    it got."""
    return throttled(console.log, every=every)


POLICY_HELP = "'airplane=Rotate:5,cat=Equalize' (unlisted labels: Identity), one cell for all, or a policy .json"
_LEFT = ("label", "op", "policy", "cell", "attacker")


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the usage is one `--help` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see --help)\n")


def fraction(text: str) -> float:
    """An argparse type: a number from 0 to 1 (a tolerance, a share)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {value:g}")
    return value


def whole(low: int, high: int, *, why: str = "") -> Callable[[str], int]:
    """An argparse type: a whole number from `low` to `high`, refused at parse time, before any work."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low:,} to {high:,}{why}, got {value:,}")
        return value

    return parse


def label_arg(text: str) -> int:
    """An argparse type: a CIFAR-10 label by name, as its index, refused at parse time when unknown."""
    if text not in CLASSES:
        raise argparse.ArgumentTypeError(f"unknown label {text!r}; labels are {', '.join(CLASSES)}")
    return CLASSES.index(text)


def cores() -> int:
    """The cores this process may use (a container's or a scheduler's limit, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


STUDY_NAME_BYTES = 100  # `<name>-grid-cells.csv` and friends must stay well inside a file name's 255 bytes


def study_name_arg(text: str) -> str:
    """An argparse type: a study name is a name, not a path. Output files are named after it, so separators,
    `..`, control characters and names no file name could carry are refused before any work."""
    if not text.strip():
        raise argparse.ArgumentTypeError("a study name cannot be empty")
    if len(text.encode()) > STUDY_NAME_BYTES:
        raise argparse.ArgumentTypeError(f"a study name has at most {STUDY_NAME_BYTES} bytes, got {len(text.encode())}")
    if any(c in text for c in "/\\") or ".." in text or text.startswith(("-", ".")):
        raise argparse.ArgumentTypeError(f"a study name is a name, not a path: {text!r}")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in text):
        raise argparse.ArgumentTypeError(f"a study name cannot hold control characters: {text!r}")
    return text


def storage_url_arg(text: str) -> str:
    """An argparse type: a storage URL of a kind autoshield opens (`sqlite:///FILE`, a SQLAlchemy server URL such as
    `postgresql+psycopg://…`, or `journal:FILE`), refused in one line before any work otherwise."""
    kinds = "sqlite:///FILE, postgresql+psycopg://USER@HOST/DB or journal:FILE"
    if any(unicodedata.category(c) == "Cc" for c in text):
        raise argparse.ArgumentTypeError("a storage URL cannot hold control characters")
    if text.startswith("sqlite:///") and len(text) > len("sqlite:///"):
        return text
    if text.startswith("journal:") and len(text) > len("journal:"):
        return text
    scheme, sep, rest = text.partition("://")
    if sep and rest and scheme.split("+")[0] in ("postgresql", "mysql", "mariadb", "oracle", "mssql", "cockroachdb"):
        return text
    shown = text if len(text) <= 40 and "@" not in text else "the URL given"  # never echo a password
    raise argparse.ArgumentTypeError(f"{shown!r} is not a storage URL autoshield opens: use {kinds}")


def add_data_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help="CIFAR-10 folder: cifar-10-batches-py/ or train/+test/ ImageFolder "
        f"(default: $AUTOSHIELD_DATA or {default_data_root()})",
    )
    parser.add_argument("--download", action="store_true", help="download CIFAR-10 with torchvision if it is missing")


def add_profile_args(parser: argparse.ArgumentParser) -> None:
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
    add_data_args(parser)


def add_study_args(parser: argparse.ArgumentParser) -> None:
    add_storage_arg(parser)
    add_study_name_arg(parser, default="autoshield")
    parser.add_argument(
        "--artifacts", type=Path, default=None, help="artifact folder (default: artifacts/ beside the SQLite file)"
    )


def add_storage_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage",
        type=storage_url_arg,
        default=None,
        help="Optuna storage URL: sqlite:///studies/autoshield.db (default), postgresql+psycopg://user@host/db, "
        "or journal:PATH for a shared file system. A URL with a password is better given as $AUTOSHIELD_STORAGE, "
        "or without one and with libpq's PGPASSWORD or ~/.pgpass, since arguments are visible to every local user",
    )


def add_study_name_arg(parser: argparse.ArgumentParser, *, default: str | None, role: str = "") -> None:
    """`--study`; `role` says what the name does for a command that works without a study (`default` None)."""
    parser.add_argument(
        "--study",
        type=study_name_arg,
        default=default,
        help=f"study name prefix (default: {default or 'none'}){role}; a name, not a path: at most "
        f"{STUDY_NAME_BYTES} bytes, no separators or control characters",
    )


def profile_of(args: argparse.Namespace, *extra: str) -> Profile:
    """The profile the arguments ask for; `extra` overrides come after `--set`."""
    overrides = [*args.overrides, *extra]
    if args.device:
        overrides.append(f"device={args.device!r}")
    return load_profile(args.profile, toml_path=args.config, overrides=tuple(overrides))


def data_of(args: argparse.Namespace) -> Cifar10:
    return load_cifar10(args.data_root, download=args.download)


def storage_of(args: argparse.Namespace) -> str:
    """`--storage`, else $AUTOSHIELD_STORAGE (a URL with a password need not appear in the process list), else the
    default SQLite file."""
    from autoshield.study.storage import DEFAULT_STORAGE

    if args.storage:
        return args.storage
    if url := os.environ.get("AUTOSHIELD_STORAGE"):
        try:
            return storage_url_arg(url)
        except argparse.ArgumentTypeError as error:
            raise AutoshieldError(f"$AUTOSHIELD_STORAGE: {error}") from None
    return DEFAULT_STORAGE


def artifacts_of(args: argparse.Namespace) -> Path:
    from autoshield.study.storage import default_artifacts

    return args.artifacts or default_artifacts(storage_of(args))


def print_rows(title: str, rows: list[dict[str, str]], *, to: Console | None = None) -> None:
    """Rows (one dict per row, same keys) as a terminal table; an 'overall' row is bold. Narrow terminals fold
    cells and headers onto more lines instead of cutting them ("epsil…")."""
    table = Table(title=title)
    for key in rows[0]:
        table.add_column(key, justify="left" if key in _LEFT else "right", overflow="fold")
    for row in rows:
        table.add_row(*row.values(), style="bold" if row.get("label") == "overall" else None)
    (to or console).print(table)


def network_of(profile: Profile) -> str:
    """The network in words, so that no table is read without knowing which one its numbers come from."""
    label = {
        "none": "no normalisation (norm none)",
        "batch": "BatchNorm (norm batch: DP-SGD cannot train it)",
        "group": "GroupNorm, gcd(32, channels) groups (norm group)",
        "layer": "GroupNorm, one group (norm layer)",
        "fixup": "no normalisation, Fixup-style scaled initialisation with biases (norm fixup)",
        "gnws": "GroupNorm, 8 channels per group, weight-standardised convolutions (norm gnws)",
        "branch": "GroupNorm and weight standardisation in the residual branches only (norm branch)",
    }
    return f"ResNet-18 width {profile.width}, {label[profile.norm]}"
