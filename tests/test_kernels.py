"""Portable kernels: applied before torch computes, or refused in one line when it is too late."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from autoshield.core.errors import AutoshieldError
from autoshield.core.kernels import PORTABLE, VARIABLE, pin_kernels


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in PORTABLE and k != VARIABLE}
    return subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True)


def test_an_unknown_choice_is_refused():
    with pytest.raises(AutoshieldError, match="not one of native, portable"):
        pin_kernels(choice="fast")


def test_portable_pins_avx2_kernels_for_this_process_and_its_workers():
    code = (
        "import os, torch; from autoshield.core.kernels import pin_kernels; print(pin_kernels()); "
        "print(os.environ['MKL_CBWR'], os.environ['AUTOSHIELD_KERNELS'])"
    )
    done = _python(code, AUTOSHIELD_KERNELS="portable")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["portable (AVX2)", "COMPATIBLE portable"]


def test_portable_is_refused_once_torch_has_chosen_other_kernels():
    """Torch reads the variables once, at its first computation: pinning after one would be a silent no-op."""
    code = (
        "import torch; torch.ones(8).sum(); from autoshield.core.kernels import pin_kernels\n"
        "try:\n    pin_kernels(choice='portable')\nexcept Exception as e:\n    print(e)"
    )
    done = _python(code, ATEN_CPU_CAPABILITY="default")
    assert done.returncode == 0, done.stderr
    assert "this process runs DEFAULT ones" in done.stdout


def test_the_command_refuses_an_unknown_choice_in_one_line():
    done = _python("from autoshield.cli.app import main; raise SystemExit(main(['ops']))", AUTOSHIELD_KERNELS="x")
    assert done.returncode == 2
    assert done.stderr.strip() == "error: AUTOSHIELD_KERNELS='x' is not one of native, portable"


def test_a_judge_trained_on_portable_kernels_is_cached_apart(monkeypatch):
    """Portable kernels train another judge: a machine keeps both, and never serves one for the other."""
    from types import SimpleNamespace

    from autoshield.core.config import PRESETS
    from autoshield.privacy.reference import reference_path

    data = SimpleNamespace(fingerprint="f")
    monkeypatch.delenv(VARIABLE, raising=False)
    native = reference_path(data, PRESETS["quick"])  # type: ignore[arg-type]
    monkeypatch.setenv(VARIABLE, "portable")
    assert reference_path(data, PRESETS["quick"]) != native  # type: ignore[arg-type]
    monkeypatch.setenv(VARIABLE, "native")
    assert reference_path(data, PRESETS["quick"]) == native  # type: ignore[arg-type]
