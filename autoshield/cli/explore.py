"""`autoshield data` and `autoshield ops`: what the data and the operations look like, before any study."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.table import Table

from autoshield.cli.common import add_data_args, console, data_of
from autoshield.core.errors import AutoshieldError
from autoshield.core.files import writable_folder
from autoshield.data.cifar import CLASSES
from autoshield.data.ops import MAX_MAGNITUDE, OPS, op_value
from autoshield.data.spaces import load_search_space


def register_data(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("data", help="check and prepare CIFAR-10, print counts per label")
    add_data_args(parser)
    parser.set_defaults(func=run_data)


def run_data(args: argparse.Namespace) -> None:
    start = time.perf_counter()
    data = data_of(args)
    seconds = time.perf_counter() - start
    table = Table(title=f"CIFAR-10 ({data.fingerprint}), loaded in {seconds:.1f} s")
    table.add_column("label")
    table.add_column("train", justify="right")
    table.add_column("test", justify="right")
    for name, n_train, n_test in zip(CLASSES, data.train.counts(), data.test.counts(), strict=True):
        table.add_row(name, str(n_train), str(n_test))
    table.add_row("total", str(len(data.train)), str(len(data.test)), style="bold")
    console.print(table)


def register_ops(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "ops", help="table of operations and their value at each magnitude; --sheet draws them"
    )
    parser.add_argument(
        "--space", default="randaugment14", help="search space name or TOML file (default: randaugment14)"
    )
    parser.add_argument("--all-magnitudes", action="store_true", help="show magnitudes 0-10, not only the space's")
    parser.add_argument("--sheet", type=Path, default=None, help="write a PNG of one real image under every cell")
    parser.add_argument("--image", type=int, default=0, help="test-set index of the image for --sheet (default: 0)")
    add_data_args(parser)
    parser.set_defaults(func=run_ops)


def run_ops(args: argparse.Namespace) -> None:
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
        writable_folder(args.sheet.parent)
        data = data_of(args)
        if not 0 <= args.image < len(data.test):
            raise AutoshieldError(f"--image must be a test-set index from 0 to {len(data.test) - 1}, got {args.image}")
        image = data.test.images[args.image]
        from autoshield.evaluation.sheets import ops_sheet

        ops_sheet(image, cells, args.sheet)
        console.print(f"wrote {args.sheet} (test image {args.image}, {CLASSES[int(data.test.labels[args.image])]})")
