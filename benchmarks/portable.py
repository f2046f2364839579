"""Can a number computed on one VM class be reproduced on another? Digests of each kind of kernel the project
leans on, under candidate settings that pin torch's kernels, and what each setting costs.

Three rounding classes of the same 2-core VM have been seen (FINDINGS.md, "Machines"): the same judge recipe
trains three judges, so a table built on one class cannot be continued on another. Each class runs this probe
and commits its lines; a setting whose digests agree on every class is portable, and its cost says whether
the judge (or the attack) can afford it. Each setting runs in a child process, because the variables it sets
are read once, when torch first dispatches, when oneDNN builds its first kernel and when MKL starts:

- `native`: what torch picks for the processor (AVX512 kernels where there are any).
- `portable`: `AUTOSHIELD_KERNELS=portable` (`core.kernels`): ATen's AVX2 kernels, oneDNN capped at AVX2 and MKL's
  vendor-neutral branch (`MKL_CBWR=COMPATIBLE`; MKL's other branches fall back to its automatic one on AMD).
- `portable-gemm`: the same with oneDNN switched off, so that convolutions go through MKL's GEMM too.

The components: `gemm` (MKL, the attack's per-sample products and the judge's linear layer), `conv` (a
convolution's forward and backward), `reduce` (sums, exp and log over a million numbers), `cells` (every cell
of `randaugment14` on 16 images: a table key is the transformed image's digest), `judge` (one epoch of the
judge's recipe at width 16 on 2,048 random images; the seconds are that epoch's) and `attack` (20 steps of
the unfold attack on 25 random problems; the seconds are per step). Where `attack` differs, its parts say where
it starts: `forward` (the attacked network's logits), `targets` (the leaked per-problem gradients) and `step`
(one step's image gradient). A component missing from the other file is reported, not counted as a difference.

    python benchmarks/portable.py [--settings native portable portable-gemm] [--threads 2] [--out FILE.json]
        [--compare reports/portable-2026-12-05/classC.json [--require gemm conv reduce cells judge]]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from autoshield.core.kernels import PORTABLE, VARIABLE

SETTINGS: dict[str, dict[str, str]] = {"native": {}, "portable": PORTABLE, "portable-gemm": PORTABLE}
NO_ONEDNN = {"portable-gemm"}
COMPONENTS = ("gemm", "conv", "reduce", "cells", "judge", "forward", "targets", "step", "attack")


def digest(*tensors: object) -> str:
    import torch

    h = hashlib.sha256()
    for t in tensors:
        assert isinstance(t, torch.Tensor)
        h.update(t.detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def component(name: str) -> tuple[str, float]:
    """(digest, seconds) of one component in this process's setting."""
    import torch

    g = torch.Generator().manual_seed(0)
    began = time.perf_counter()
    if name == "gemm":
        a, b = torch.randn(512, 1152, generator=g), torch.randn(1152, 256, generator=g)
        out = (digest(a @ b, torch.bmm(a.view(8, 64, 1152), b.expand(8, -1, -1))),)
    elif name == "conv":
        x = torch.randn(16, 16, 32, 32, generator=g, requires_grad=True)
        w = torch.randn(32, 16, 3, 3, generator=g, requires_grad=True)
        y = torch.nn.functional.conv2d(x, w, padding=1)
        y.square().sum().backward()
        out = (digest(y, x.grad, w.grad),)
    elif name == "reduce":
        x = torch.randn(1_000_000, generator=g)
        out = (digest(x.sum(), x.exp().mean(), x.abs().log().sum(), torch.softmax(x.view(1000, 1000), 1)),)
    elif name == "cells":
        from autoshield.data.ops import apply_op
        from autoshield.data.spaces import load_search_space

        images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=g)
        signs = torch.tensor([1, -1] * 8)
        cells = load_search_space("randaugment14").cells()
        out = (digest(*(apply_op(images, c.op, c.magnitude, signs=signs) for c in cells)),)
    elif name == "judge":
        out = (_judge(g),)
    else:
        out = (_attack(g, steps={"forward": -1, "targets": 0, "step": 1, "attack": 20}[name]),)
    seconds = time.perf_counter() - began
    return out[0], seconds / (20 if name == "attack" else 1)


