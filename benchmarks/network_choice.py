"""Which network should `quick` train and attack (issues #14 and #33)? One row per candidate and step, side by side
on real CIFAR-10:

- `train`: clean accuracy for Identity, overall and per label, and the training loop's seconds, at each seed;
- `dp`: DP-SGD (Opacus) on the profile's `dp_train` recipe at one σ: accuracy and ε, or why Opacus refused;
- `attack`: Identity at initialisation with exact gradients on the profile's held-out victims, every victim's
  verdict written to `victims.csv` for paired tests.

A candidate is a name and profile overrides. Rows are appended to `<out>/candidates.csv` and `<out>/victims.csv`
as each step ends, and a rerun skips what they hold, so a run interrupted on one machine resumes on another from
the committed CSVs.

python benchmarks/network_choice.py --out benchmarks/reports/network-2026-12-03 \\
    --candidate none 'norm="none"' train_per_class=1000 train.epochs=5 \\
    --candidate fixup 'norm="fixup"' train_per_class=1000 train.epochs=5
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from common import append_rows, logged, machine, parser, read_rows, stamp, victim_rows

from autoshield.core.config import Profile, load_profile
from autoshield.core.errors import AutoshieldError
from autoshield.core.files import cache_dir
from autoshield.core.runtime import resolve_device
from autoshield.data.cifar import CLASSES, Cifar10, load_cifar10
from autoshield.data.policy import Policy
from autoshield.dp.config import DPConfig
from autoshield.evaluation.evaluate import profile_splits, train_policy
from autoshield.evaluation.evaluate import victims as profile_victims
from autoshield.evaluation.judge import judge_reconstructions
from autoshield.evaluation.reconstruct import reconstruct_policy
from autoshield.privacy.cache import AttackCache
from autoshield.privacy.reference import reference_classifier
from autoshield.report.format import interval


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--profile", default="quick")
    p.add_argument(
        "--candidate", nargs="+", action="append", required=True, metavar=("NAME", "OVERRIDE"),
        help="a name, then its profile overrides (repeatable)",
    )  # fmt: skip
    p.add_argument("--steps", nargs="+", default=["train", "dp", "attack"], choices=["train", "dp", "attack"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds of the `train` step")
    p.add_argument("--sigma", type=float, default=0.5, help="DP-SGD noise multiplier of the `dp` step")
    p.add_argument("--victims-per-label", type=int, default=5, help="held-out victims per label to attack")
    p.add_argument("--out", type=Path, required=True, help="folder of candidates.csv and victims.csv")
    args = p.parse_args()
    device = resolve_device("auto")
    data = load_cifar10(args.data_root)
    cache = AttackCache(cache_dir() / "attacks")
    table, per_victim = args.out / "candidates.csv", args.out / "victims.csv"
    done = {(r["candidate"], r["step"], r["seed"]) for r in read_rows(table)}
    print(f"machine: {machine()}; profile {args.profile}; {len(done)} rows already in {table}", flush=True)
    for name, *overrides in args.candidate:
        base = load_profile(args.profile, overrides=tuple(overrides))
        head = {"candidate": name, "overrides": " ".join(overrides), "fingerprint": base.fingerprint()}
        for step in args.steps:
            for seed in args.seeds if step == "train" else [base.seed]:
                if (name, step, str(seed)) in done:
                    continue
                profile = load_profile(
                    args.profile,
                    overrides=(*overrides, f"seed={seed}", f"images_per_label={args.victims_per_label}"),
                )
                row = {**head, "step": step, "seed": seed, **run_step(step, profile, data, device, cache, args)}
                if step == "attack":
                    outcomes = row.pop("outcomes")
                    append_rows(per_victim, victim_rows(outcomes, candidate=name, fingerprint=head["fingerprint"]))
                append_rows(table, [{**row, **stamp()}])
                print(f"{name} {step} seed {seed}: {row['summary']}", flush=True)


def run_step(
    step: str, profile: Profile, data: Cifar10, device: torch.device, cache: AttackCache, args: argparse.Namespace
) -> dict[str, object]:
    """One step's columns; every step fills the same ones, so candidates.csv has one header."""
    row: dict[str, object] = {"sigma": "", "epsilon": "", "overall": "", "seconds": ""}
    row |= {label: "" for label in CLASSES}
    if step == "train":
        try:
            result = train_policy(policy=Policy.identity(), data=data, profile=profile, device=device, progress=True)
        except AutoshieldError as error:  # a divergence is a result of the candidate, not a crash of the table
            return row | {"summary": f"failed: {error}"}
        row |= {"overall": f"{result.accuracy.overall:.4f}", "seconds": f"{result.seconds:.1f}"}
        row |= {label: f"{a:.3f}" for label, a in zip(CLASSES, result.accuracy.per_label, strict=True)}
        return row | {"summary": f"{result.accuracy.overall:.1%} clean in {result.seconds:.0f} s"}
    if step == "dp":
        from autoshield.dp.engine import train_dp

        train, test = profile_splits(data, profile)
        start = time.perf_counter()
        try:
            private = train_dp(
                train=train, test=test, width=profile.width, norm=profile.norm, config=profile.dp_train,
                dp=DPConfig(sigma=args.sigma), seed=profile.seed, device=device, progress=True,
            )  # fmt: skip
        except AutoshieldError as error:
            return row | {"sigma": args.sigma, "summary": f"Opacus refused: {error}"}
        seconds = time.perf_counter() - start
        row |= {"sigma": args.sigma, "epsilon": f"{private.epsilon:.3g}", "seconds": f"{seconds:.1f}"}
        row |= {"overall": f"{private.accuracy.overall:.4f}"}
        row |= {label: f"{a:.3f}" for label, a in zip(CLASSES, private.accuracy.per_label, strict=True)}
        return row | {"summary": f"DP-SGD σ {args.sigma:g}: {private.accuracy.overall:.1%}, ε {private.epsilon:.3g}"}
    judge = reference_classifier(data, profile, device=device, progress=True).model
    attacked = profile_victims(data, profile)
    found = reconstruct_policy(
        policy=Policy.identity(), victims=attacked, profile=profile, device=device, cache=cache, progress=True
    )
    stats = judge_reconstructions(found, profile=profile, reference=judge, device=device)
    row |= {"overall": f"{stats.overall.attack_accuracy.mean:.4f}", "seconds": f"{found.seconds:.1f}"}
    row |= {label: f"{s.attack_accuracy.mean:.3f}" for label, s in zip(CLASSES, stats.per_label, strict=True)}
    summary = (
        f"Identity recognised {interval(stats.overall.attack_accuracy)} % of {len(attacked)}, "
        f"PSNR {stats.overall.psnr_original.mean:.1f} dB, {profile.attack.iterations} iterations, "
        f"{found.seconds:.0f} s ({found.cached} cached)"
    )
    return row | {"outcomes": stats.outcomes, "summary": summary}


if __name__ == "__main__":
    with logged():
        main()
