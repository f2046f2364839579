from __future__ import annotations

import csv
import subprocess
import sys

import pytest
from PIL import Image

from autoshield.cli import main


def run(*args: str) -> int:
    return main(list(args))


def test_help_runs_as_console_script():
    out = subprocess.run([sys.executable, "-m", "autoshield.cli", "--help"], capture_output=True, text=True, check=True)
    for command in ("data", "ops", "train", "attack"):
        assert command in out.stdout


def test_version(capsys):
    assert run("--version") == 0
    assert capsys.readouterr().out.startswith("autoshield 0.")


def test_data_and_ops_sheet(data_root, tmp_path, capsys):
    assert run("data", "--data-root", str(data_root)) == 0
    assert "300" in capsys.readouterr().out
    sheet = tmp_path / "ops.png"
    assert run("ops", "--sheet", str(sheet), "--data-root", str(data_root)) == 0
    assert "58 distinct" in capsys.readouterr().out
    with Image.open(sheet) as image:
        assert image.format == "PNG" and image.width > 600 and image.height > 400


def test_train_smoke(data_root, capsys):
    assert run("train", "--profile", "smoke", "--policy", "cat=Rotate:5", "--data-root", str(data_root)) == 0
    out = capsys.readouterr().out
    assert "Rotate:5" in out and "overall" in out
    assert "epoch 1/" in out  # no terminal, so the phases are logged: the first at once, then one a minute


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("train", "--profile", "huge"), "unknown profile 'huge'"),
        (("train", "--profile", "smoke", "--policy", "cat=Blur:3"), "unknown operation 'Blur'"),
        (("train", "--profile", "smoke", "--set", "widht=3"), "unknown profile key 'widht'"),
        (("train", "--profile", "smoke", "--policy", "missing.json"), "does not exist"),
        (("data", "--data-root", "/nonexistent/cifar"), "does not exist"),
        (("ops", "--space", "nope"), "search space 'nope' not found"),
        (("attack", "--attacker", "oracle"), "invalid choice: 'oracle'"),
        (("grid", "--attacker", "posthoc"), "invalid choice: 'posthoc'"),  # a study scores naive, adaptive or worst
        (("attack", "--labels", "cow"), "unknown label 'cow'"),
        (("attack", "--dp-sigma", "0"), "sigma must be finite and > 0"),
        (("attack", "--dp-sigma", "0.5", "--target", "trained"), "attacks the seeded untrained network"),
        (("attack", "--dp-sigma", "0.5", "--null"), "--null is not built for --dp-sigma"),
    ],
)
def test_bad_input_is_one_line(args, message, data_root, capsys):
    extra = ("--data-root", str(data_root)) if args[0] == "train" else ()
    assert run(*args, *extra) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_attack_command_writes_sheet(data_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AUTOSHIELD_CACHE", str(tmp_path / "cache"))  # a machine of its own: it trains its judge
    sheet = tmp_path / "sheet.png"
    args = (
        "attack",
        "--profile",
        "smoke",
        "--policy",
        "cat=Invert",
        "--sheet",
        str(sheet),
        "--data-root",
        str(data_root),
    )
    assert run(*args) == 0
    out = capsys.readouterr().out
    assert "reference classifier" in out and "Invert" in out and "overall" in out
    with Image.open(sheet) as image:
        assert image.format == "PNG" and image.height > 500
    assert run(*args) == 0
    assert "10 from cache" in capsys.readouterr().out


def test_attack_command_compares_the_attackers_on_the_same_victims(data_root, tmp_path, capsys):
    """Issues #15, #36: `--attacker worst` runs the naive, post-hoc, learned and adaptive attackers, pairs each
    with the naive one and draws one column per attacker."""
    sheet = tmp_path / "attackers.png"
    args = ("attack", "--profile", "smoke", "--policy", "Brightness:5", "--attacker", "worst", "--sheet", str(sheet))
    assert run(*args, "--set", "attack.iterations=20", "--data-root", str(data_root)) == 0
    out = capsys.readouterr().out
    assert "against the naive one" in out and "p McNemar" in out
    assert "adaptive attacker: kept the client's sign for " in out  # Brightness is signed: it guessed each sign
    for attacker in ("naive", "posthoc", "learned", "adaptive"):
        assert f"│ {attacker} " in out
    with Image.open(sheet) as image:  # original | transformed | four reconstructions
        assert image.width > 5 * 100


def test_attack_one_label_under_dp_noise_writes_each_victims_row(data_root, tmp_path, capsys):
    """Issue #37 item 5: one label's victims, under a policy and under DP-SGD's noise, in CSVs that pair by
    training index; the noise is drawn per victim, so it changes what the same start reconstructs."""
    base = ("attack", "--profile", "smoke", "--labels", "automobile", "--images-per-label", "3")
    base += ("--set", "attack.iterations=20", "--data-root", str(data_root), "--sheet", str(tmp_path / "s.png"))
    exact, noised = tmp_path / "exact.csv", tmp_path / "noised.csv"
    assert run(*base, "--policy", "automobile=Brightness:5", "--attacker", "worst", "--csv", str(exact)) == 0
    assert "gradient inversion of 3 images by" in capsys.readouterr().out
    assert run(*base, "--dp-sigma", "0.5", "--csv", str(noised)) == 0
    assert "3 images under DP-SGD's noise (σ 0.5, C 1)" in capsys.readouterr().out
    policy_rows = list(csv.DictReader(exact.open()))
    dp_rows = list(csv.DictReader(noised.open()))
    assert {r["attacker"] for r in policy_rows} == {"naive", "posthoc", "learned", "adaptive"}
    assert {r["label"] for r in policy_rows + dp_rows} == {"automobile"} and len(dp_rows) == 3
    assert {r["source"] for r in dp_rows} == {"sigma 0.5"} and {r["setting"] for r in dp_rows} == {"noised"}
    assert {r["cell"] for r in policy_rows} == {"Brightness:5"} and {r["setting"] for r in policy_rows} == {""}
    naive = [r for r in policy_rows if r["attacker"] == "naive"]
    assert [r["index"] for r in naive] == [r["index"] for r in dp_rows]  # the same victims, in the same order
    assert run(*base, "--csv", str(exact)) == 0  # Identity, exact gradients: the same starts without the noise
    clean = list(csv.DictReader(exact.open()))
    assert [r["psnr_original"] for r in clean] != [r["psnr_original"] for r in dp_rows]


def test_tables_fold_instead_of_cutting_at_80_columns():
    """Issue #16: a narrow terminal gets more lines, never 'epsil…'."""
    from rich.console import Console

    from autoshield.cli.common import print_rows

    narrow = Console(width=80, record=True)
    row = {
        "epsilon (RDP)": "1,955",
        "policy": "airplane=Rotate:5, automobile=Brightness:5, bird=Equalize, cat=Contrast:9",
        "comparable": "not comparable: the attack fails on this network even without noise",
    }
    print_rows("DP-SGD", [row], to=narrow)
    text = narrow.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    assert all(word in text for word in ("epsilon", "(RDP)", "1,955", "noise", "Equali"))
