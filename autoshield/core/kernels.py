"""Which CPU kernels torch runs: its own pick for this processor, or a pinned set meant to round alike on every
x86 machine with AVX2.

One recipe trains three different judges on three classes of the same 2-core VM (FINDINGS.md, "Machines"), so a
table begun on one class cannot be continued on another. `portable` pins ATen's AVX2 kernels, caps oneDNN at AVX2
and takes MKL's vendor-neutral branch (its AVX2 branch is Intel's only and falls back to the automatic one on AMD).
`benchmarks/portable.py` prints each kind of kernel's digest under both, so each class shows whether it rounds
alike, and what it costs. The variables are read once, when torch first computes, so `pin_kernels` runs at the
entry point, before any tensor is made; it refuses in one line when it is too late to take effect.
"""

from __future__ import annotations

import os

from autoshield.core.errors import AutoshieldError

VARIABLE = "AUTOSHIELD_KERNELS"
KERNELS = ("native", "portable")
PORTABLE = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "COMPATIBLE"}


def chosen_kernels() -> str:
    """The kernels this process was asked for: $AUTOSHIELD_KERNELS, else `native`."""
    return os.environ.get(VARIABLE, "native")


def pin_kernels(*, choice: str | None = None) -> str:
    """Apply `choice` (default: `chosen_kernels()`) to this process and the workers it starts; returns it as a
    report names it, e.g. "portable (AVX2)"."""
    choice = chosen_kernels() if choice is None else choice
    if choice not in KERNELS:
        raise AutoshieldError(f"{VARIABLE}={choice!r} is not one of {', '.join(KERNELS)}")
    if choice == "portable":
        os.environ.update(PORTABLE)
        os.environ[VARIABLE] = choice  # spawned workers pin the same
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    if choice == "portable" and capability != "AVX2":
        raise AutoshieldError(
            f"portable kernels need torch's AVX2 kernels, but this process runs {capability} ones: the processor "
            f"lacks AVX2, or torch computed before {VARIABLE} was applied (set it before starting Python)"
        )
    return f"{choice} ({capability})"
