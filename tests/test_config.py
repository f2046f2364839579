from __future__ import annotations

import pytest

from autoshield.core.config import load_profile
from autoshield.core.errors import AutoshieldError


def test_presets_and_overrides(tmp_path):
    assert load_profile("paper").width == 64
    toml = tmp_path / "p.toml"
    toml.write_text("width = 32\n[attack]\niterations = 300\ntv_weight = 1\n")
    profile = load_profile("quick", toml_path=toml, overrides=("attack.iterations=500", "train_per_class=none"))
    assert (profile.width, profile.attack.iterations, profile.attack.tv_weight) == (32, 500, 1.0)
    assert profile.train_per_class is None
    assert profile.fingerprint() != load_profile("quick").fingerprint()
    assert load_profile("quick", overrides=("device='cpu'",)).fingerprint() == load_profile("quick").fingerprint()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("widht=3",), "unknown profile key 'widht'"),
        (("attack.foo=1",), "unknown profile key 'attack.foo'"),
        (("width=abc",), "width must be int"),
        (("width=0",), "width must be >= 1"),
        (("train.schedule='step'",), "train.schedule must be one of"),
        (("attack=3",), "is a section"),
        (("novalue",), "expects key=value"),
        (("images_per_label=101",), "must fit the victim pool"),
    ],
)
def test_bad_overrides(overrides, message):
    with pytest.raises(AutoshieldError, match=message):
        load_profile("quick", overrides=overrides)


def test_unknown_profile_and_bad_file(tmp_path):
    with pytest.raises(AutoshieldError, match="unknown profile 'huge'"):
        load_profile("huge")
    bad = tmp_path / "bad.toml"
    bad.write_text("width = [")
    with pytest.raises(AutoshieldError, match="not valid TOML"):
        load_profile("quick", toml_path=bad)
