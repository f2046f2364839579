"""How many aten ops one attack iteration dispatches (issue #17): on a GPU each is at least one launch, and at
50-100 victims an H200 iteration looked bound by the host, so the count is a device-free proxy for that cost.
Counts one iteration plus the final step. The count grows a little with the width, where deep layers take the Gram
route (unfold: 3,569 / 3,699 / 3,829 at width 2 / 16 / 64).

python benchmarks/attack_ops.py --modes unfold batched --width 64
"""

from __future__ import annotations

import collections

import torch
from common import machine, parser
from torch.utils._python_dispatch import TorchDispatchMode

from autoshield.core.config import AttackConfig
from autoshield.data.cifar import image_box
from autoshield.learn.models import build_model
from autoshield.privacy.attack import GradientInversion
from autoshield.privacy.threat import leak_gradients


class _Count(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls[str(func)] += 1
        return func(*args, **(kwargs or {}))


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--modes", nargs="+", default=["unfold", "batched"], choices=["unfold", "batched"])
    p.add_argument("--top", type=int, default=10, help="the most frequent ops to list")
    p.add_argument("--width", type=int, default=2, help="ResNet-18 width (the count, not the time, is measured)")
    args = p.parse_args()
    model = build_model(width=args.width, norm="none", seed=0).eval()
    x, y = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)), torch.tensor([1, 2])
    gradients = leak_gradients(model, x, y)
    print(f"machine: {machine()}; width {args.width}, 2 problems, one iteration and the final step")
    for mode in args.modes:
        attacker = GradientInversion(AttackConfig(iterations=1, batch_size=2, mode=mode), box=image_box())
        with _Count() as count:
            attacker.reconstruct(model, gradients, y)
        top = ", ".join(f"{name.removeprefix('aten.')} {n}" for name, n in count.calls.most_common(args.top))
        print(f"{mode}: {sum(count.calls.values())} aten ops ({top})", flush=True)


if __name__ == "__main__":
    main()
