"""How strong is the attack at each budget (issue #13 item 10), and how much does membership inflate it?

Identity on the profile's held-out victims (pool slots [0, images_per_label)), one row per attack setting: attack
accuracy with its 95 % interval, the chance floor, PSNR, failures and the cost per image-iteration. `--members`
judges the same reconstructions a second time with a judge that did train on the victims (the earlier versions'
judge) and tests the difference with an exact McNemar test on the paired verdicts: the membership effect.

Attacks land in the attack cache, so `--no-judge` computes them before any judge exists (e.g. beside the judge's
training) and a later run judges them in seconds.

python benchmarks/attack_budget.py --no-judge --settings attack.iterations=600 attack.iterations=1000
python benchmarks/attack_budget.py --members --settings attack.iterations=300 attack.iterations=1000
"""

from __future__ import annotations

import time

import torch
from common import machine, parser

from autoshield.core.config import load_profile
from autoshield.core.files import cache_dir
from autoshield.core.runtime import resolve_device
from autoshield.data.cifar import load_cifar10
from autoshield.data.policy import Policy
from autoshield.evaluation.evaluate import reconstruct_policy, victims
from autoshield.evaluation.judge import judge_reconstructions
from autoshield.privacy.cache import AttackCache
from autoshield.privacy.paired import mcnemar_exact
from autoshield.privacy.reference import reference_classifier
from autoshield.report.format import interval


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--profile", default="quick")
    p.add_argument(
        "--settings",
        nargs="+",
        default=["attack.iterations=300"],
        help="one attack setting per word: comma-separated profile overrides, e.g. "
        "attack.iterations=600,attack.tv_weight=1e-3",
    )
    p.add_argument("--no-judge", action="store_true", help="only compute (and cache) the reconstructions")
    p.add_argument("--members", action="store_true", help="also judge with a judge that trained on the victims")
    args = p.parse_args()
    device = resolve_device("auto")
    data = load_cifar10(args.data_root)
    cache = AttackCache(cache_dir() / "attacks")
    print(f"machine: {machine()}; profile {args.profile}", flush=True)
    judges = {}
    for setting in args.settings:
        profile = load_profile(args.profile, overrides=tuple(setting.split(",")))
        attacked = victims(data, profile)
        start = time.perf_counter()
        found = reconstruct_policy(
            policy=Policy.identity(), victims=attacked, profile=profile, device=device, cache=cache, progress=True
        )
        wall = time.perf_counter() - start
        work = (len(attacked) - found.cached) * profile.attack.iterations
        cost = f"{1000 * found.seconds / work:.1f} ms per image-iteration" if work else "all from the cache"
        print(f"{setting}: {len(attacked)} victims, {found.cached} cached, {wall:.0f} s wall, {cost}", flush=True)
        if args.no_judge:
            continue
        verdicts = {}
        for members in (False, True) if args.members else (False,):
            if members not in judges:
                judges[members] = reference_classifier(data, profile, device=device, members=members, progress=True)
                print(f"judge (trained on the victims: {members}): {judges[members].accuracy.overall:.1%} clean")
            result = judge_reconstructions(found, profile=profile, reference=judges[members].model, device=device)
            stats = result.overall
            verdicts[members] = torch.tensor(result.outcomes.recognised, dtype=torch.bool)
            print(
                f"  judge saw victims {members!s:5}: attack {interval(stats.attack_accuracy)} % "
                f"({int(verdicts[members].sum())}/{len(attacked)}), floor {stats.chance_floor.mean:.1%}, "
                f"PSNR {stats.psnr_original.mean:.1f} dB, SSIM {stats.ssim_original.mean:.3f}, failed {stats.failed}",
                flush=True,
            )
        if len(verdicts) == 2:
            only_members = int((verdicts[True] & ~verdicts[False]).sum())
            only_heldout = int((verdicts[False] & ~verdicts[True]).sum())
            p_value = mcnemar_exact(only_members, only_heldout)
            print(
                f"  membership: recognised only by the judge that saw them {only_members}, only by the held-out "
                f"judge {only_heldout}, exact McNemar p = {p_value:.3g}",
                flush=True,
            )


if __name__ == "__main__":
    main()
