"""`autoshield train` and `autoshield attack`: one policy's utility, or its privacy, without a study."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from autoshield.cli.common import (
    POLICY_HELP,
    add_profile_args,
    add_storage_arg,
    add_study_name_arg,
    console,
    data_of,
    label_arg,
    network_of,
    print_rows,
    profile_of,
    storage_of,
)
from autoshield.core.choices import ATTACKERS
from autoshield.core.errors import AutoshieldError
from autoshield.data.policy import Policy, policy_from_argument

if TYPE_CHECKING:
    from autoshield.core.config import Profile
    from autoshield.dp.config import DPConfig
    from autoshield.evaluation.table import RowStore

ATTACK_CHOICES = (*ATTACKERS, "worst")


def register_train(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("train", help="train ResNet-18 on policy-transformed data, print per-label accuracy")
    parser.add_argument("--policy", default="identity", help=POLICY_HELP)
    add_profile_args(parser)
    parser.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> None:
    from autoshield.core.runtime import resolve_device
    from autoshield.evaluation.evaluate import train_policy
    from autoshield.report.tables import accuracy_rows

    profile = profile_of(args)
    policy = policy_from_argument(args.policy)
    data = data_of(args)
    device = resolve_device(profile.device)
    console.print(f"policy: {policy}  profile: {profile.name}  network: {network_of(profile)}  device: {device}")
    result = train_policy(policy=policy, data=data, profile=profile, device=device, progress=True)
    title = (
        f"clean test accuracy after {profile.train.epochs} epochs "
        f"({result.seconds:.0f} s, {result.images_per_second:.0f} img/s)"
    )
    print_rows(title, accuracy_rows(policy, result.accuracy))


def register_attack(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "attack", help="invert gradients of policy-transformed images, print per-label privacy metrics, draw a sheet"
    )
    parser.add_argument("--policy", default="identity", help=POLICY_HELP)
    parser.add_argument("--images-per-label", type=int, default=None, help="victims per label (profile default)")
    parser.add_argument(
        "--target",
        choices=("init", "trained"),
        default=None,
        help="attacked weights: the seeded untrained network (init, default) or the policy-trained one",
    )
    parser.add_argument(
        "--attacker",
        choices=ATTACK_CHOICES,
        default="naive",
        help="naive (default): ignores the policy; posthoc: undoes each victim's op on the naive reconstruction, "
        "given its sign; learned: as posthoc, with a network trained on public images where the op has no exact "
        "inverse (trained once per cell and machine); adaptive: inverts through the op, trying both signs (about "
        "2x the time for signed ops); worst: all four, compared on the same victims, the strongest scored",
    )
    parser.add_argument("--sheet", type=Path, default=Path("studies/attack.png"), help="PNG sheet path")
    parser.add_argument("--no-cache", action="store_true", help="recompute every attack instead of reusing results")
    parser.add_argument(
        "--judge-saw-victims",
        action="store_true",
        help="judge with a reference classifier that also trained on the victim pool; only to measure how much "
        "membership inflates attack accuracy (trains a second reference classifier once)",
    )
    parser.add_argument(
        "--null",
        action="store_true",
        help="also attack, from each victim's own start, the gradient of another victim of its label and score it "
        "as the victim's: the figures' real null (recognition's is the label leaking, identification's 1 / line-up); "
        "doubles the attack time; needs 2+ victims per label",
    )
    parser.add_argument(
        "--labels",
        type=label_arg,
        nargs="+",
        default=None,
        metavar="LABEL",
        help="attack these labels' victims alone (default: every label's): one label's question with many victims, "
        "e.g. --labels automobile --images-per-label 50",
    )
    parser.add_argument(
        "--dp-sigma",
        type=float,
        default=None,
        metavar="SIGMA",
        help="attack what a DP-SGD client sends: each image's gradient clipped to --max-grad-norm C, plus Gaussian "
        "noise of std SIGMA x C drawn per victim as `baseline` draws it (target init; never cached)",
    )
    parser.add_argument("--max-grad-norm", type=float, default=1.0, help="with --dp-sigma: the clipping norm C (1.0)")
    parser.add_argument(
        "--csv",
        type=Path,
        default=None,
        help="write every victim's verdict, under each attacker (and the null's), in `export --victims`' columns",
    )
    add_study_name_arg(
        parser,
        default=None,
        role=": judge with the judge stored for it, as its trials were, and read its attack table (or add to it) "
        "where this run's profile is the study's",
    )
    add_storage_arg(parser)
    add_profile_args(parser)
    parser.set_defaults(func=run_attack)


def run_attack(args: argparse.Namespace) -> None:
    from autoshield.cli.judge import study_reference
    from autoshield.core.files import cache_dir, writable_folder
    from autoshield.core.runtime import resolve_device
    from autoshield.evaluation.attackers import strongest
    from autoshield.evaluation.evaluate import attack_with, learned_for, train_policy, victims
    from autoshield.evaluation.lineup import pool_lineup
    from autoshield.evaluation.null import null_attack
    from autoshield.evaluation.sheets import reconstruction_sheet
    from autoshield.privacy.cache import AttackCache
    from autoshield.privacy.reference import reference_classifier
    from autoshield.privacy.threat import dp_view
    from autoshield.report.attackers import attacker_rows, sign_line
    from autoshield.report.format import percent
    from autoshield.report.tables import privacy_rows
    from autoshield.report.victims import attack_rows, write_victims

    if args.study and args.judge_saw_victims:
        raise AutoshieldError("--judge-saw-victims trains a judge of its own: a study's judge never saw the victims")
    extra = []
    if args.images_per_label is not None:
        extra.append(f"images_per_label={args.images_per_label}")
    if args.target is not None:
        extra.append(f"attack.target={args.target!r}")
    profile = profile_of(args, *extra)
    if args.null and profile.attack.target != "init":
        raise AutoshieldError("--null attacks the seeded untrained network: it needs attack.target = 'init'")
    if args.null and profile.images_per_label < 2:
        raise AutoshieldError("--null pairs each victim with another of its label: it needs 2+ victims per label")
    dp = _dp_config(args, profile)
    policy = policy_from_argument(args.policy)
    for path in (args.sheet, *([args.csv] if args.csv else [])):
        writable_folder(path.parent)  # before the judge or the attack spends any time
    data = data_of(args)
    device = resolve_device(profile.device)
    console.print(f"policy: {policy}  profile: {profile.name}  network: {network_of(profile)}  device: {device}")
    if args.study:
        reference = study_reference(url=storage_of(args), name=args.study, data=data, profile=profile, device=device)
    else:
        reference = reference_classifier(data, profile, device=device, members=args.judge_saw_victims, progress=True)
    saw = "trained on the victims too" if args.judge_saw_victims else "never trained on the victims"
    console.print(f"judge {reference.digest[:12]} ({saw}): {percent(reference.accuracy.overall)} % clean test accuracy")
    model = None
    if profile.attack.target == "trained":
        model = train_policy(policy=policy, data=data, profile=profile, device=device, progress=True).model
    cache = None if args.no_cache else AttackCache(cache_dir() / "attacks")
    table = study_table(storage_of(args), args.study, profile) if args.study else None
    attackers = ATTACKERS if args.attacker == "worst" else (args.attacker,)
    inverse = learned_for(attackers, cells=policy.cells, data=data, profile=profile, device=device, progress=True)
    attacked = victims(data, profile)
    if args.labels:
        attacked = attacked.of_labels(args.labels)
    threat = None if dp is None else dp_view(dp, indices=attacked.indices, seed=profile.seed)
    results = attack_with(
        attackers,
        policy=policy,
        victims=attacked,
        profile=profile,
        reference=reference.model,
        device=device,
        model=model,
        cache=cache,
        inverse=inverse,
        lineup=pool_lineup(data.train, profile),
        table=table,
        threat=threat,
        progress=True,
    )
    chosen = strongest(results)
    result = results[chosen]
    seen = "" if dp is None else f" under DP-SGD's noise (σ {dp.sigma:g}, C {dp.max_grad_norm:g})"
    title = (
        f"gradient inversion of {len(result.labels)} images{seen} by the {chosen} attacker "
        f"({profile.attack.iterations} iterations, target {profile.attack.target}); {result.cached} from cache, "
        f"{result.seconds:.0f} s attacking"
    )
    print_rows(title, privacy_rows(result, policy))
    if len(results) > 1:
        print_rows("the attackers on the same victims and starts, against the naive one", attacker_rows(results))
    for name, attack in results.items():
        if (line := sign_line(attack.outcomes)) is not None:
            console.print(f"{name} attacker: {line}")
    null = None
    if args.null:
        null = null_attack(
            policy=policy,
            victims=attacked,
            profile=profile,
            reference=reference.model,
            device=device,
            lineup=pool_lineup(data.train, profile),
            attacker=chosen,
            inverse=inverse,
            cache=cache,
            table=table,
            progress=True,
        )
        print_rows(
            f"null: the {chosen} attacker on another victim of each label, from the victim's start, scored as the "
            f"victim's (identification's null is 1 / {null.overall.lineup})",
            privacy_rows(null, policy),
        )
    if result.overall.failed:
        console.print(f"[red]{result.overall.failed} reconstructions turned non-finite: counted as not recognised")
    console.print(
        "floor %: how often the judge gives the attack's information-free random start the victim's label; an "
        "attack accuracy near it carries no evidence of leakage"
    )
    sheet = reconstruction_sheet(results, args.sheet, title=f"policy {policy}")
    console.print(f"wrote {sheet}: per label original | transformed | {' | '.join(results)}")
    if args.csv:
        runs = [(name, attack, "" if dp is None else "noised") for name, attack in results.items()]
        rows = [
            row
            for name, attack, setting in [*runs, *([(chosen, null, "null")] if null else [])]
            for row in attack_rows(
                attack, profile=profile, source=_source(policy, dp), policy=policy, attacker=name, setting=setting
            )
        ]
        write_victims(rows, args.csv)
        console.print(f"wrote {args.csv}: {len(rows)} rows, one per victim and attacker")


def _source(policy: Policy, dp: DPConfig | None) -> str:
    """What a CSV row says was attacked: the policy, and DP-SGD's σ as `export --victims` names a DP study's rows."""
    if dp is None:
        return str(policy)
    return f"sigma {dp.sigma:g}" if policy == Policy.identity() else f"{policy}, sigma {dp.sigma:g}"


def _dp_config(args: argparse.Namespace, profile: Profile) -> DPConfig | None:
    """`--dp-sigma`'s view, refused in one line where it has no meaning, before any work."""
    from autoshield.dp.config import DPConfig

    if args.dp_sigma is None:
        return None
    if profile.attack.target != "init":
        raise AutoshieldError(
            "--dp-sigma attacks the seeded untrained network (target init); `baseline` attacks DP weights"
        )
    if profile.attack.leak_batch != 1:
        raise AutoshieldError("--dp-sigma attacks single-image gradients: it needs attack.leak_batch = 1")
    if args.null:
        raise AutoshieldError("--null is not built for --dp-sigma: the null's gradient would need noise of its own")
    return DPConfig(sigma=args.dp_sigma, max_grad_norm=args.max_grad_norm)


def study_table(url: str, name: str, profile: Profile) -> RowStore | None:
    """The study's attack table when this run's profile is the study's: its rows are then read, or computed once
    and kept for every later run; under another profile they would answer another question, and are not kept."""
    from autoshield.core.choices import KINDS
    from autoshield.study.attack_table import StudyTable
    from autoshield.study.catalog import find_study
    from autoshield.study.records import StudyInfo
    from autoshield.study.storage import open_storage

    storage = open_storage(url, heartbeat=False, create=False, writes=False)
    infos = [StudyInfo.read(study) for kind in KINDS if (study := find_study(storage, name, kind))]
    if any(info and info.profile_fingerprint == profile.fingerprint() for info in infos):
        return StudyTable(url)
    console.print(f"[yellow]this run's profile is not study {name!r}'s: its attacks are not kept in the study's table")
    return None
