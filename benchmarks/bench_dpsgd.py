"""DP-SGD training throughput relative to non-private training of the same GroupNorm ResNet-18.

python benchmarks/bench_dpsgd.py --data-root ../shared/data/cifar10 --width 16
"""

from __future__ import annotations

import time

import torch
from common import machine, parser

from autoshield.core.config import TrainConfig
from autoshield.data.cifar import load_cifar10, stratified_subset
from autoshield.dp.config import DPConfig
from autoshield.dp.engine import train_dp
from autoshield.learn.models import build_model
from autoshield.learn.train import fit


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--per-class", type=int, default=200)
    args = p.parse_args()
    data = load_cifar10(args.data_root)
    train = stratified_subset(data.train, per_class=args.per_class, seed=0)
    test = stratified_subset(data.test, per_class=20, seed=0)
    config = TrainConfig(epochs=1, batch_size=128, crop_flip=True)
    device = torch.device("cpu")
    start = time.perf_counter()
    fit(
        build_model(width=args.width, norm="group", seed=0),
        train.images,
        train.labels,
        config=config,
        seed=0,
        device=device,
    )
    plain = len(train) / (time.perf_counter() - start)
    private = train_dp(
        train=train, test=test, width=args.width, config=config, dp=DPConfig(sigma=0.5), seed=0, device=device
    ).images_per_second
    print(f"machine: {machine()}; width {args.width}, {len(train)} images, batch 128, 1 epoch")
    print(
        f"  non-private GroupNorm: {plain:.0f} img/s; DP-SGD (Opacus, physical batch 64): {private:.0f} img/s; "
        f"ratio {plain / private:.1f}x slower"
    )


if __name__ == "__main__":
    main()
