"""The poster's attack side (issue #37 item 5) on synthetic data: one label's victims, attacked under its cell and
under DP-SGD's noise from the same starts, judged by one exported judge, paired victim by victim."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

from autoshield.cli import main

ROOT = Path(__file__).resolve().parent.parent


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_one_labels_victims_under_the_cell_and_under_dp_pair_victim_by_victim(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    judge, out = tmp_path / "judge.pt", tmp_path / "out"
    assert main(["judge", "export", str(judge), "--profile", "smoke", "--data-root", str(data_root)]) == 0
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import poster_attack

    args = ["poster_attack.py", "--data-root", str(data_root), "--profile", "smoke", "--victims", "3"]
    args += ["--attackers", "naive", "posthoc", "--dp-sigmas", "0.5", "1", "--judge", str(judge), "--out", str(out)]

    def run(machine: str) -> str:
        """The script on a machine of its own: its own attack cache and table database, only `out` shared."""
        monkeypatch.setenv("AUTOSHIELD_CACHE", str(tmp_path / machine / "cache"))
        monkeypatch.setattr(sys, "argv", [*args, "--work", str(tmp_path / machine / "work")])
        poster_attack.main()
        return capsys.readouterr().out

    run("first")
    victims = _rows(out / "victims.csv")
    by_run: dict[tuple[str, str], list[str]] = {}
    for row in victims:
        assert row["label"] == "automobile"
        by_run.setdefault((row["source"], row["attacker"]), []).append(row["index"])
    assert set(by_run) == {
        ("Identity", "naive"),
        ("Brightness:5", "naive"),
        ("Brightness:5", "posthoc"),
        ("DP-SGD sigma 0.5", "naive"),
        ("DP-SGD sigma 1", "naive"),
    }
    assert len({tuple(indices) for indices in by_run.values()}) == 1  # the same three victims, in the same order
    assert {r["cell"] for r in victims if r["source"] == "Brightness:5"} == {"Brightness:5"}
    paired = _rows(out / "paired.csv")
    assert [(r["run"].split()[0], r["against"]) for r in paired] == [
        ("Brightness:5", "Identity naive"),
        ("Brightness:5", "DP-SGD sigma 0.5 naive"),
        ("Brightness:5", "DP-SGD sigma 1 naive"),
        ("DP-SGD", "Identity naive"),
        ("DP-SGD", "Identity naive"),
    ]
    assert all(r["victims"] == "3" and float(r["p Holm"]) >= float(r["p McNemar"]) for r in paired)

    def exact(rows: list[dict[str, str]]) -> dict[tuple[str, ...], dict[str, str]]:
        """The exact-gradient rows, but the seconds attacking now (0 for rows read back)."""
        return {(r["source"], r["attacker"], r["index"]): r | {"seconds": ""} for r in rows if r["setting"] == ""}

    second = run("second")
    assert "9 rows resumed" in second  # Identity's and the cell's two attackers' rows, from the file alone
    spent = [line for line in second.splitlines() if line.endswith("s") and " recognised, " in line]
    assert len(spent) == 5 and all(line.endswith(", 0 s") for line in spent[:3])  # DP's two runs: attacked again
    assert exact(_rows(out / "victims.csv")) == exact(victims)
