from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

from autoshield.core.errors import AutoshieldError
from autoshield.data.ops import apply_op, random_signs
from autoshield.data.policy import Cell, Policy, PolicyTransform
from autoshield.data.spaces import load_search_space

from .conftest import synthetic_images


def test_parse_string_fills_identity_and_canonicalises():
    policy = Policy.parse("airplane=Rotate:5, automobile=Brightness:5,bird=Equalize:7")
    assert policy.cells[0] == Cell("Rotate", 5)
    assert policy.cells[1] == Cell("Brightness", 5)
    assert policy.cells[2] == Cell("Equalize", 0)
    assert all(c == Cell("Identity") for c in policy.cells[3:])
    assert Policy.parse(str(policy)) == policy
    assert str(policy) == "airplane=Rotate:5, automobile=Brightness:5, bird=Equalize"  # wraps on a trial page


def test_json_round_trip():
    policy = Policy.parse("cat=Solarize:9,truck=ShearX:3")
    assert Policy.from_json(policy.to_json()) == policy
    assert Policy.from_json(json.dumps({"cat": {"op": "Solarize", "magnitude": 9}, "truck": "ShearX:3"})) == policy


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("airplane=Blur:3", "unknown operation 'Blur'"),
        ("airplane=Rotate:12", "magnitude must be an integer from 0 to 10, got 12"),
        ("airplane=Rotate:x", "'Rotate:x' is not an integer"),
        ("zebra=Rotate:3", "unknown label 'zebra'"),
        ("airplane=Rotate", "needs a magnitude"),
        ("airplane Rotate:3,cat=Equalize", "malformed policy item"),
        ("airplane=Rotate:3,airplane=Equalize", "appears twice"),
    ],
)
def test_bad_policy_strings(text, message):
    with pytest.raises(AutoshieldError, match=message):
        Policy.parse(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [("{not json", "malformed"), ("[1, 2]", "must be an object"), ('{"cat": 5}', "must be 'Op:m'")],
)
def test_bad_policy_json(text, message):
    with pytest.raises(AutoshieldError, match=message):
        Policy.from_json(text)


def test_apply_groups_equal_per_label_application():
    images, labels = synthetic_images(3, seed=1)
    policy = Policy.parse("airplane=Rotate:9,automobile=Rotate:9,bird=Solarize:5,cat=Contrast:7")
    signs = random_signs(len(images), generator=torch.Generator().manual_seed(2))
    out = policy.apply(images, labels, signs=signs)
    for i in range(len(images)):
        cell = policy.cells[int(labels[i])]
        expected = apply_op(images[i : i + 1], cell.op, cell.magnitude, signs=signs[i : i + 1])
        assert torch.equal(out[i : i + 1], expected)


def test_transform_wrapper_on_tensor_tv_tensor_and_pil():
    images, _ = synthetic_images(1, seed=0)
    transform = PolicyTransform(Policy.parse("bird=Solarize:9"))
    image = images[2]
    out, label = transform(image, 2)
    assert label == 2 and torch.equal(out, apply_op(image[None], "Solarize", 9)[0])
    out_tv, _ = transform((tv_tensors.Image(image), 2))
    assert isinstance(out_tv, tv_tensors.Image) and torch.equal(out_tv, out)
    pil = Image.fromarray(image.permute(1, 2, 0).numpy())
    out_pil, _ = transform(pil, 2)
    assert isinstance(out_pil, Image.Image)
    assert torch.equal(torch.from_numpy(__import__("numpy").asarray(out_pil)).permute(2, 0, 1), out)
    untouched, _ = transform(image, 3)
    assert torch.equal(untouched, image)


def test_search_space_validation(tmp_path):
    space = tmp_path / "bad.toml"
    space.write_text('ops = ["Rotate", "Blur"]\nmagnitudes = [1]\n')
    with pytest.raises(AutoshieldError, match="unknown operation 'Blur'"):
        load_search_space(space)
    space.write_text('ops = ["Rotate"]\nmagnitudes = [1, 12]\n')
    with pytest.raises(AutoshieldError, match="got 12"):
        load_search_space(space)
    space.write_text("ops = [\n")
    with pytest.raises(AutoshieldError, match="not valid TOML"):
        load_search_space(space)
    with pytest.raises(AutoshieldError, match="not found"):
        load_search_space("nope")
    space.write_text('ops = ["Rotate", "Equalize"]\nmagnitudes = [3, 1]\n')
    assert [str(c) for c in load_search_space(space).cells()] == ["Rotate:1", "Rotate:3", "Equalize"]


EXAMPLE_SPACES = sorted((Path(__file__).parents[1] / "search_spaces").glob("*.toml"))


@pytest.mark.parametrize("path", EXAMPLE_SPACES, ids=lambda p: p.name)
def test_shipped_example_spaces_load(path: Path):
    """The checkout's example spaces are run by hand on real data (benchmarks/), where a typo would cost hours."""
    assert load_search_space(path).cells()
