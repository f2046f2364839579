"""Which normalisation can both sides use (issue #14)? Per norm: is the network invertible (Identity attacked at
initialisation with exact gradients), how well does it train without DP, and does Opacus train it (one σ)?

python benchmarks/norm_choice.py --norms batch group layer none --victims-per-label 2 --sigma 1.0
"""

from __future__ import annotations

import time

from common import machine, parser

from autoshield.core.config import load_profile
from autoshield.core.files import cache_dir
from autoshield.core.runtime import resolve_device
from autoshield.data.cifar import load_cifar10
from autoshield.data.policy import Policy
from autoshield.dp.config import DPConfig
from autoshield.evaluation.evaluate import profile_splits, reconstruct_policy, train_policy
from autoshield.evaluation.evaluate import victims as profile_victims
from autoshield.evaluation.judge import judge_reconstructions
from autoshield.privacy.cache import AttackCache
from autoshield.privacy.reference import reference_classifier
from autoshield.report.format import interval


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--profile", default="quick")
    p.add_argument("--norms", nargs="+", default=["batch", "group", "layer", "none"])
    p.add_argument("--victims-per-label", type=int, default=2, help="held-out victims per label to attack")
    p.add_argument("--sigma", type=float, default=1.0, help="DP-SGD noise multiplier of the trainability check")
    p.add_argument("--set", nargs="*", default=[], help="more profile overrides, e.g. train.lr=0.05")
    p.add_argument("--skip", nargs="*", default=[], choices=["attack", "train", "dp"], help="steps to leave out")
    args = p.parse_args()
    device = resolve_device("auto")
    data = load_cifar10(args.data_root)
    cache = AttackCache(cache_dir() / "attacks")
    print(f"machine: {machine()}; profile {args.profile}", flush=True)
    for norm in args.norms:
        profile = load_profile(
            args.profile, overrides=(f'norm="{norm}"', f"images_per_label={args.victims_per_label}", *args.set)
        )
        if "attack" not in args.skip:
            judge = reference_classifier(data, profile, device=device, progress=True).model
            attacked = profile_victims(data, profile)
            found = reconstruct_policy(
                policy=Policy.identity(), victims=attacked, profile=profile, device=device, cache=cache, progress=True
            )
            stats = judge_reconstructions(found, profile=profile, reference=judge, device=device)
            print(
                f"{norm}: Identity at init, {len(attacked)} victims, {profile.attack.iterations} iterations: attack "
                f"{interval(stats.overall.attack_accuracy)} %, floor {stats.overall.chance_floor.mean:.0%}, "
                f"PSNR {stats.overall.psnr_original.mean:.1f} dB, failed {stats.overall.failed}, "
                f"{found.seconds:.0f} s attacking ({found.cached} cached)",
                flush=True,
            )
        if "train" not in args.skip:
            result = train_policy(policy=Policy.identity(), data=data, profile=profile, device=device, progress=True)
            print(
                f"{norm}: non-private training ({profile.train.epochs} epochs, lr {profile.train.lr:g}): "
                f"{result.accuracy.overall:.1%} clean, "
                f"{result.seconds:.0f} s",
                flush=True,
            )
        if "dp" not in args.skip and norm != "batch":
            from autoshield.dp.engine import train_dp

            train, test = profile_splits(data, profile)
            start = time.perf_counter()
            private = train_dp(
                train=train,
                test=test,
                width=profile.width,
                norm=profile.norm,
                config=profile.dp_train,
                dp=DPConfig(sigma=args.sigma),
                seed=profile.seed,
                device=device,
                progress=True,
            )
            print(
                f"{norm}: DP-SGD σ = {args.sigma:g} ({profile.dp_train.epochs} epochs, expected batch "
                f"{profile.dp_train.batch_size}): {private.accuracy.overall:.1%} clean, ε = {private.epsilon:.3g}, "
                f"{time.perf_counter() - start:.0f} s",
                flush=True,
            )


if __name__ == "__main__":
    main()
