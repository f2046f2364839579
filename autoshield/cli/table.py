"""`autoshield table export|import`: move a study's attack table between machines that share no database."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from autoshield.cli.common import add_profile_args, add_storage_arg, add_study_name_arg, console, storage_of, whole
from autoshield.core.choices import ATTACKER_CHOICES
from autoshield.core.errors import AutoshieldError

if TYPE_CHECKING:
    from autoshield.core.config import Profile
    from autoshield.data.cifar import Cifar10
    from autoshield.study.table_file import TableIdentity

DESCRIPTION = (
    "Every judged (victim, cell, attacker) result of a study is one row of the attack table in the study's "
    "storage, which every worker reads before it attacks. build computes the rows a grid or search over --space "
    "needs: it attacks every cell's victims in chunks that mix cells (at init one network serves them all), "
    "caching each chunk as it ends, then judges each cell with the study's judge and stores its rows. export "
    "writes the rows scored by --study's judge to FILE (gzipped JSON lines, no images, with a checksum); import "
    "adds FILE's rows to the storage of --study, so that its trials read them instead of attacking. The study's "
    "judge is the one stored for --study, or, before the study exists, this machine's for the profile (which the "
    "study will then store). A file of other data, another judge or other attack settings is refused, as is a "
    "damaged one."
)


def register_table(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("table", help="export or import a study's attack table", description=DESCRIPTION)
    actions = parser.add_subparsers(dest="action", required=True, metavar="{export,import}")
    build = actions.add_parser(
        "build", help="attack and judge every cell of --space into the table", description=DESCRIPTION
    )
    build.add_argument("--space", default="randaugment14", help="search space name or TOML (randaugment14)")
    build.add_argument(
        "--attacker",
        choices=ATTACKER_CHOICES,
        default="naive",
        help="whose rows to judge, as --attacker of grid and search: naive (default), adaptive (attacked cell by "
        "cell, not mixed) or worst (naive, post-hoc and adaptive); the chunks compute the naive attack",
    )
    build.add_argument(
        "--chunk",
        type=whole(1, 1_000_000),
        default=200,
        help="problems per chunk (200): a killed build loses at most one; on a GPU, raise --set attack.batch_size",
    )
    build.set_defaults(func=run_build)
    for name, run, what in (
        ("export", run_export, "write the study's attack table to FILE"),
        ("import", run_import, "add FILE's rows to the study's attack table"),
    ):
        action = actions.add_parser(name, help=what, description=DESCRIPTION)
        action.add_argument("file", type=Path, metavar="FILE", help="the table's file (e.g. table.jsonl.gz)")
        action.set_defaults(func=run)
    for action in (build, *(actions.choices[name] for name in ("export", "import"))):
        add_study_name_arg(action, default="autoshield", role=" whose attack table this is")
        add_storage_arg(action)
        add_profile_args(action)


def run_build(args: argparse.Namespace) -> None:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from autoshield.core.files import cache_dir
    from autoshield.core.runtime import resolve_device
    from autoshield.data.policy import Policy
    from autoshield.data.spaces import load_search_space
    from autoshield.evaluation.attackers import attackers_of
    from autoshield.evaluation.evaluate import attack_policy, victims
    from autoshield.evaluation.lineup import pool_lineup
    from autoshield.evaluation.prefill import pending, prefill
    from autoshield.privacy.cache import AttackCache
    from autoshield.privacy.judge_file import JudgeIdentity
    from autoshield.privacy.reference import local_judge
    from autoshield.study.attack_table import StudyTable, all_rows
    from autoshield.study.judges import study_judge
    from autoshield.study.storage import redact

    url = storage_of(args)
    space = load_search_space(args.space)
    attackers = attackers_of(args.attacker)
    profile, data = _opened(args, url, create=True)
    device = resolve_device(profile.device)
    judge, _ = study_judge(
        url=url,
        name=args.study,
        identity=JudgeIdentity.of(data, profile),
        local=lambda: local_judge(data, profile, device=device, progress=True),
    )
    cells = [cell for cell in space.cells() if str(cell) != "Identity"]
    policies = [Policy.identity(), *(Policy.uniform(cell) for cell in cells)]
    scored, cache = victims(data, profile), AttackCache(cache_dir() / "attacks")
    todo = pending(policies=policies, victims=scored, profile=profile, cache=cache)
    console.print(
        f"table of study {args.study!r} in {redact(url)}: {len(policies)} cells x {len(scored)} victims, "
        f"{len(todo)} problems to attack in chunks of {args.chunk} (judge {judge.digest[:12]})"
    )
    columns = (TextColumn("[bold]attack"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"))
    with Progress(*columns, TimeRemainingColumn(), console=console) as bar:
        task = bar.add_task("attack", total=len(todo))
        seconds = prefill(
            todo,
            profile=profile,
            device=device,
            cache=cache,
            chunk=args.chunk,
            on_chunk=lambda done, _: bar.update(task, completed=done),
        )
    reference, table, lineup = (
        judge.model(seed=profile.seed, device=device),
        StudyTable(url),
        pool_lineup(data.train, profile),
    )
    for name in attackers:
        for policy in policies:
            attack_policy(
                policy=policy,
                victims=scored,
                profile=profile,
                reference=reference,
                device=device,
                cache=cache,
                attacker=name,
                lineup=lineup,
                table=table,
            )
    rows = sum(1 for _ in all_rows(url=url, judge=judge.digest))
    rate = f", {seconds / len(todo):.1f} s per problem" if todo else ""
    console.print(
        f"attacked {len(todo)} problems in {seconds:.0f} s{rate}; the table holds {rows} rows under this judge"
    )


def run_export(args: argparse.Namespace) -> None:
    from autoshield.core.files import writable_folder
    from autoshield.study.judges import stored_judge
    from autoshield.study.storage import redact
    from autoshield.study.table_file import export_table

    writable_folder(args.file.resolve().parent)
    url = storage_of(args)
    profile, data = _opened(args, url, create=False)
    judge = stored_judge(url=url, name=args.study)
    if judge is None:
        raise AutoshieldError(f"no judge is stored for study {args.study!r} in {redact(url)}, so it has no table")
    identity = _identity(judge.digest, profile, data)
    rows = export_table(url=url, path=args.file, identity=identity)
    console.print(f"{rows} rows of study {args.study!r} in {redact(url)} written to {args.file} ({_named(identity)})")


def run_import(args: argparse.Namespace) -> None:
    from autoshield.core.runtime import resolve_device
    from autoshield.privacy.reference import local_judge
    from autoshield.study.judges import stored_judge
    from autoshield.study.storage import redact
    from autoshield.study.table_file import import_table

    url = storage_of(args)
    profile, data = _opened(args, url, create=True)
    judge = stored_judge(url=url, name=args.study)  # before the study exists: the one it will store
    if judge is None:
        judge = local_judge(data, profile, device=resolve_device(profile.device), progress=True)
    identity = _identity(judge.digest, profile, data)
    moved = import_table(url=url, path=args.file, identity=identity)
    console.print(
        f"{moved.rows} rows read from {args.file}, {moved.new} new to the attack table of study {args.study!r} in "
        f"{redact(url)} ({_named(identity)})"
    )


def _opened(args: argparse.Namespace, url: str, *, create: bool) -> tuple[Profile, Cifar10]:
    """The storage opened, the profile and the data loaded, once; a study of the name made with another profile or
    data is refused here, before any work, rather than given rows that answer another question."""
    from autoshield.cli.common import data_of, profile_of
    from autoshield.core.choices import KINDS
    from autoshield.study.catalog import find_study
    from autoshield.study.records import StudyInfo
    from autoshield.study.storage import open_storage, redact

    storage = open_storage(url, heartbeat=False, create=create)
    profile, data = profile_of(args), data_of(args)
    for kind in KINDS:
        study = find_study(storage, args.study, kind)
        info = StudyInfo.read(study) if study else None
        if info and (info.profile_fingerprint, info.data) != (profile.fingerprint(), data.fingerprint):
            raise AutoshieldError(
                f"study {study.study_name!r} in {redact(url)} was made with another profile or data: give the "
                f"--profile, --set and --data-root it was made with"
            )
    return profile, data


def _identity(judge: str, profile: Profile, data: Cifar10) -> TableIdentity:
    """What the study's rows share: its data, its judge and its attack settings."""
    from autoshield.evaluation.reconstruct import settings_digest
    from autoshield.study.table_file import TableIdentity

    return TableIdentity(data=data.fingerprint, judge=judge, settings=settings_digest(profile))


def _named(identity: TableIdentity) -> str:
    return f"judge {identity.judge[:12]}, data {identity.data[:12]}, attack settings {identity.settings[:12]}"
