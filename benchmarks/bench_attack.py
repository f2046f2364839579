"""Seconds per image-iteration of the inversion attack, batched (torch.func.vmap) vs sequential.

python benchmarks/bench_attack.py --data-root ../shared/data/cifar10 --widths 16 32 64
"""

from __future__ import annotations

import torch
from common import best_of, machine, parser

from autoshield.attack import GradientInversion, leak_gradients
from autoshield.config import AttackConfig
from autoshield.data import load_cifar10, normalize, stratified_subset
from autoshield.models import build_model


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64])
    p.add_argument("--images", type=int, default=10)
    p.add_argument("--iterations", type=int, default=10)
    args = p.parse_args()
    data = load_cifar10(args.data_root)
    victims = stratified_subset(data.test, per_class=max(1, args.images // 10), seed=0)
    x, y = normalize(victims.images[: args.images]), victims.labels[: args.images]
    print(f"machine: {machine()}; {args.images} images, {args.iterations} iterations, best of 2")
    for width in args.widths:
        model = build_model(width=width, seed=0).eval()
        gradients = leak_gradients(model, x, y)
        per_image = {}
        for mode in ("batched", "sequential"):
            config = AttackConfig(iterations=args.iterations, mode=mode, batch_size=args.images)
            attacker = GradientInversion(config)
            seconds = best_of(2, lambda a=attacker, m=model, g=gradients: a.reconstruct(m, g, y))
            per_image[mode] = seconds / (args.iterations * args.images)
        speedup = per_image["sequential"] / per_image["batched"]
        chosen = GradientInversion(AttackConfig()).choose_mode(model, torch.device("cpu"))
        print(
            f"width {width:3d}: batched {1000 * per_image['batched']:.1f} ms, sequential "
            f"{1000 * per_image['sequential']:.1f} ms per image-iteration; batching speed-up {speedup:.2f}x; "
            f"auto picks {chosen}"
        )


if __name__ == "__main__":
    main()
