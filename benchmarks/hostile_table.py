"""The hostile-input table (issues #18, #32): every hand-picked case run as a user would (a fresh `autoshield`
process), with its exit code, its stderr, whether a traceback or a secret was printed, and whether the studies are
intact afterwards; then the generated walk of `tests/test_hostile_walk.py` (every profile key and every option
through its type's boundary values), counted per key and option with its run time.

python benchmarks/hostile_table.py --out benchmarks/reports/hostile-2026-12-03.md   (synthetic data, smoke)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import write_image_folder  # noqa: E402 - the tests' synthetic CIFAR-10
from tests.test_hostile import CASES, write_bad_files  # noqa: E402 - the parametrised cases, as processes
from tests.test_hostile_walk import OPTION_CASES, PROFILE_CASES  # noqa: E402 - the generated walk

SECRETS = ("s3cret", "ngPW", "hunter2")
EXTRA = {  # beyond the test module's cases: commands whose failure must also be one line
    "password with @ in URL": (["report", "--storage", "postgresql+psycopg://bob:ngPW@s3cret@127.0.0.1:9/x"], ""),
    "password with / and %": (["grid", "--storage", "postgresql+psycopg://bob:hun/ter%2@127.0.0.1:9/x"], ""),
    "password in env, unreachable": (["report"], "AUTOSHIELD_STORAGE=postgresql+psycopg://bob:hunter2@127.0.0.1:9/x"),
    "dashboard on every interface": (["dashboard", "--host", "0.0.0.0"], ""),
    "dashboard on a missing storage": (["dashboard", "--storage", "sqlite:///{F}/typo.db"], ""),
    "export missing trial": (["export", "--kind", "grid", "--trial", "999"], ""),
    "export from missing study kind": (["export", "--kind", "search"], ""),
    "confirm with zero victims": (["confirm", "--victims", "0"], ""),
    "confirm more than the pool": (["confirm", "--victims", "1000"], ""),
    "confirm without a study": (["confirm", "--study", "nobody"], ""),
    "attack with unknown attacker": (["attack", "--attacker", "oracle"], ""),
    "grid with posthoc objective": (["grid", "--attacker", "posthoc"], ""),
    "grid mixing attackers": (["grid", "--attacker", "adaptive"], ""),
    "grid mixing utilities": (["grid", "--utility", "trained"], ""),
    "unknown norm": (["train", "--set", "norm='batchy'"], ""),
    "baseline on BatchNorm": (["baseline", "--set", "norm='batch'"], ""),
    "zero workers": (["grid", "--n-jobs", "0"], ""),
    "workers per GPU without a GPU": (["search", "--workers-per-gpu", "2"], ""),
    "workers per GPU beside --n-jobs": (["grid", "--workers-per-gpu", "2", "--n-jobs", "3"], ""),
    "unknown attack mode": (["attack", "--set", "attack.mode='fast'"], ""),
    "negative max grad norm": (["baseline", "--max-grad-norm", "-1"], ""),
    "unknown space": (["grid", "--space", "nope"], ""),
    "unknown command": (["wobble"], ""),
    "no command": ([], ""),
    "report --out under a file": (["report", "--out", "{F}/bad.json/r"], ""),
    "ops sheet under a file": (["ops", "--sheet", "{F}/bad.json/o.png"], ""),
    "attack sheet under a file": (["attack", "--sheet", "{F}/bad.json/s.png"], ""),
    "images per label zero": (["attack", "--images-per-label", "0"], ""),
    "images per label beyond pool": (["attack", "--images-per-label", "1000"], ""),
    "iterations zero": (["attack", "--set", "attack.iterations=0"], ""),
    "device that does not exist": (["train", "--device", "tpu"], ""),
    "cuda without a GPU": (["train", "--device", "cuda"], ""),
    "tolerance negative": (["grid", "--tolerance", "-1"], ""),
    "sigma zero": (["baseline", "--sigma", "0"], ""),
    "policy file missing": (["train", "--policy", "missing.json"], ""),
}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "absent"


def walk_section() -> str:
    """The generated walk, in-process: each profile value through `load_profile`, each option value through the
    parser; per key or option, how many values were accepted and how many refused, and whether every refusal was
    one line."""
    import contextlib
    import io
    import time

    from autoshield.cli.app import build_parser
    from autoshield.core.config import load_profile
    from autoshield.core.errors import AutoshieldError

    start = time.perf_counter()
    counts: dict[str, list[int]] = {}
    multiline = 0
    for key, value in PROFILE_CASES:
        row = counts.setdefault(f"--set {key}", [0, 0])
        try:
            load_profile("smoke", overrides=(f"{key}={value}",))
            row[0] += 1
        except AutoshieldError as error:
            row[1] += 1
            multiline += "\n" in str(error)
    parser = build_parser()
    for command, option, value in OPTION_CASES:
        row = counts.setdefault(f"{command} {option}", [0, 0])
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                parser.parse_args([command, option, value])
            row[0] += 1
        except SystemExit:
            row[1] += 1
            multiline += err.getvalue().count("\n") != 1
    seconds = time.perf_counter() - start
    total = len(PROFILE_CASES) + len(OPTION_CASES)
    refused = sum(r[1] for r in counts.values())
    lines = [
        "## The generated walk (`tests/test_hostile_walk.py`)\n\n",
        f"{total} cases ({len(PROFILE_CASES)} profile values over {len({k for k, _ in PROFILE_CASES})} keys, "
        f"{len(OPTION_CASES)} option values over {len({(c, o) for c, o, _ in OPTION_CASES})} options) in "
        f"{seconds:.1f} s in-process: {refused} refused, {total - refused} accepted, {multiline} refusals longer "
        "than one line. Accepted values lie inside their documented range (the test checks it); refused ones "
        "reach the user as one `error:` line with exit 2 before any data loads (the test runs each through the "
        "command line).\n\n",
        "| key or option | accepted | refused |\n",
        "|---|---|---|\n",
    ]
    lines += [f"| `{name}` | {a} | {r} |\n" for name, (a, r) in counts.items()]
    return "".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="hostile-"))
    data = write_image_folder(folder / "data")
    env = os.environ | {"AUTOSHIELD_CACHE": str(folder / "cache"), "OMP_NUM_THREADS": "1"}
    space = folder / "three.toml"
    space.write_text('name = "three"\nops = ["Identity", "Rotate", "Invert"]\nmagnitudes = [9]\n')
    db = folder / "s.db"
    base = ["--profile", "smoke", "--data-root", str(data)]
    setup = [sys.executable, "-m", "autoshield.cli", "grid", "--space", str(space), "--utility", "recognizability",
             "--storage", f"sqlite:///{db}", *base]  # fmt: skip
    subprocess.run(setup, env=env, check=True, capture_output=True)
    write_bad_files(folder, data)
    rows = []
    cases = {name: (argv, "") for name, (argv, _) in CASES.items()} | EXTRA
    for name, (argv, extra_env) in cases.items():
        argv = [a.replace("{F}", str(folder)) for a in argv]
        defaults = {"--profile": "smoke", "--storage": f"sqlite:///{db}", "--data-root": str(data)}
        command = argv[0] if argv else ""
        if command in ("data", "ops"):
            defaults = {"--data-root": str(data)}
        if command in ("train", "attack"):
            defaults.pop("--storage")
        if command in ("report", "export", "dashboard"):
            defaults = {"--storage": f"sqlite:///{db}"}
        if command in ("grid", "search"):
            defaults |= {"--space": str(space), "--utility": "recognizability"}  # the world's grid's utility
        if command in ("wobble", "") or (extra_env and command == "report"):
            defaults = {}
        full = [*argv, *(item for key, value in defaults.items() if key not in argv for item in (key, value))]
        case_env = env | dict([extra_env.split("=", 1)]) if extra_env else env
        before = _digest(db)
        try:
            result = subprocess.run([sys.executable, "-m", "autoshield.cli", *full], env=case_env,
                                    capture_output=True, text=True, timeout=120)  # fmt: skip
        except subprocess.TimeoutExpired:  # it started real work instead of refusing: a finding, not a crash
            result = subprocess.CompletedProcess(full, -9, "", "ran for 120 s: killed")
        err = result.stderr.strip()
        rows.append(
            (
                name,
                " ".join(a.encode("unicode_escape").decode() if not a.isprintable() else a for a in argv) or "(none)",
                result.returncode,
                len(err.splitlines()),
                "yes" if "Traceback" in err else "no",
                "yes" if any(s in err + result.stdout for s in SECRETS) else "no",
                "yes" if _digest(db) == before else "no",
                err.splitlines()[-1][:150].replace("|", "\\\\|") if err else "",
            )
        )
        print(rows[-1][:7], flush=True)
    header = "| case | arguments | exit | stderr lines | traceback | secret shown | study intact | message |\n"
    lines = [header, "|---|---|---|---|---|---|---|---|\n"]
    lines += [f"| {' | '.join(str(v) for v in row)} |\n" for row in rows]
    tracebacks = sum(row[4] == "yes" for row in rows)
    secrets = sum(row[5] == "yes" for row in rows)
    zero = [row[0] for row in rows if row[2] == 0]
    summary = (
        f"{len(rows)} cases: {tracebacks} tracebacks, {secrets} secrets shown, "
        f"{sum(row[6] == 'yes' for row in rows)} left the study intact; exit 0: {zero or 'none'}\n"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        "# Hostile input (issues #18, #32)\n\n## Hand-picked cases, each a fresh process\n\n"
        + summary
        + "\n"
        + "".join(lines)
        + "\n"
        + walk_section()
    )
    print(summary)


if __name__ == "__main__":
    main()
