"""Training throughput of autoshield's loop vs a bare PyTorch loop, the policy's share, data reload time.

python benchmarks/bench_train.py --data-root ../shared/data/cifar10
"""

from __future__ import annotations

import time

import torch
from common import best_of, machine, parser
from torch.nn import functional as F

from autoshield.core.config import load_profile
from autoshield.data.cifar import load_cifar10, normalize, stratified_subset
from autoshield.data.policy import Policy, transform_split
from autoshield.learn.models import build_model
from autoshield.learn.train import crop_flip, fit


def bare_loop(images: torch.Tensor, labels: torch.Tensor, *, width: int, batch_size: int, seed: int) -> None:
    """The textbook loop on the same model, data, optimiser and augmentation."""
    torch.manual_seed(seed)
    model = build_model(width=width, seed=seed).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    x = normalize(images)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels))
    for start in range(0, len(labels), batch_size):
        index = order[start : start + batch_size]
        batch = crop_flip(x[index], generator=generator)
        loss = F.cross_entropy(model(batch), labels[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def main() -> None:
    args = parser(__doc__).parse_args()
    start = time.perf_counter()
    data = load_cifar10(args.data_root)
    reload_seconds = time.perf_counter() - start
    profile = load_profile("quick", overrides=("train.epochs=1",))
    train = stratified_subset(data.train, per_class=profile.train_per_class, seed=0)
    n = len(train)
    ours = best_of(
        2,
        lambda: fit(
            build_model(width=profile.width, seed=0),
            train.images,
            train.labels,
            config=profile.train,
            seed=0,
            device=torch.device("cpu"),
        ),
    )
    bare = best_of(
        2,
        lambda: bare_loop(train.images, train.labels, width=profile.width, batch_size=profile.train.batch_size, seed=0),
    )
    strong = Policy.parse(
        "airplane=Rotate:9,automobile=Solarize:7,bird=Equalize,cat=ShearX:5,deer=Contrast:9,"
        "dog=Posterize:3,frog=TranslateY:7,horse=Sharpness:9,ship=AutoContrast,truck=Color:5"
    )
    policy_seconds = best_of(3, lambda: transform_split(train, strong, seed=0))
    print(f"machine: {machine()}")
    print(f"full CIFAR-10 reload from cache: {reload_seconds:.2f} s")
    print(f"quick profile, width {profile.width}, {n} images, 1 epoch:")
    print(f"  autoshield fit: {n / ours:.0f} img/s; bare loop: {n / bare:.0f} img/s; ratio {bare / ours:.2f}")
    print(
        f"  applying a 10-op policy to the training set: {policy_seconds * 1000:.0f} ms, "
        f"{100 * policy_seconds / (ours * profile.train.epochs * 4):.2f} % of a 4-epoch training run"
    )


if __name__ == "__main__":
    main()
