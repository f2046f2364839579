"""Atomic writes: a reader sees the whole file or none, and the file's mode is the user's umask's, not private."""

from __future__ import annotations

import os

import pytest

from autoshield.core.files import atomic_path


def test_an_atomic_write_takes_its_mode_from_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "out" / "victims.csv") as partial:
            assert partial.parent == tmp_path / "out" and partial.exists()  # created beside the target, empty
            partial.write_text("index,recognised\n")
    finally:
        os.umask(old)
    written = tmp_path / "out" / "victims.csv"
    assert written.read_text() == "index,recognised\n"
    assert written.stat().st_mode & 0o777 == 0o644  # mkstemp's 0600 would hide every report from the group
    assert [p.name for p in written.parent.iterdir()] == ["victims.csv"]


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "report.md"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_path(target) as partial:
        partial.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["report.md"]
