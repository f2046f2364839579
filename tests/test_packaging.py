"""A built wheel works on its own: the built-in search spaces ship inside the package."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_in_a_fresh_venv_runs_ops_with_a_built_in_space(tmp_path: Path):
    dist = tmp_path / "dist"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist)]
    subprocess.run([*build, str(ROOT)], check=True, cwd=tmp_path)
    (wheel,) = dist.glob("autoshield-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)]
    subprocess.run(install, check=True)
    # The dependencies (torch, optuna, ...) come from this environment, after the venv's own site-packages; a
    # path added by a .pth file is not scanned for .pth files, so this checkout's editable install stays out.
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())  # fmt: skip
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    where = subprocess.run(
        [python, "-c", "import autoshield; print(autoshield.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,  # not the checkout, whose autoshield/ the current folder would put first
    )
    assert Path(where.stdout.strip()).is_relative_to(venv)  # the wheel's copy, not this checkout
    result = subprocess.run(
        [venv / "bin" / "autoshield", "ops", "--space", "randaugment14"], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "58 distinct (op, magnitude) cells" in result.stdout
