from __future__ import annotations

import pytest
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import RandAugment

from autoshield.core.errors import AutoshieldError
from autoshield.data.ops import OPS, apply_op, op_value, random_signs
from autoshield.data.spaces import load_search_space

from .conftest import synthetic_images

RANDAUGMENT = RandAugment()


def _torchvision(images: torch.Tensor, op: str, value: float) -> torch.Tensor:
    return RANDAUGMENT._apply_image_or_video_transform(images, op, value, InterpolationMode.NEAREST, {})


def test_values_match_torchvision_randaugment_table():
    for name, op in OPS.items():
        if name == "Invert":
            continue
        table = RandAugment._AUGMENTATION_SPACE[name][0](31, 32, 32)
        for m in range(11):
            expected = None if table is None else float(table[3 * m])
            assert op_value(name, m) == expected, (name, m)
        assert RandAugment._AUGMENTATION_SPACE[name][1] == op.signed


def test_documented_examples():
    assert op_value("Rotate", 5) == pytest.approx(15.0)
    assert op_value("Posterize", 5) == 6
    assert op_value("Brightness", 5) == pytest.approx(0.45)
    assert op_value("TranslateX", 5) == pytest.approx(150 / 331 * 32 / 2)
    assert op_value("Solarize", 9) == pytest.approx(0.1)


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("magnitude", [1, 5, 9])
def test_each_op_equals_torchvision_output(name: str, magnitude: int):
    images, _ = synthetic_images(2, seed=3)
    value = op_value(name, magnitude) or 0.0
    signs = torch.ones(len(images), dtype=torch.int64)
    assert torch.equal(apply_op(images, name, magnitude, signs=signs), _torchvision(images, name, value))
    if OPS[name].signed:
        assert torch.equal(apply_op(images, name, magnitude, signs=-signs), _torchvision(images, name, -value))


@pytest.mark.parametrize("name", sorted(OPS))
def test_batched_equals_per_image(name: str):
    images, _ = synthetic_images(3, seed=4)
    signs = random_signs(len(images), generator=torch.Generator().manual_seed(0))
    batched = apply_op(images, name, 7, signs=signs)
    for i in range(len(images)):
        single = apply_op(images[i : i + 1], name, 7, signs=signs[i : i + 1])
        assert torch.equal(batched[i : i + 1], single), (name, i)


def test_strong_ops_change_images_and_identity_does_not():
    images, _ = synthetic_images(1, seed=5)
    assert torch.equal(apply_op(images, "Identity", 9), images)
    for name in ("Rotate", "Solarize", "Posterize", "Invert", "TranslateX"):
        assert not torch.equal(apply_op(images, name, 9), images), name


def test_58_distinct_cells():
    for space in ("randaugment14", "poster14"):
        cells = load_search_space(space).cells()
        assert len(cells) == 58 and len(set(cells)) == 58


@pytest.mark.parametrize(
    ("name", "magnitude", "message"),
    [("Blur", 3, "unknown operation 'Blur'"), ("Rotate", 11, "magnitude"), ("Rotate", -1, "magnitude")],
)
def test_bad_op_or_magnitude(name, magnitude, message):
    with pytest.raises(AutoshieldError, match=message):
        apply_op(torch.zeros(1, 3, 32, 32, dtype=torch.uint8), name, magnitude)


def test_rejects_float_images():
    with pytest.raises(AutoshieldError, match="uint8"):
        apply_op(torch.zeros(1, 3, 32, 32), "Rotate", 3)
