"""The measurements behind issue #17's GPU figures, run by benchmarks/gpu.sh once with the code before the change
(PYTHONPATH=.gpu/before) and once with main's, on the same card. Every line it prints is a result, flushed at once.

python benchmarks/gpu_bench.py attack --modes batched unfold --batch-sizes 10 50 100 --psnr-victims 20
python benchmarks/gpu_bench.py train --runs 128:0.1 512:0.4 512:0.4:compile --epochs 5
python benchmarks/gpu_bench.py workers --counts 1 2 4
Dry run on the CPU: add --device cpu --width 8 and small sizes (benchmarks/gpu.sh does, with GPU_DRY=1).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import time
import warnings
from pathlib import Path

import torch
from common import best_of, machine, parser, profile_attack, profile_key, sync

import autoshield
from autoshield.core.config import AttackConfig, load_profile
from autoshield.data.cifar import denormalize, image_box, load_cifar10, normalize, stratified_subset
from autoshield.learn.models import build_model
from autoshield.learn.train import evaluate, fit
from autoshield.privacy.attack import GradientInversion
from autoshield.privacy.metrics import psnr
from autoshield.privacy.threat import leak_gradients


def say(text: str) -> None:
    print(text, flush=True)


def precision(mode: str) -> str:
    """Variants of a mode: `-fp32` turns TF32 off for convolutions and matrix products alike; `-bench` lets cuDNN
    try its algorithms."""
    torch.backends.cudnn.allow_tf32 = "-fp32" not in mode
    torch.backends.cudnn.benchmark = "-bench" in mode
    return mode.split("-")[0]


def victims(data, count: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` held-out test images, as even across labels as the count allows, fixed by seed 0."""
    subset = stratified_subset(data.test, per_class=-(-count // 10), seed=0)
    order = torch.argsort(torch.arange(len(subset.labels)) % -(-count // 10), stable=True)[:count]
    return normalize(subset.images[order]).to(device), subset.labels[order].to(device)


def attack_config(profile, mode: str, **changes) -> AttackConfig:
    return dataclasses.replace(profile.attack, mode=mode, **changes)


def time_attack(model, config: AttackConfig, x, y, device) -> float:
    """Seconds per image-iteration: the best of two runs after a warm-up (kernel choice, allocator)."""
    gradients = leak_gradients(model, x, y)
    GradientInversion(dataclasses.replace(config, iterations=2), box=image_box()).reconstruct(model, gradients, y)
    sync(device)

    def attack() -> None:
        GradientInversion(config, box=image_box()).reconstruct(model, gradients, y)
        sync(device)

    return best_of(2, attack) / (config.iterations * len(y))


def run_attack(args, data, device) -> None:
    """PSNR first (the check that the faster path attacks as well), then ms per image-iteration by batch."""
    profile = load_profile("paper")
    model = build_model(width=args.width, norm=profile.norm, seed=0).to(device).eval()
    x, y = victims(data, max(args.batch_sizes), device)
    if args.psnr_victims:
        px, py = victims(data, args.psnr_victims, device)
        gradients = leak_gradients(model, px, py)
        reference = torch.load(args.against) if args.against and Path(args.against).exists() else None
        for mode in args.modes:
            kind = precision(mode)
            config = attack_config(profile, kind, iterations=args.psnr_iterations, batch_size=args.psnr_victims)
            sync(device)
            start = time.perf_counter()
            result = GradientInversion(config, box=image_box()).reconstruct(model, gradients, py)
            sync(device)
            seconds = time.perf_counter() - start
            db = psnr(denormalize(result.images.to(device)), denormalize(px)).cpu()
            n, it = len(py), args.psnr_iterations
            line = f"psnr {mode:12s} {n} victims x {it} it: {db.mean():.2f} dB ({seconds:.1f} s)"
            if reference is not None:
                d = db - reference
                line += (
                    f"; minus before's, same victims and starts: {d.mean():+.2f} dB [{d.min():+.2f}, {d.max():+.2f}]"
                )
            say(line)
            if args.save and mode == args.modes[0]:
                torch.save(db, args.save)
    for mode in args.modes:
        kind = precision(mode)
        for size in args.batch_sizes:
            config = attack_config(profile, kind, iterations=args.iterations, batch_size=size)
            ms = 1000 * time_attack(model, config, x[:size], y[:size], device)
            say(f"attack {mode:12s} width {args.width} batch {size:4d}: {ms:.4f} ms per image-iteration")
    precision("default")
    if args.trace:
        trace(model, profile, args.trace_mode, x, y, device)


def trace(model, profile, mode: str, x, y, device) -> None:
    """Where an iteration's time goes: the top operators, then by input shape, of 5 iterations after 2 of warm-up."""
    prof = profile_attack(model, attack_config(profile, mode, batch_size=len(y)), x, y, device)
    key = profile_key(device)
    say(prof.key_averages().table(sort_by=key, row_limit=25, max_name_column_width=50))
    say(prof.key_averages(group_by_input_shape=True).table(sort_by=key, row_limit=25, max_name_column_width=50))


def run_train(args, data, device) -> None:
    """The paper recipe for `--epochs` on the pack's training images: img/s, accuracy, host syncs per run."""
    profile = load_profile("paper")
    train, test = data.train, stratified_subset(data.test, per_class=args.test_per_class, seed=0)
    if args.train_per_class:
        train = stratified_subset(train, per_class=args.train_per_class, seed=0)
    for run in args.runs:
        batch, lr, *flags = run.split(":")
        config = dataclasses.replace(
            profile.train, epochs=args.epochs, batch_size=int(batch), lr=float(lr), compile="compile" in flags
        )
        for attempt in ("first", "again") if config.compile else ("first",):
            model = build_model(width=args.width, norm=profile.norm, seed=0)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                if device.type == "cuda":
                    torch.cuda.set_sync_debug_mode("warn")
                sync(device)
                start = time.perf_counter()
                fit(model, train.images, train.labels, config=config, seed=0, device=device)
                sync(device)
                seconds = time.perf_counter() - start
                if device.type == "cuda":
                    torch.cuda.set_sync_debug_mode("default")
            syncs = sum("synchroniz" in str(w.message) for w in caught)
            accuracy = evaluate(model, test, batch_size=1000, device=device).overall
            say(
                f"train batch {config.batch_size:4d} lr {config.lr:g} compile {config.compile!s:5s} ({attempt}): "
                f"{args.epochs * len(train) / seconds:,.0f} img/s, {seconds:.1f} s for {args.epochs} epochs of "
                f"{len(train)}, accuracy {100 * accuracy:.1f} %, {syncs} host syncs"
            )


def _worker(rank: int, args, barrier, results, threads: int) -> None:
    """One attacking process; in the round for K processes, ranks below K attack at once, the others wait."""
    torch.set_num_threads(threads)
    device = torch.device(args.device)
    data = load_cifar10(args.data_root)
    profile = load_profile("paper")
    model = build_model(width=args.width, norm=profile.norm, seed=0).to(device).eval()
    x, y = victims(data, args.worker_batch, device)
    config = attack_config(profile, args.modes[0], iterations=args.iterations, batch_size=args.worker_batch)
    gradients = leak_gradients(model, x, y)
    GradientInversion(dataclasses.replace(config, iterations=2), box=image_box()).reconstruct(model, gradients, y)
    sync(device)
    for count in args.counts:
        barrier.wait()
        if rank < count:
            start = time.time()
            GradientInversion(config, box=image_box()).reconstruct(model, gradients, y)
            sync(device)
            results[(count, rank)] = (start, time.time())
        barrier.wait()


def run_workers(args, data, device) -> None:
    """K processes attacking at once, as `--workers-per-gpu K` runs them: image-iterations per second in all.
    The processes start once; each round uses the first K of them."""
    del data, device  # each worker loads its own
    context = multiprocessing.get_context("spawn")
    most = max(args.counts)
    barrier, results = context.Barrier(most), context.Manager().dict()
    threads = max(1, torch.get_num_threads() // most)
    workers = [context.Process(target=_worker, args=(i, args, barrier, results, threads)) for i in range(most)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for count in args.counts:
        spans = [results[(count, rank)] for rank in range(count) if (count, rank) in results]
        if len(spans) < count:
            say(f"workers {count}: {count - len(spans)} failed")
            continue
        span = max(end for _, end in spans) - min(start for start, _ in spans)
        rate = count * args.worker_batch * args.iterations / span
        say(f"workers {count}: {rate:,.0f} image-iterations/s in all, {1000 / rate:.4f} ms per image-iteration")


def main() -> None:
    p = parser(__doc__)
    p.add_argument("what", choices=["attack", "train", "workers"])
    p.add_argument("--device", default="cuda")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--modes", nargs="+", default=["unfold"], help="batched, unfold, unfold-fp32, sequential")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[10, 50, 100])
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--psnr-victims", type=int, default=0)
    p.add_argument("--psnr-iterations", type=int, default=1000)
    p.add_argument("--save", help="write the first mode's per-victim PSNR here")
    p.add_argument("--against", help="per-victim PSNR of the code before, to pair with")
    p.add_argument("--trace", action="store_true")
    p.add_argument("--trace-mode", default="unfold")
    p.add_argument("--runs", nargs="+", default=["128:0.1"], help="batch:lr[:compile]")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--train-per-class", type=int)
    p.add_argument("--test-per-class", type=int, default=1000)
    p.add_argument("--counts", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--worker-batch", type=int, default=50)
    args = p.parse_args()
    device = torch.device(args.device)
    say(f"{args.what}: {machine()}; autoshield from {Path(autoshield.__file__).parent}")
    data = load_cifar10(args.data_root) if args.what != "workers" else None
    {"attack": run_attack, "train": run_train, "workers": run_workers}[args.what](args, data, device)


if __name__ == "__main__":
    main()
