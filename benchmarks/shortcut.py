"""Does a per-label policy teach a shortcut (issue #37 item 2)?

If only one label's images are transformed, the transform itself predicts that label, and the network may learn
the transform instead of the object: that label's clean test images (untransformed) then lose accuracy, which a
grid, whose cells apply to every label, never sees. For each cell, the profile's network is trained three ways on
the profile's training subset, with each of `--seeds` (the training seed: initial weights, order and crop/flip;
the subsets stay the profile's): the cell on every label (`every`), the cell on `--label` only (`one`), and
Identity. Clean test accuracy per label is recorded per run; the summary gives, per arm and label, the mean over
seeds with a Student's t interval, and `--label`'s accuracy is the shortcut's measure: `one` against `every` and
against Identity, paired by seed.

Rows go to `<out>/runs.csv` (one per run and label) as each run ends, so a rerun skips the runs already there
and a long table resumes on another machine from the committed CSV; `<out>/summary.csv` is rewritten from it.

python benchmarks/shortcut.py --out benchmarks/reports/shortcut-2026-12-05 \\
    --cells Solarize:9 Rotate:9 Contrast:9 --label automobile --seeds 0 1 2
"""

from __future__ import annotations

import statistics
from pathlib import Path

import torch
from common import append_rows, logged, parser, read_rows, stamp

from autoshield.core.config import load_profile
from autoshield.core.runtime import resolve_device
from autoshield.data.cifar import CLASSES, load_cifar10
from autoshield.data.policy import Cell, Policy
from autoshield.evaluation.evaluate import profile_splits, train_policy
from autoshield.privacy.metrics import mean_interval


def arms(cells: list[Cell], label: str) -> dict[tuple[str, str], Policy]:
    """(arm, cell) -> the policy trained: Identity once, then each cell on every label and on `label` alone."""
    out = {("identity", "Identity"): Policy.identity()}
    for cell in cells:
        out[("every", str(cell))] = Policy.uniform(cell)
        out[("one", str(cell))] = Policy.parse(f"{label}={cell}")
    return out


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--profile", default="quick")
    p.add_argument("--cells", nargs="+", default=["Solarize:9", "Rotate:9", "Contrast:9"])
    p.add_argument("--label", choices=CLASSES, default="automobile", help="the one label of the `one` arm")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    profile = load_profile(args.profile)
    device = resolve_device(profile.device)
    data = load_cifar10(args.data_root)
    _, test = profile_splits(data, profile)
    args.out.mkdir(parents=True, exist_ok=True)
    runs = args.out / "runs.csv"
    done = {(r["arm"], r["cell"], r["seed"]) for r in read_rows(runs) if r["one_label"] in ("", args.label)}
    for seed in args.seeds:
        for (arm, cell), policy in arms([Cell.parse(c) for c in args.cells], args.label).items():
            if (arm, cell, str(seed)) in done:
                continue
            with logged():
                result = train_policy(
                    policy=policy, data=data, profile=profile, device=device, seed=seed, progress=True
                )
            where = stamp()
            append_rows(
                runs,
                [
                    {
                        "arm": arm,
                        "cell": cell,
                        "one_label": args.label if arm == "one" else "",
                        "seed": seed,
                        "label": name,
                        "accuracy": round(accuracy, 4),
                        "test_images": int((test.labels == y).sum()),
                        "train_seconds": round(result.seconds, 1),
                        "profile": profile.fingerprint(),
                        **where,
                    }
                    for y, (name, accuracy) in enumerate(zip(CLASSES, result.accuracy.per_label, strict=True))
                ],
            )
            print(f"{arm:<8} {cell:<12} seed {seed}: {result.accuracy.overall:.1%} clean, {result.seconds:.0f} s")
    summarise(args.out, label=args.label)


def summarise(out: Path, *, label: str) -> None:
    """Per (arm, cell, label), the mean accuracy over seeds with its t interval, into `<out>/summary.csv`."""
    groups: dict[tuple[str, str, str], list[float]] = {}
    for row in read_rows(out / "runs.csv"):
        if row["one_label"] in ("", label):
            groups.setdefault((row["arm"], row["cell"], row["label"]), []).append(float(row["accuracy"]))
    rows = []
    for (arm, cell, name), values in sorted(groups.items()):
        estimate = mean_interval(torch.tensor(values))
        rows.append(
            {
                "arm": arm,
                "cell": cell,
                "label": name,
                "seeds": len(values),
                "mean %": round(100 * estimate.mean, 1),
                "low %": round(100 * max(estimate.low, 0.0), 1),  # a t interval knows no bounds; accuracy does
                "high %": round(100 * min(estimate.high, 1.0), 1),
                "sd %": round(100 * statistics.stdev(values), 1) if len(values) > 1 else "",
            }
        )
    (out / "summary.csv").unlink(missing_ok=True)
    append_rows(out / "summary.csv", rows)
    for row in rows:
        if row["label"] == label:
            print(f"{row['arm']:<8} {row['cell']:<12} {label}: {row['mean %']} % [{row['low %']}, {row['high %']}]")


if __name__ == "__main__":
    main()
