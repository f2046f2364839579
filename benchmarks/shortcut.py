"""Per-label utility of a per-label policy: the shortcut (issue #37 item 2) and the poster's headline (item 5).

If only one label's images are transformed, the transform itself predicts that label, and the network may learn
the transform instead of the object: that label's clean test images (untransformed) then lose accuracy, which a
grid, whose cells apply to every label, never sees. For each cell, the profile's network is trained three ways on
the profile's training subset, with each of `--seeds` (the training seed: initial weights, order and crop/flip;
the subsets stay the profile's): the cell on every label (`every`), the cell on `--label` only (`one`), and
Identity; `--dp-sigmas` adds DP-SGD at each σ (`dp`, the profile's DP recipe, same seeds), the poster's other side.
Clean test accuracy per label is recorded per run (`utility` trained).

The poster scored "model accuracy" otherwise: a clean classifier's accuracy on the *transformed* images. With
`--judge FILE` (an `autoshield judge export`), that is measured too (`utility` recognizability), on the profile's
test subset transformed by each cell, as `grid --utility recognizability` does; it trains nothing, so it has no
seed, and its interval is Wilson's over the label's test images.

Rows go to `<out>/runs.csv` (one per run and label) as each run ends, so a rerun skips the runs already there
and a long table resumes on another machine from the committed CSV. `<out>/summary.csv` is rewritten from it: per
(utility, arm, cell, label) the mean over seeds with a Student's t interval; `<out>/paired.csv` gives `--label`'s
shortcut, each arm against Identity and `one` against `every`, as differences paired by seed.

python benchmarks/shortcut.py --out benchmarks/reports/shortcut-2026-12-05 \\
    --cells Solarize:9 Rotate:9 Brightness:5 --label automobile --seeds 0 1 2 --dp-sigmas 0.5 --judge judge.pt
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

import torch
from common import append_rows, logged, parser, read_rows, stamp

from autoshield.core.config import Profile, load_profile
from autoshield.core.runtime import resolve_device
from autoshield.data.cifar import CLASSES, Cifar10, load_cifar10
from autoshield.data.policy import Cell, Policy, transform_split
from autoshield.dp.config import DPConfig
from autoshield.evaluation.dpsgd import train_dp_profile
from autoshield.evaluation.evaluate import profile_splits, train_policy
from autoshield.learn.train import Accuracy, evaluate
from autoshield.privacy.judge_file import JudgeIdentity, check_fits, read_judge
from autoshield.privacy.metrics import mean_interval, proportion


@dataclass(frozen=True)
class Arm:
    """One way of training: a policy, or DP-SGD at `sigma` on the clean images."""

    arm: str  # identity, every, one or dp
    cell: str
    policy: Policy
    sigma: float | None = None


def arms(cells: list[Cell], label: str, sigmas: list[float]) -> list[Arm]:
    """Identity once, then each cell on every label and on `label` alone, then DP-SGD at each σ."""
    out = [Arm("identity", "Identity", Policy.identity())]
    for cell in cells:
        out += [Arm("every", str(cell), Policy.uniform(cell)), Arm("one", str(cell), Policy.parse(f"{label}={cell}"))]
    return out + [Arm("dp", f"sigma={sigma:g}", Policy.identity(), sigma) for sigma in sigmas]


def trained(
    arm: Arm, *, data: Cifar10, profile: Profile, device: torch.device, seed: int
) -> tuple[Accuracy, float, float | None]:
    """Clean test accuracy, training seconds and ε (DP only) of one run."""
    if arm.sigma is None:
        result = train_policy(policy=arm.policy, data=data, profile=profile, device=device, seed=seed, progress=True)
        return result.accuracy, result.seconds, None
    dp = train_dp_profile(
        dp=DPConfig(sigma=arm.sigma), data=data, profile=profile, device=device, seed=seed, progress=True
    )
    return dp.accuracy, dp.seconds, dp.epsilon


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--profile", default="quick")
    p.add_argument("--cells", nargs="+", default=["Solarize:9", "Rotate:9", "Brightness:5"])
    p.add_argument("--label", choices=CLASSES, default="automobile", help="the one label of the `one` arm")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--dp-sigmas", nargs="*", type=float, default=[], help="DP-SGD arms (C = 1.0, the baseline's)")
    p.add_argument("--judge", type=Path, help="an exported judge: also the poster's recognizability of each cell")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    profile = load_profile(args.profile)
    device = resolve_device(profile.device)
    data = load_cifar10(args.data_root)
    _, test = profile_splits(data, profile)
    runs = args.out / "runs.csv"
    done = {
        (r["utility"], r["arm"], r["cell"], r["seed"]) for r in read_rows(runs) if r["one_label"] in ("", args.label)
    }
    plan = arms([Cell.parse(c) for c in args.cells], args.label, args.dp_sigmas)

    def record(arm: Arm, utility: str, seed: object, accuracy: Accuracy, **extra: object) -> None:
        append_rows(
            runs,
            [
                {
                    "utility": utility,
                    "arm": arm.arm,
                    "cell": arm.cell,
                    "one_label": args.label if arm.arm == "one" else "",
                    "seed": seed,
                    "label": name,
                    "accuracy": round(value, 4),
                    "test_images": int((test.labels == y).sum()),
                    **extra,
                    "profile": profile.fingerprint(),
                    **stamp(),
                }
                for y, (name, value) in enumerate(zip(CLASSES, accuracy.per_label, strict=True))
            ],
        )

    if args.judge is not None:  # `one` reads as `every` on its label and as Identity elsewhere: not judged apart
        judge = read_judge(args.judge.read_bytes(), source=str(args.judge))
        check_fits(judge, JudgeIdentity.of(data, profile), source=str(args.judge))
        model = judge.model(seed=profile.seed, device=device)
        for arm in (
            a for a in plan if a.arm in ("identity", "every") and ("recognizability", a.arm, a.cell, "") not in done
        ):
            # the test subset as the poster's classifier saw it: transformed, each image with its seeded sign
            seen = evaluate(model, transform_split(test, arm.policy, seed=profile.seed), batch_size=500, device=device)
            record(arm, "recognizability", "", seen, train_seconds=0.0, epsilon="", judge=judge.digest[:12])
            print(f"{arm.cell:<12} recognizability {seen.overall:.1%} (judge {judge.digest[:12]})")
    for seed in args.seeds:
        for arm in (a for a in plan if ("trained", a.arm, a.cell, str(seed)) not in done):
            with logged():
                accuracy, seconds, epsilon = trained(arm, data=data, profile=profile, device=device, seed=seed)
            eps = "" if epsilon is None else round(epsilon, 3)
            record(arm, "trained", seed, accuracy, train_seconds=round(seconds, 1), epsilon=eps, judge="")
            print(f"{arm.arm:<8} {arm.cell:<12} seed {seed}: {accuracy.overall:.1%} clean, {seconds:.0f} s")
    summarise(args.out, label=args.label)


def summarise(out: Path, *, label: str) -> None:
    """Per (utility, arm, cell, label) the mean with its interval into `summary.csv`; `label`'s paired differences
    by seed into `paired.csv`."""
    rows = [r for r in read_rows(out / "runs.csv") if r["one_label"] in ("", label)]
    groups: dict[tuple[str, str, str, str], list[dict[str, str]]] = {}
    for row in rows:
        groups.setdefault((row["utility"], row["arm"], row["cell"], row["label"]), []).append(row)
    summary = []
    for (utility, arm, cell, name), members in sorted(groups.items()):
        values = [float(r["accuracy"]) for r in members]
        if utility == "recognizability":  # one judged set: Wilson over its images
            n = int(members[0]["test_images"])
            estimate = proportion(torch.tensor([1] * round(values[0] * n) + [0] * (n - round(values[0] * n))))
        else:
            estimate = mean_interval(torch.tensor(values))
        summary.append(
            {
                "utility": utility,
                "arm": arm,
                "cell": cell,
                "label": name,
                "seeds": len(values) if utility == "trained" else 0,
                "mean %": round(100 * estimate.mean, 1),
                "low %": round(100 * max(estimate.low, 0.0), 1),  # a t interval knows no bounds; accuracy does
                "high %": round(100 * min(estimate.high, 1.0), 1),
                "sd %": round(100 * statistics.stdev(values), 1) if len(values) > 1 else "",
            }
        )
    _rewrite(out / "summary.csv", summary)
    for row in summary:
        if row["label"] == label:
            print(
                f"{row['utility']:<16} {row['arm']:<8} {row['cell']:<12} {label}: {row['mean %']} % "
                f"[{row['low %']}, {row['high %']}]"
            )
    _rewrite(out / "paired.csv", paired(rows, label=label))


def paired(rows: list[dict[str, str]], *, label: str) -> list[dict[str, object]]:
    """`label`'s trained accuracy, each arm against Identity and `one` against `every` of its cell, as differences
    paired by seed (the seed fixes the initial weights and the order, so pairing removes their share of the
    spread), with a Student's t interval."""
    by_seed: dict[tuple[str, str], dict[str, float]] = {}
    for r in rows:
        if r["utility"] == "trained" and r["label"] == label:
            by_seed.setdefault((r["arm"], r["cell"]), {})[r["seed"]] = float(r["accuracy"])
    pairs = [((arm, cell), ("identity", "Identity")) for arm, cell in by_seed if arm != "identity"]
    pairs += [(("one", cell), ("every", cell)) for arm, cell in by_seed if arm == "one" and ("every", cell) in by_seed]
    out: list[dict[str, object]] = []
    for mine, other in sorted(pairs):
        theirs = by_seed.get(other, {})  # no Identity run yet: nothing to pair with
        seeds = sorted(set(by_seed[mine]) & set(theirs))
        if not seeds:
            continue
        estimate = mean_interval(torch.tensor([by_seed[mine][s] - theirs[s] for s in seeds]))
        low, high = (round(100 * v, 1) if v == v else "" for v in (estimate.low, estimate.high))  # NaN: one seed
        out.append(
            {
                "label": label,
                "arm": mine[0],
                "cell": mine[1],
                "against": f"{other[0]} {other[1]}",
                "seeds": len(seeds),
                "difference pts": round(100 * estimate.mean, 1),
                "low pts": low,
                "high pts": high,
            }
        )
    return out


def _rewrite(path: Path, rows: list[dict[str, object]]) -> None:
    path.unlink(missing_ok=True)
    append_rows(path, rows)


if __name__ == "__main__":
    main()
