"""`autoshield confirm`: re-score the found policies on fresh victims, paired with Identity."""

from __future__ import annotations

import argparse

from autoshield.cli.common import (
    add_profile_args,
    add_study_args,
    console,
    data_of,
    fraction,
    print_rows,
    profile_of,
    storage_of,
)
from autoshield.core.choices import DEFAULT_TOLERANCE
from autoshield.core.errors import AutoshieldError

DEFAULT_VICTIMS = 10


def register_confirm(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "confirm",
        help="re-attack the found policies (grid best per label, grid cells significantly better than Identity, "
        "the search's Pareto front) and Identity on fresh victims",
        description="A policy selected because it scored best on the study's victims is biased towards them. "
        "confirm attacks it, with Identity, on victims the study never scored (held-out pool slots after the "
        "study's), tests each against Identity on the same victims and starts, and stores the results on the "
        "study for `report`. Costs one attack of 10 x --victims images per policy.",
    )
    parser.add_argument(
        "--victims",
        type=int,
        default=None,
        help=f"fresh victims per label (default: {DEFAULT_VICTIMS}, or what the pool has left if fewer); at most "
        "victim_pool_per_label - 2 x images_per_label: the pool's last images_per_label slots are calibration victims",
    )
    parser.add_argument(
        "--first-slot",
        type=int,
        default=None,
        help="first held-out pool slot to score (default: the first that neither the study nor an earlier "
        "confirmation has scored); slots a confirmation scored are refused",
    )
    parser.add_argument(
        "--tolerance",
        type=fraction,
        default=DEFAULT_TOLERANCE,
        help=f"grid best cell per label: allowed model-accuracy drop ({DEFAULT_TOLERANCE:g})",
    )
    add_study_args(parser)
    add_profile_args(parser)
    parser.set_defaults(func=run_confirm)


def run_confirm(args: argparse.Namespace) -> None:
    from autoshield.cli.judge import study_reference
    from autoshield.core.files import cache_dir
    from autoshield.core.runtime import resolve_device
    from autoshield.data.victims import calibration_slots
    from autoshield.privacy.cache import AttackCache
    from autoshield.report.confirmed import confirmation_rows, confirmed_claims
    from autoshield.study.attack_table import StudyTable
    from autoshield.study.catalog import find_study
    from autoshield.study.confirm import candidates, check_fresh, check_profile, confirm, next_fresh_slot
    from autoshield.study.records import ConfirmationRecord
    from autoshield.study.storage import open_storage, redact

    profile = profile_of(args)
    storage = open_storage(storage_of(args), heartbeat=False, create=False)
    grid, search = find_study(storage, args.study, "grid"), find_study(storage, args.study, "search")
    if grid is None and search is None:
        raise AutoshieldError(f"no grid or search study named {args.study!r} in {redact(storage_of(args))}")
    earlier = [r for s in (grid, search) if s for r in ConfirmationRecord.read_all(s)]
    first = (
        next_fresh_slot(earlier, study_victims=profile.images_per_label) if args.first_slot is None else args.first_slot
    )
    free = calibration_slots(profile).start - first  # the pool's last slots calibrate, never confirm
    victims = min(DEFAULT_VICTIMS, free) if args.victims is None else args.victims
    if victims < 1:
        raise AutoshieldError(f"--victims must be >= 1, got {victims}")
    if victims > free:
        raise AutoshieldError(
            f"--victims {victims} is more than the victim pool holds from slot {first} ({free} per label of "
            f"victim_pool_per_label {profile.victim_pool_per_label}, less its {profile.images_per_label} calibration "
            "slots)"
        )
    check_fresh(earlier, first_slot=first, victims_per_label=victims, study_victims=profile.images_per_label)
    data = data_of(args)
    infos = [check_profile(study, profile, data) for study in (grid, search) if study is not None]
    scoring = {(info.attacker, info.privacy) for info in infos}
    if len(scoring) > 1:
        raise AutoshieldError(
            f"the grid and the search of {args.study!r} score differently (attacker, privacy): {scoring}"
        )
    ((attacker, privacy),) = scoring
    chosen = candidates(grid=grid, search=search, tolerance=args.tolerance)
    console.print(
        f"confirming {len(chosen)} policies on {victims} fresh victims per label (pool slots {first}–"
        f"{first + victims - 1} of {profile.victim_pool_per_label}), attacker {attacker}, privacy {privacy}"
    )
    device = resolve_device(profile.device)
    reference = study_reference(url=storage_of(args), name=args.study, data=data, profile=profile, device=device)
    console.print(f"judge {reference.digest[:12]}: {reference.accuracy.overall:.1%} clean test accuracy")
    records = confirm(
        chosen=chosen,
        data=data,
        profile=profile,
        reference=reference.model,
        device=device,
        victims_per_label=victims,
        first_slot=first,
        attacker=attacker,
        privacy=privacy,
        cache=AttackCache(cache_dir() / "attacks"),
        table=StudyTable(storage_of(args)),
        progress=True,
    )
    for study in {c.study.study_name: c.study for c in chosen}.values():
        ConfirmationRecord.write_all(study, records)
    print_rows(f"found vs confirmed on {10 * victims} fresh victims", confirmation_rows(records))
    for line in confirmed_claims(records):
        console.print(line)
