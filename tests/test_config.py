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
        (("width=0",), "width must be from 1 to 256, got 0"),
        (("width=100000",), "width must be from 1 to 256, got 100000"),
        (("attack.iterations=1000000000000",), "attack.iterations must be from 1 to 100,000, got 1000000000000"),
        (("train.lr=nan",), "train.lr must be from 1e-08 to 1,000, got nan"),
        (("reference.epochs=inf",), "reference.epochs must be int"),
        (("dp_train.batch_size=-1",), "dp_train.batch_size must be from 1 to 65,536"),
        (("seed=-1",), "seed must be from 0 to 4,294,967,295"),
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
