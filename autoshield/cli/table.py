"""`autoshield table export|import`: move a study's attack table between machines that share no database."""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from autoshield.cli.common import add_profile_args, add_storage_arg, add_study_name_arg, console, storage_of, whole
from autoshield.core.choices import ATTACKER_CHOICES
from autoshield.core.errors import AutoshieldError

if TYPE_CHECKING:
    from autoshield.core.config import Profile
    from autoshield.data.cifar import Cifar10, Split
    from autoshield.data.policy import Policy
    from autoshield.data.spaces import SearchSpace
    from autoshield.evaluation.prefill import Pending
    from autoshield.evaluation.table import Problem
    from autoshield.study.table_file import TableIdentity

DESCRIPTION = (
    "Every judged (victim, cell, attacker) result of a study is one row of the attack table in the study's "
    "storage, which every worker reads before it attacks. build computes the rows a grid or search over --space "
    "needs: it attacks every cell's victims in chunks that mix cells (at init one network serves them all), "
    "caching and judging each chunk into the table as it ends. Builders on several machines that share the "
    "storage claim each chunk's problems first, so every problem is attacked once; a killed builder's claims pass "
    "to the others (at once on its own machine, after 5 minutes without its heartbeat elsewhere). export "
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
        help="whose rows to judge, as --attacker of grid and search: naive (default), learned (trains each cell's "
        "network first), adaptive (attacked cell by cell, not mixed), worst (naive, post-hoc, learned and adaptive) "
        "or calibrated (the same, on the calibration slots too); the chunks compute the naive attack",
    )
    build.add_argument(
        "--chunk",
        type=whole(1, 1_000_000),
        default=200,
        help="problems per chunk (200): a killed build loses at most one; on a GPU, raise --set attack.batch_size",
    )
    build.add_argument(
        "--slots",
        type=pool_slots,
        metavar="START:STOP",
        help="the victim pool slots per label to attack (default: the study's own, 0:images_per_label); e.g. the "
        "slots a later `confirm --first-slot START --victims N` will score, which then reads them from the table",
    )
    build.add_argument(
        "--attack-only",
        action="store_true",
        help="attack and cache the naive problems, and judge nothing: no study, storage or judge is touched. For a "
        "machine lent for minutes (a GPU): pack its cache's attacks/ folder, unpack it into the cache of the "
        "machine that holds the study, and a plain build there finds every problem cached and only judges",
    )
    build.add_argument(
        "--skip",
        type=Path,
        metavar="FILE",
        help="with --attack-only: an exported table whose naive problems are judged already, and are not attacked",
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
    from autoshield.core.runtime import beating, resolve_device
    from autoshield.data.spaces import load_search_space
    from autoshield.data.victims import require_calibration, victim_pool
    from autoshield.evaluation.attackers import attackers_of
    from autoshield.evaluation.evaluate import attack_policy, learned_for
    from autoshield.evaluation.lineup import pool_lineup
    from autoshield.evaluation.prefill import pending, prefill
    from autoshield.evaluation.reconstruct import inverts_through
    from autoshield.evaluation.table import WAIT_SECONDS
    from autoshield.privacy.cache import AttackCache
    from autoshield.privacy.judge_file import JudgeIdentity
    from autoshield.privacy.reference import local_judge
    from autoshield.study.attack_table import StudyTable, all_rows
    from autoshield.study.claims import BEAT_SECONDS, beat, builder_id, claim, finish, unfinished
    from autoshield.study.judges import study_judge
    from autoshield.study.storage import redact

    url = storage_of(args)
    space = load_search_space(args.space)
    attackers = attackers_of(args.attacker)
    if args.attack_only:
        _attack_only(args, space=space)
        return
    if args.skip is not None:
        raise AutoshieldError("--skip goes with --attack-only: a build that judges reads its study's table instead")
    profile, data = _opened(args, url, create=True)
    device = resolve_device(profile.device)
    first, stop = args.slots or (0, profile.images_per_label)
    scored = victim_pool(profile).draw(data.train, start=first, count=stop - first)  # refused before any work
    if args.attacker == "calibrated" and args.slots is None:  # the victims its choice is made on, too
        scored = victim_pool(profile).draw_slots(data.train, [*range(first, stop), *require_calibration(profile)])
    judge, _ = study_judge(
        url=url,
        name=args.study,
        identity=JudgeIdentity.of(data, profile),
        local=lambda: local_judge(data, profile, device=device, progress=True),
    )
    policies = _policies(space)
    cells = [policy.cells[0] for policy in policies[1:]]
    cache = AttackCache(cache_dir() / "attacks")
    reference, table, lineup = (
        judge.model(seed=profile.seed, device=device),
        StudyTable(url),
        pool_lineup(data.train, profile),
    )
    todo = pending(policies=policies, victims=scored, profile=profile, cache=cache)
    stored = table.read([use for problem in todo for use in _rows_of(problem, policies, scored, judge.digest)])
    todo = [q for q in todo if not all(u.key in stored for u in _rows_of(q, policies, scored, judge.digest))]
    console.print(
        f"table of study {args.study!r} in {redact(url)}: {len(policies)} cells x {len(scored)} victims, "
        f"{len(todo)} problems to attack in chunks of {args.chunk} (judge {judge.digest[:12]})"
    )
    owner = builder_id()
    inverse = learned_for(attackers, cells=cells, data=data, profile=profile, device=device, progress=True)
    score = functools.partial(
        attack_policy,
        profile=profile,
        reference=reference,
        device=device,
        cache=cache,
        inverse=inverse,
        lineup=lineup,
        table=table,
    )

    def claimed(part: Sequence[Pending]) -> list[Pending]:
        granted = set(claim(url=url, keys=[q.key for q in part], owner=owner))
        return [q for q in part if q.key in granted]

    def judged(part: Sequence[Pending], _: float) -> None:
        """The chunk's rows into the table, then its claims done: another builder then neither attacks it nor
        waits for it. The post-hoc and learned rows too, since they need the reconstructions, which only this cache
        holds."""
        held = StudyTable(url, owner=owner, held=True)  # the chunk's claims stay open until all its rows are in
        for p, slots in _by_policy(part).items():
            subset = scored.take(slots)
            # every row this chunk's reconstructions give: the post-hoc and learned ones, and the adaptive one where
            # it does not invert through the op (Identity), so that no other builder attacks them again for it
            naive_too = not inverts_through(policies[p], "adaptive")
            same = [a for a in attackers if a in ("posthoc", "learned") or (a == "adaptive" and naive_too)]
            for name in ("naive", *same):
                score(policy=policies[p], victims=subset, attacker=name, table=held)
        finish(url=url, keys=[q.key for q in part], owner=owner)
        bar.update(task, advance=len(part))

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
    )
    seconds, left = 0.0, todo
    with (
        Progress(*columns, TimeRemainingColumn(), console=console) as bar,
        beating(lambda: beat(url=url, owner=owner), every=BEAT_SECONDS),
    ):
        task = bar.add_task("attack", total=len(todo))
        while left:
            seconds += prefill(
                left, profile=profile, device=device, cache=cache, chunk=args.chunk, claim=claimed, on_chunk=judged
            )
            left = [q for q in left if q.key in set(unfinished(url=url, keys=[q.key for q in left]))]
            if left:  # held by builders still at work: wait for their rows, or take over if they stop
                bar.update(task, description=f"waiting for {len(left)} held elsewhere")
                time.sleep(WAIT_SECONDS)
    # the rows a naive chunk did not give (the adaptive attack's), policy by policy; each stores its rows batch by
    # batch (`attack.batch_size` victims), so a stopped build loses only the batch in flight here
    with Progress(*columns, TimeRemainingColumn(), console=console) as bar:
        task = bar.add_task("every attacker", total=len(attackers) * len(policies) * len(scored))
        for name in attackers:
            for policy in policies:
                score(policy=policy, victims=scored, attacker=name)
                bar.update(task, advance=len(scored))
    rows = sum(1 for _ in all_rows(url=url, judge=judge.digest))
    rate = f", {seconds / len(todo):.1f} s per problem" if todo and seconds else ""
    console.print(
        f"attacked {len(todo)} problems in {seconds:.0f} s{rate}; the table holds {rows} rows under this judge"
    )


