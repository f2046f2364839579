"""Milliseconds per image-iteration of the inversion attack: unfold vs batched (torch.func.vmap) vs sequential, by
width, batch size and device; `--trace` adds a torch.profiler table of a few attack iterations, `--bf16` times
each mode under bf16 autocast too (issue #35: worth a non-inferiority check only if it is much faster).

python benchmarks/bench_attack.py --data-root ../shared/data/cifar10 --widths 16 32 64
python benchmarks/bench_attack.py --widths 16 --batch-sizes 25 --modes unfold batched --norm none --bf16
python benchmarks/bench_attack.py --device cuda --widths 64 --modes batched --batch-sizes 10 50 100 --trace
"""

from __future__ import annotations

import torch
from common import best_of, machine, parser, profile_attack, profile_key, sync

from autoshield.core.choices import NORMS
from autoshield.core.config import AttackConfig
from autoshield.core.runtime import resolve_device
from autoshield.data.cifar import image_box, load_cifar10, normalize, stratified_subset
from autoshield.learn.models import build_model
from autoshield.privacy.attack import GradientInversion
from autoshield.privacy.threat import leak_gradients


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64])
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[10], help="victims attacked together")
    p.add_argument("--iterations", type=int, default=10)
    modes = ["unfold", "batched", "sequential"]
    p.add_argument("--modes", nargs="+", default=modes, choices=modes)
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--trace", action="store_true", help="print a torch.profiler table of the largest batch")
    p.add_argument("--bf16", action="store_true", help="also time each mode under bf16 autocast")
    p.add_argument(
        "--norm", default="batch", choices=NORMS, help="the network's norm: batch (earlier rows), none (quick's)"
    )
    args = p.parse_args()
    device = resolve_device(args.device)
    data = load_cifar10(args.data_root)
    largest = max(args.batch_sizes)
    victims = stratified_subset(data.test, per_class=max(1, -(-largest // 10)), seed=0)
    print(f"machine: {machine()}; {args.iterations} iterations, best of 2, device {device}")
    for width in args.widths:
        model = build_model(width=width, norm=args.norm, seed=0).to(device).eval()
        for size in args.batch_sizes:
            x, y = normalize(victims.images[:size]).to(device), victims.labels[:size].to(device)
            gradients = leak_gradients(model, x, y)
            per_image = {}
            for mode in args.modes:
                config = AttackConfig(iterations=args.iterations, mode=mode, batch_size=size)
                attacker = GradientInversion(config, box=image_box())

                for bf16 in (False, True) if args.bf16 else (False,):

                    def attack(
                        a: GradientInversion = attacker,
                        m: torch.nn.Module = model,
                        g: tuple = gradients,
                        b: bool = bf16,
                    ) -> None:
                        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=b):
                            a.reconstruct(m, g, y)  # noqa: B023 - called within this iteration
                        sync(device)

                    per_image[mode + (" bf16" if bf16 else "")] = best_of(2, attack) / (args.iterations * size)
            timings = ", ".join(f"{mode} {1000 * seconds:.3f} ms" for mode, seconds in per_image.items())
            print(f"width {width:3d}, {size:4d} victims: {timings} per image-iteration", flush=True)
        if args.trace:
            _trace(model, victims, largest, device)


def _trace(model: torch.nn.Module, victims, size: int, device: torch.device) -> None:
    """Where an attack iteration's time goes: the top operators of 5 iterations after 2 of warm-up."""
    x, y = normalize(victims.images[:size]).to(device), victims.labels[:size].to(device)
    prof = profile_attack(model, AttackConfig(mode="batched", batch_size=size), x, y, device)
    print(prof.key_averages().table(sort_by=profile_key(device), row_limit=25), flush=True)


if __name__ == "__main__":
    main()
