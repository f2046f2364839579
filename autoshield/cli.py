"""The `autoshield` command: thin argument parsing over the library.

Every user error surfaces as one `error: ...` line and a non-zero exit.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from autoshield.config import PRESETS, Profile, load_profile
from autoshield.data import CLASSES, Cifar10, default_data_root, load_cifar10, stratified_subset
from autoshield.errors import AutoshieldError
from autoshield.ops import MAX_MAGNITUDE, OPS, op_value
from autoshield.policy import Policy, load_search_space, policy_from_argument

if TYPE_CHECKING:
    from autoshield.evaluate import AttackResult
    from autoshield.metrics import Estimate

console = Console()


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
    from autoshield.runtime import resolve_device
    from autoshield.train import train_classifier

    profile = _profile(args)
    policy = policy_from_argument(args.policy)
    data = _data(args)
    train = stratified_subset(data.train, per_class=profile.train_per_class, seed=profile.seed)
    test = stratified_subset(data.test, per_class=profile.test_per_class, seed=profile.seed)
    device = resolve_device(profile.device)
    console.print(
        f"policy: {policy}  profile: {profile.name}  train: {len(train)}  test: {len(test)}  device: {device}"
    )
    result = train_classifier(
        train=train,
        test=test,
        policy=policy,
        width=profile.width,
        norm=profile.norm,
        config=profile.train,
        seed=profile.seed,
        device=device,
        progress=True,
    )
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
    from autoshield.evaluate import attack_policy, victims
    from autoshield.metrics import reference_classifier
    from autoshield.runtime import resolve_device
    from autoshield.sheets import reconstruction_sheet
    from autoshield.train import train_classifier

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
        train = stratified_subset(data.train, per_class=profile.train_per_class, seed=profile.seed)
        test = stratified_subset(data.test, per_class=profile.test_per_class, seed=profile.seed)
        model = train_classifier(
            train=train,
            test=test,
            policy=policy,
            width=profile.width,
            norm=profile.norm,
            config=profile.train,
            seed=profile.seed,
            device=device,
            progress=True,
        ).model
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autoshield",
        description="Search per-label data augmentations that defend against gradient inversion, "
        "and compare them with DP-SGD.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except AutoshieldError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
