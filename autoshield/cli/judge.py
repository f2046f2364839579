"""`autoshield judge export|import`: move a judge between machines and studies; `study_reference`, the judge that
a command on an existing study scores with."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from autoshield.cli.common import (
    add_profile_args,
    add_storage_arg,
    add_study_name_arg,
    console,
    data_of,
    profile_of,
    storage_of,
)
from autoshield.core.config import Profile
from autoshield.core.errors import AutoshieldError
from autoshield.data.cifar import Cifar10
from autoshield.privacy.reference import Reference

DESCRIPTION = (
    "Attack accuracy is the judge's verdict on a reconstruction, and judges retrained on two machines differ, so a "
    "study stores the judge it is scored with in its own storage (under the SHA-256 of its weights) and every "
    "worker, confirm, report and attack --study uses exactly that one. export writes a judge to a file: the one "
    "stored for --study, or this machine's for the profile (trained first if this machine has none). import "
    "makes a file's judge the one of --study (a study that already has another is refused), or this machine's for "
    "the profile (what attack and new studies use). A judge of another width, data or victim pool is refused."
)


def register_judge(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "judge", help="export or import the judge, per study or per machine", description=DESCRIPTION
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="{export,import}")
    for name, run, what in (
        ("export", run_export, "write the judge to FILE"),
        ("import", run_import, "make FILE's judge the study's, or this machine's"),
    ):
        action = actions.add_parser(name, help=what, description=DESCRIPTION)
        action.add_argument("file", type=Path, metavar="FILE", help="the judge's file")
        add_study_name_arg(action, default=None, role=" whose judge this is; none: this machine's")
        add_storage_arg(action)
        add_profile_args(action)
        action.set_defaults(func=run)


def run_export(args: argparse.Namespace) -> None:
    from autoshield.core.files import atomic_path, writable_folder
    from autoshield.core.runtime import resolve_device
    from autoshield.privacy.judge_file import judge_bytes
    from autoshield.privacy.reference import local_judge
    from autoshield.study.judges import stored_judge
    from autoshield.study.storage import open_storage, redact

    writable_folder(args.file.resolve().parent)
    if args.study:
        url = storage_of(args)
        open_storage(url, heartbeat=False, create=False)
        judge = stored_judge(url=url, name=args.study)
        if judge is None:
            raise AutoshieldError(f"no judge is stored for study {args.study!r} in {redact(url)}")
    else:
        profile = profile_of(args)
        judge = local_judge(data_of(args), profile, device=resolve_device(profile.device), progress=True)
    payload = judge_bytes(judge)
    with atomic_path(args.file) as tmp:
        tmp.write_bytes(payload)
    console.print(
        f"judge {judge.digest[:12]} ({judge.accuracy.overall:.1%} clean test accuracy) written to {args.file} "
        f"({len(payload) / 1e6:.1f} MB)"
    )


def run_import(args: argparse.Namespace) -> None:
    from autoshield.privacy.judge_file import JudgeIdentity, check_fits, read_judge
    from autoshield.privacy.reference import install_judge
    from autoshield.study.judges import store_judge
    from autoshield.study.storage import open_storage, redact

    try:
        payload = args.file.read_bytes()
    except OSError as error:
        raise AutoshieldError(f"cannot read {args.file}: {error.strerror or error}") from None
    judge = read_judge(payload, source=str(args.file))
    profile, data = profile_of(args), data_of(args)
    if args.study:
        url = storage_of(args)
        check_fits(judge, JudgeIdentity.of(data, profile), source=str(args.file))
        open_storage(url)
        stored = store_judge(url=url, name=args.study, judge=judge)
        if stored.digest != judge.digest:
            raise AutoshieldError(
                f"study {args.study!r} in {redact(url)} is scored by judge {stored.digest[:12]}, not "
                f"{judge.digest[:12]}: a study keeps one judge (import it under a new --study)"
            )
        console.print(f"judge {judge.digest[:12]} is the judge of study {args.study!r} in {redact(url)}")
        return
    path = install_judge(judge, data=data, profile=profile, source=str(args.file))
    console.print(f"judge {judge.digest[:12]} is this machine's judge for profile {profile.name} ({path})")


def study_reference(*, url: str, name: str, data: Cifar10, profile: Profile, device: torch.device) -> Reference:
    """The judge stored for the studies named `name`; this machine's for a study from before judges were stored
    (said in one line). A storage or a name that holds no study is refused."""
    from autoshield.core.choices import KINDS
    from autoshield.privacy.judge_file import JudgeIdentity, check_fits
    from autoshield.privacy.reference import reference_classifier
    from autoshield.study.catalog import find_study
    from autoshield.study.judges import stored_judge
    from autoshield.study.storage import open_storage, redact

    storage = open_storage(url, heartbeat=False, create=False, writes=False)
    if not any(find_study(storage, name, kind) for kind in KINDS):
        raise AutoshieldError(f"no study named {name!r} in {redact(url)}")
    judge = stored_judge(url=url, name=name)
    if judge is None:
        console.print(f"[yellow]study {name!r} stored no judge (it predates them): scoring with this machine's")
        return reference_classifier(data, profile, device=device, progress=True)
    check_fits(judge, JudgeIdentity.of(data, profile), source=f"the judge stored for {name!r}")
    return Reference.of(judge, profile=profile, device=device)