def _judge(g: object) -> str:
    import torch

    from autoshield.core.config import TrainConfig
    from autoshield.learn.models import build_model
    from autoshield.learn.train import fit

    assert isinstance(g, torch.Generator)
    images = torch.randint(0, 256, (2048, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (2048,), generator=g)
    model = build_model(width=16, seed=0)
    fit(model, images, labels, config=TrainConfig(epochs=1), seed=0, device=torch.device("cpu"))
    return digest(*model.state_dict().values())


def _attack(g: object, *, steps: int) -> str:
    """The unfold attack on 25 random problems after `steps` sign steps (0: the leaked targets; -1: the logits)."""
    import torch

    from autoshield.learn.models import build_model
    from autoshield.privacy import per_sample
    from autoshield.privacy.attack import total_variation
    from autoshield.privacy.threat import leak_gradients

    assert isinstance(g, torch.Generator)
    model = build_model(width=16, norm="none", seed=0).eval()
    truth, labels = torch.randn(25, 3, 32, 32, generator=g), torch.randint(0, 10, (25,), generator=g)
    if steps < 0:
        return digest(model(truth))
    targets = tuple(leak_gradients(model, truth, labels))
    norm = torch.sqrt(sum(t.pow(2).flatten(1).sum(1) for t in targets))
    step = per_sample.step_fn(model, tv_weight=1e-4, prior=total_variation)
    if steps == 0:
        return digest(*targets)
    images = torch.randn(25, 1, 3, 32, 32, generator=g)
    for _ in range(steps):
        grad, loss = step(images, labels[:, None], targets, norm)
        images = images - 0.1 * grad.sign()
    return digest(grad, loss) if steps == 1 else digest(images, loss)  # 20 steps: as class C's committed digest


def child(threads: int, gemm_only: bool) -> None:
    import torch

    torch.set_num_threads(threads)
    torch.backends.mkldnn.enabled = not gemm_only
    found = {name: component(name) for name in COMPONENTS}
    print(json.dumps({"capability": torch.backends.cpu.get_cpu_capability(), "found": found}))


def run(setting: str, threads: int) -> dict[str, object]:
    env = {**{k: v for k, v in os.environ.items() if k not in PORTABLE and k != VARIABLE}, **SETTINGS[setting]}
    argv = [sys.executable, __file__, "--child", "--threads", str(threads)] + (["--gemm"] * (setting in NO_ONEDNN))
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=list(SETTINGS))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, help="write the digests here (JSON), to commit beside the run's report")
    p.add_argument(
        "--compare", type=Path, help="another machine's --out file: say which digests agree (exit 1 if any differs)"
    )
    p.add_argument(
        "--require",
        nargs="+",
        choices=COMPONENTS,
        help="with --compare, exit 1 only if one of these differs (e.g. the judge's: gemm conv reduce cells judge)",
    )
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--gemm", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.threads, args.gemm)
        return
    from common import machine

    here = machine()
    theirs = json.loads(args.compare.read_text()) if args.compare else None
    print(f"machine: {here}; {args.threads} threads", flush=True)
    show: Callable[[str, float], str] = lambda d, s: f"{d} {s:7.3f}s"  # noqa: E731
    digests: dict[str, dict[str, str]] = {}
    unlike = False
    for setting in args.settings:
        result = run(setting, args.threads)
        found = result["found"]
        assert isinstance(found, dict)
        digests[setting] = {name: found[name][0] for name in COMPONENTS}
        cells = "  ".join(f"{name} {show(*found[name])}" for name in COMPONENTS)
        print(f"{setting:13} ({result['capability']}): {cells}", flush=True)
        if theirs and setting in theirs["digests"]:
            other = theirs["digests"][setting]
            shared = [n for n in COMPONENTS if n in other]
            differ = [n for n in shared if other[n] != digests[setting][n]]
            unlike |= bool(set(differ) & set(args.require or COMPONENTS))
            verdict = f"differs in {', '.join(differ)}" if differ else "rounds alike"
            missing = [n for n in COMPONENTS if n not in other]
            verdict += f" (theirs lacks {', '.join(missing)})" * bool(missing)
            print(f"{'':13} against {theirs['machine']}: {verdict}", flush=True)
    if args.out:
        record = {"machine": here, "threads": args.threads, "digests": digests}
        args.out.write_text(json.dumps(record, indent=1) + "\n")
    if unlike:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
