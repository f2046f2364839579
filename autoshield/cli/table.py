"""`autoshield table export|import`: move a study's attack table between machines that share no database."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from autoshield.cli.common import add_profile_args, add_storage_arg, add_study_name_arg, console, storage_of
from autoshield.core.errors import AutoshieldError

if TYPE_CHECKING:
    from autoshield.study.table_file import TableIdentity

DESCRIPTION = (
    "Every judged (victim, cell, attacker) result of a study is one row of the attack table in the study's storage, "
    "which every worker reads before it attacks. export writes the rows scored by --study's judge to FILE "
    "(gzipped JSON lines, no images, with a checksum); import adds FILE's rows to the storage of --study, so "
    "that its trials read them instead of attacking. The study's judge is the one stored for --study, or, "
    "before the study exists, this machine's for the profile (which the study will then store). A file of "
    "other data, another judge or other attack settings is refused, as is a damaged one."
)


def register_table(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("table", help="export or import a study's attack table", description=DESCRIPTION)
    actions = parser.add_subparsers(dest="action", required=True, metavar="{export,import}")
    for name, run, what in (
        ("export", run_export, "write the study's attack table to FILE"),
        ("import", run_import, "add FILE's rows to the study's attack table"),
    ):
        action = actions.add_parser(name, help=what, description=DESCRIPTION)
        action.add_argument("file", type=Path, metavar="FILE", help="the table's file (e.g. table.jsonl.gz)")
        add_study_name_arg(action, default="autoshield", role=" whose attack table this is")
        add_storage_arg(action)
        add_profile_args(action)
        action.set_defaults(func=run)


def run_export(args: argparse.Namespace) -> None:
    from autoshield.core.files import writable_folder
    from autoshield.study.storage import redact
    from autoshield.study.table_file import export_table

    writable_folder(args.file.resolve().parent)
    url = storage_of(args)
    identity = _identity(args, url, create=False)
    rows = export_table(url=url, path=args.file, identity=identity)
    console.print(f"{rows} rows of study {args.study!r} in {redact(url)} written to {args.file} ({_named(identity)})")


def run_import(args: argparse.Namespace) -> None:
    from autoshield.study.storage import redact
    from autoshield.study.table_file import import_table

    url = storage_of(args)
    identity = _identity(args, url, create=True)
    moved = import_table(url=url, path=args.file, identity=identity)
    console.print(
        f"{moved.rows} rows read from {args.file}, {moved.new} new to the attack table of study {args.study!r} in "
        f"{redact(url)} ({_named(identity)})"
    )


def _identity(args: argparse.Namespace, url: str, *, create: bool) -> TableIdentity:
    """What the study's rows share: its data, its judge (stored, or this machine's before it exists) and its
    attack settings. A study made with another profile or data is refused, not silently given rows."""
    from autoshield.cli.common import data_of, profile_of
    from autoshield.core.choices import KINDS
    from autoshield.core.runtime import resolve_device
    from autoshield.evaluation.reconstruct import settings_digest
    from autoshield.privacy.reference import local_judge
    from autoshield.study.catalog import find_study
    from autoshield.study.judges import stored_judge
    from autoshield.study.records import StudyInfo
    from autoshield.study.storage import open_storage, redact
    from autoshield.study.table_file import TableIdentity

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
    judge = stored_judge(url=url, name=args.study)
    if judge is None and not create:
        raise AutoshieldError(f"no judge is stored for study {args.study!r} in {redact(url)}, so it has no table")
    if judge is None:
        judge = local_judge(data, profile, device=resolve_device(profile.device), progress=True)
    return TableIdentity(data=data.fingerprint, judge=judge.digest, settings=settings_digest(profile))


def _named(identity: TableIdentity) -> str:
    return f"judge {identity.judge[:12]}, data {identity.data[:12]}, attack settings {identity.settings[:12]}"
