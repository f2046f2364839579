"""`autoshield plan`: how many victims a claim needs, and what attacking them costs on this machine."""

from __future__ import annotations

import argparse
import math

from autoshield.cli.common import add_profile_args, console, fraction, profile_of, whole
from autoshield.core.errors import AutoshieldError
from autoshield.data.cifar import CLASSES

SCOPES = ("label", "overall")


def register_plan(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "plan",
        help="victims per label needed to detect an effect under Holm, with the attack's cost on this machine",
        description="A paired claim (a cell against Identity on the same victims) is tested by exact McNemar over "
        "the victims leaked under one and not the other, and Holm corrects over the family of cells (x labels). "
        "plan prints the power of the profile's design and the victims needed for --power, for the effect "
        "given as the shares of victims leaked only under Identity and only under the cell; then times a short "
        "probe of the profile's attack here and prices the study. Example, a Solarize:9-sized effect over the "
        "58-cell grid per label: autoshield plan --cells 58 --only-identity 0.34 --only-cell 0.08",
    )
    parser.add_argument("--cells", type=whole(1, 10_000), default=58, help="cells or policies compared (58)")
    parser.add_argument(
        "--scope",
        choices=SCOPES,
        default="label",
        help="label (default): one test per cell and label, Holm over cells x 10; overall: one per cell",
    )
    parser.add_argument("--only-identity", type=fraction, required=True, help="share leaked under Identity only")
    parser.add_argument("--only-cell", type=fraction, required=True, help="share leaked under the cell only")
    parser.add_argument("--power", type=fraction, default=0.8, help="power to reach (0.8)")
    parser.add_argument("--no-probe", action="store_true", help="skip the timed attack probe (no cost estimate)")
    add_profile_args(parser)
    parser.set_defaults(func=run_plan)


def run_plan(args: argparse.Namespace) -> None:
    from autoshield.privacy.power import MAX_VICTIMS, mcnemar_power, victims_for_power

    if args.only_identity + args.only_cell > 1:
        raise AutoshieldError("--only-identity and --only-cell are shares of one set of victims: their sum is > 1")
    profile = profile_of(args)
    per_label = args.scope == "label"
    family = args.cells * (len(CLASSES) if per_label else 1)
    effect = dict(only_baseline=args.only_identity, only_cell=args.only_cell, family=family)
    design = profile.images_per_label * (1 if per_label else len(CLASSES))
    now = mcnemar_power(victims=design, **effect)
    console.print(
        f"family: {family:,} tests ({args.cells:,} cells{' x 10 labels' if per_label else ''}), each at "
        f"α = 0.05 / {family:,} (Holm's first step)"
    )
    console.print(
        f"effect: {args.only_identity:.0%} of victims leaked under Identity only, {args.only_cell:.0%} under the "
        f"cell only"
    )
    console.print(
        f"profile {profile.name}: {design} victims per test ({profile.images_per_label} per label): power {now:.0%}"
    )
    needed = victims_for_power(power=args.power, **effect)
    if needed is None:
        console.print(f"[yellow]{args.power:.0%} power is out of reach within {MAX_VICTIMS:,} victims per test")
        return
    labelled = needed if per_label else math.ceil(needed / len(CLASSES))
    console.print(
        f"for {args.power:.0%} power: {needed:,} victims per test, {labelled:,} per label "
        f"(--set images_per_label={labelled}; victim_pool_per_label is {profile.victim_pool_per_label})"
    )
    if args.no_probe:
        return
    from autoshield.core.runtime import resolve_device
    from autoshield.evaluation.cost import attack_seconds_per_victim

    device = resolve_device(profile.device)
    seconds = attack_seconds_per_victim(profile, device=device)
    attacks = (args.cells + 1) * labelled * len(CLASSES)  # every cell and Identity, on the same victims
    console.print(
        f"attack on {device}: {seconds:.1f} s per victim at {profile.attack.iterations:,} iterations (timed probe); "
        f"{attacks:,} victims to attack: {attacks * seconds / 3600:,.1f} h on this machine, naive attacker"
        + (" (an upper bound: the early stop ends restarts sooner)" if profile.attack.stop_patience else "")
    )
