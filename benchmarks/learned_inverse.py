"""What the learned inverse (issue #36 item 2) costs to train per cell, and how much of a cell it undoes.

For each cell, `privacy.learned.learned_inverse` trains (or reads from this machine's cache) the cell's network on
the judge's training split, and states what training cost. It is then measured on public test images, never the
victim pool: each image is transformed by the cell with a seeded sign, as the client would, and given 20 dB of
Gaussian noise (RMSE 0.1, clamped to the image box), a stand-in for the naive attack's reconstruction of the
transformed image. Three estimates of the original are compared: that image as it is (the naive attacker's), the
post-hoc inverse told the client's sign (the post-hoc attacker's) and the learned inverse (the learned
attacker's). Each gets its PSNR against the original and the judge's verdict (this machine's judge for the
profile: run under AUTOSHIELD_KERNELS=portable, the Show's portable judge).

This is the inverse's quality on a stand-in, not a privacy claim: the attack table's learned rows are that.
Rows go to `<out>/inverses.csv` (one per cell and estimate) and `<out>/images.csv.gz` (one per test image, cell
and estimate); a rerun skips the cells already in `inverses.csv`.

AUTOSHIELD_KERNELS=portable python benchmarks/learned_inverse.py --out benchmarks/reports/learned-2026-12-05 \\
    --cells Solarize:9 Solarize:5 Equalize Posterize:9
"""

from __future__ import annotations

import gzip
import statistics
from pathlib import Path

import torch
from common import append_rows, logged, parser, read_rows, stamp

from autoshield.core.config import load_profile
from autoshield.core.runtime import resolve_device
from autoshield.data.cifar import load_cifar10, stratified_subset
from autoshield.data.inverse import invert_op
from autoshield.data.ops import apply_op, random_signs
from autoshield.data.policy import Cell
from autoshield.learn.inverse_net import INVERSE
from autoshield.learn.train import predict
from autoshield.privacy.learned import learned_inverse
from autoshield.privacy.metrics import proportion, psnr
from autoshield.privacy.reference import reference_classifier


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--profile", default="quick")
    p.add_argument("--cells", nargs="+", default=["Solarize:9", "Solarize:5", "Equalize", "Posterize:9"])
    p.add_argument("--per-label", type=int, default=100, help="test images per label (100)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    profile = load_profile(args.profile)
    device = resolve_device(profile.device)
    data = load_cifar10(args.data_root)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = args.out / "inverses.csv"
    done = {row["cell"] for row in read_rows(summary)}
    judge = reference_classifier(data, profile, device=device, progress=True)
    test = stratified_subset(data.test, per_class=args.per_label, seed=profile.seed)
    original = test.images.float() / 255
    for text in args.cells:
        cell = Cell.parse(text)
        if str(cell) in done:
            continue
        inverse = learned_inverse(cells=[cell], data=data, profile=profile, device=device, progress=True)
        with logged():  # trained here, not mid-row, where the cell has a network (exact inverses have none)
            trained = inverse.network(cell) if cell in inverse.recipes else None
        generator = torch.Generator().manual_seed(profile.seed)
        signs = random_signs(len(test), generator=generator)
        seen = apply_op(test.images, cell.op, cell.magnitude, signs=signs).float() / 255
        seen = (seen + INVERSE.noise * torch.randn(seen.shape, generator=generator)).clamp(0, 1)
        estimates = {
            "as seen": seen,
            "post-hoc": invert_op(seen, cell.op, cell.magnitude, signs=signs),
            "learned": inverse(seen, cell.op, cell.magnitude, signs=signs),
        }
        rows, images, where = [], [], stamp()
        for name, pixels in estimates.items():
            decibels = psnr(pixels, original)
            verdict = predict(judge.model, (pixels * 255).round().to(torch.uint8), batch_size=500, device=device)
            right = (verdict == test.labels).long()
            rows.append(
                {
                    "cell": str(cell),
                    "estimate": name,
                    "images": len(test),
                    "psnr_median": round(statistics.median(decibels.tolist()), 2),
                    "judge_accuracy": str(proportion(right)),
                    "network": trained.digest if trained else "",
                    "train_seconds": round(trained.seconds, 1) if trained else 0.0,
                    "judge": judge.digest[:12],
                    "profile": profile.fingerprint(),
                    **where,
                }
            )
            images += [
                f"{cell},{name},{int(i)},{int(y)},{float(d):.2f},{int(r)}"
                for i, y, d, r in zip(test.indices, test.labels, decibels, right, strict=True)
            ]
        per_image = args.out / "images.csv.gz"
        header = "" if per_image.exists() else "cell,estimate,test_index,label,psnr,judge_right\n"
        with gzip.open(per_image, "at") as f:
            f.write(header + "\n".join(images) + "\n")
        append_rows(summary, rows)
        for row in rows:
            print(
                f"{row['cell']:<12} {row['estimate']:<9} PSNR {row['psnr_median']:>6} dB  judge {row['judge_accuracy']}"
                f"  (trained in {row['train_seconds']} s)"
            )


if __name__ == "__main__":
    main()
