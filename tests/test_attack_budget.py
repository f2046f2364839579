"""A budget setting too long for one session is run in slot chunks and resumed from its CSVs (issue #33)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETTING = "attack.iterations=8"


def _budget(data_root: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """attack_budget.py with a cache of its own beside `out`: a run never reads another run's attacks (or judge)."""
    command = [sys.executable, str(ROOT / "benchmarks" / "attack_budget.py"), "--data-root", str(data_root)]
    command += ["--profile", "smoke", "--out", str(out), "--set", "images_per_label=2", "--settings", SETTING]
    env = {**os.environ, "AUTOSHIELD_CACHE": str(out.parent / f"{out.name}-cache")}
    return subprocess.run([*command, *extra], capture_output=True, text=True, timeout=600, env=env)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_chunks_end_as_one_whole_run(tmp_path: Path, data_root: Path) -> None:
    """Two chunks of one slot each give every victim the verdict and PSNR that one run over both slots, attacking
    afresh in a cache of its own, gives it: a victim's start depends on its own index, not on its batch."""
    chunked, whole = tmp_path / "chunked", tmp_path / "whole"
    for slots in ("0:1", "1:2"):
        assert _budget(data_root, chunked, "--slots", slots).returncode == 0
    assert _budget(data_root, whole).returncode == 0

    assert [r["slots"] for r in _rows(chunked / "budget.csv")] == ["0:1", "1:2"]
    keep = ("slot", "recognised", "psnr", "rank", "restart")
    by_index = [{r["index"]: [r[k] for k in keep] for r in _rows(run / "victims.csv")} for run in (chunked, whole)]
    assert len(by_index[0]) == 20
    assert by_index[0] == by_index[1]

    again = _budget(data_root, chunked)  # every slot is held: nothing is attacked again
    assert again.returncode == 0, again.stderr
    assert "20 victims already" in again.stdout
    assert len(_rows(chunked / "victims.csv")) == 20


def test_slots_outside_the_profile_are_refused(tmp_path: Path, data_root: Path) -> None:
    refused = _budget(data_root, tmp_path / "out", "--slots", "1:3")
    assert refused.returncode == 2
    assert "not within the profile's 2 victims" in refused.stderr.splitlines()[-1]


def test_the_rule_takes_the_cheapest_setting_within_three_points_of_the_best(monkeypatch) -> None:
    """Issue #33's rule on a made-up table: cost is iterations x restarts as budget.csv stored them, a setting is
    what its fingerprint says whatever it was called, and a setting that has not attacked every victim yet (a
    chunked run in progress) neither leads nor is chosen."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from attack_budget import rule_choice

    budget: list[dict[str, str]] = []

    def rows(setting: str, hits: int, victims: int = 100, *, iterations: int, restarts: int = 1) -> list[dict]:
        fingerprint = f"{iterations}x{restarts}"
        budget.append({"fingerprint": fingerprint, "iterations": str(iterations), "restarts": str(restarts)})
        return [
            {"setting": setting, "fingerprint": fingerprint, "index": str(i), "recognised": str(int(i < hits))}
            for i in range(victims)
        ]

    table = (
        rows("attack.iterations=6000", 74, iterations=6000)
        + rows("attack.iterations=3000", 71, iterations=3000)
        + rows("attack.iterations=1500", 70, iterations=1500)
    )
    choose = lambda rows: rule_choice(rows, budget=budget)  # noqa: E731
    assert "best attack.iterations=6000 (74.0 %)" in choose(table)
    assert ": attack.iterations=3000 (71.0 %, 3,000 image-iterations" in choose(table)
    four = rows("attack.iterations=1500,attack.restarts=4", 78, iterations=1500, restarts=4)  # 4 points above
    assert ": attack.iterations=1500,attack.restarts=4 (78.0 %, 6,000 image-iterations" in choose(table + four)
    assert ": attack.iterations=3000 (71.0 %" in choose(table + four[:50])  # in chunks: waits
    # one name, two settings: a preset that gained 4 restarts. Each is its own row, priced as budget.csv stored it
    restarted = rows("attack.iterations=3000", 82, iterations=3000, restarts=4)
    assert ": attack.iterations=3000 (82.0 %, 12,000 image-iterations" in choose(table + four + restarted)
    partial = rows("attack.iterations=8", 1, 2, iterations=8)[:1] + rows("a.b=1", 1, 2, iterations=9)[1:]
    assert "no setting has attacked all" in choose(partial)


def test_non_inferiority_holds_a_cheaper_setting_to_the_margins_on_shared_victims(monkeypatch) -> None:
    """Issue #35's check on a made-up table: 3 points of recognition or identifiability or 0.5 dB of PSNR lost is
    within the margin, one victim more is not, and no verdict comes before 50 shared victims."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from attack_budget import non_inferiority

    def rows(setting: str, *, recognised: int, identified: int, psnr: float, victims: int = 100) -> list[dict]:
        return [
            {
                "setting": setting,
                "fingerprint": setting,
                "index": str(i),
                "recognised": str(int(i < recognised)),
                "rank": "1" if i < identified else "7",
                "psnr": str(psnr),
            }
            for i in range(victims)
        ]

    budget = [
        {"fingerprint": "fp32", "seconds_per_victim": "120", "victims": "100"},
        {"fingerprint": "bf16", "seconds_per_victim": "90", "victims": "100"},
    ]
    fp32 = rows("fp32", recognised=70, identified=100, psnr=21.0)
    check = lambda *other: non_inferiority(fp32 + [r for o in other for r in o], budget=budget, reference="fp32")  # noqa: E731
    within = check(rows("bf16", recognised=67, identified=97, psnr=20.5))
    assert within == [
        "non-inferiority of bf16 to fp32 on 100 victims: recognition -3.0 points, identifiability -3.0 points, "
        "PSNR -0.50 dB: passes; 90.0 s per victim against 120.0 s"
    ]
    assert "fails" in check(rows("bf16", recognised=66, identified=100, psnr=21.0))[0]
    assert "fails" in check(rows("bf16", recognised=70, identified=96, psnr=21.0))[0]
    assert "fails" in check(rows("bf16", recognised=70, identified=100, psnr=20.4))[0]
    assert "waits for 50 victims" in check(rows("bf16", recognised=70, identified=100, psnr=21.0, victims=49))[0]
    assert "no victims of the reference" in non_inferiority([], budget=budget, reference="fp32")[0]