def _attack_only(args: argparse.Namespace, *, space: SearchSpace) -> None:
    """`build --attack-only`: the naive problems of every cell on the study's victim slots, attacked in chunks into
    the local attack cache (the keys a build elsewhere looks up), with nothing judged or stored."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from autoshield.cli.common import data_of, profile_of
    from autoshield.core.files import cache_dir
    from autoshield.core.runtime import resolve_device
    from autoshield.data.victims import victim_pool
    from autoshield.evaluation.prefill import pending, prefill
    from autoshield.privacy.cache import AttackCache
    from autoshield.study.table_file import read_table_file

    # judged elsewhere (a damaged file is refused before any work): only what the table lacks is attacked here
    rows = read_table_file(args.skip)[1] if args.skip is not None else []
    judged = {row.problem.attack for row in rows if row.problem.attacker == "naive"}
    profile, data = profile_of(args), data_of(args)
    first, stop = args.slots or (0, profile.images_per_label)
    scored = victim_pool(profile).draw(data.train, start=first, count=stop - first)
    policies = _policies(space)
    cache = AttackCache(cache_dir() / "attacks")
    todo = [q for q in pending(policies=policies, victims=scored, profile=profile, cache=cache) if q.key not in judged]
    console.print(
        f"attack only: {len(policies)} cells x {len(scored)} victims, {len(todo)} problems to attack (neither cached "
        f"nor in --skip) in chunks of {args.chunk}, into {cache.root}"
    )
    columns = (TextColumn("[bold]attack"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("attack", total=len(todo))
        seconds = prefill(
            todo,
            profile=profile,
            device=resolve_device(profile.device),
            cache=cache,
            chunk=args.chunk,
            on_chunk=lambda part, _: bar.update(task, advance=len(part)),
        )
    console.print(f"attacked {len(todo)} problems in {seconds:.0f} s; judge them with a build that reads this cache")


def _policies(space: SearchSpace) -> list[Policy]:
    """Identity first, then each other cell of `space` on every label: the policies a table build serves, judging or
    attack-only alike, so both list the same problems."""
    from autoshield.data.policy import Policy

    return [Policy.identity(), *(Policy.uniform(cell) for cell in space.cells() if str(cell) != "Identity")]


def pool_slots(text: str) -> tuple[int, int]:
    """An argparse type: victim pool slots START:STOP, half-open as in Python, with 0 <= START < STOP."""
    start, sep, stop = text.partition(":")
    try:
        slots = int(start), int(stop)
    except ValueError:
        slots = (-1, -1)
    if not sep or not 0 <= slots[0] < slots[1]:
        raise argparse.ArgumentTypeError(f"expected START:STOP with 0 <= START < STOP, e.g. 5:10, got {text!r}")
    return slots


def _rows_of(problem: Pending, policies: Sequence[Policy], scored: Split, judge: str) -> list[Problem]:
    """The naive rows a problem's attack gives: one per (policy, victim) it serves."""
    from autoshield.evaluation.table import Problem

    label = lambda v: int(scored.labels[v])  # noqa: E731
    return [Problem(problem.key, str(policies[p].cells[label(v)]), "naive", judge) for p, v in problem.uses]


def _by_policy(part: Sequence[Pending]) -> dict[int, list[int]]:
    """A chunk's victims by the policy they serve, in victim order."""
    grouped: dict[int, list[int]] = {}
    for problem in part:
        for p, v in problem.uses:
            grouped.setdefault(p, []).append(v)
    return {p: sorted(set(v)) for p, v in grouped.items()}


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
