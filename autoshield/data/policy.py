"""Per-label augmentation policies: one (operation, magnitude) cell per CIFAR-10 label.

Cells of magnitude-free operations are canonicalised to magnitude 0, so
`Equalize:3` and `Equalize:7` are the same cell and never computed twice.
A policy is applied to whole uint8 batches (`Policy.apply`, `transform_split`)
and, for other people's pipelines, as a `transforms.v2` transform.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torchvision.transforms.v2 import Transform
from torchvision.transforms.v2 import functional as F

from autoshield.core.errors import AutoshieldError
from autoshield.core.files import read_text_file
from autoshield.data.cifar import CLASSES, Split
from autoshield.data.ops import OPS, apply_op, check_magnitude, get_op, random_signs


@dataclass(frozen=True, order=True)
class Cell:
    """One (operation, magnitude); build with `Cell.of` to get the canonical form."""

    op: str
    magnitude: int = 0

    @classmethod
    def of(cls, op: str, magnitude: int = 0) -> Cell:
        spec = get_op(op)
        check_magnitude(magnitude)
        return cls(op, 0 if spec.magnitude_free else magnitude)

    @classmethod
    def parse(cls, text: str) -> Cell:
        """'Rotate:5' or 'Equalize' (magnitude-free)."""
        op, sep, magnitude = text.strip().partition(":")
        if not sep:
            if op in OPS and not OPS[op].magnitude_free:
                raise AutoshieldError(f"operation {op!r} needs a magnitude, e.g. {op}:5")
            return cls.of(op)
        try:
            value = int(magnitude)
        except ValueError:
            raise AutoshieldError(f"magnitude in {text.strip()!r} is not an integer") from None
        return cls.of(op, value)

    @property
    def signed(self) -> bool:
        """The client draws a secret sign per image: the value differs under the two signs."""
        return get_op(self.op).signed and self.magnitude > 0

    def __str__(self) -> str:
        return self.op if get_op(self.op).magnitude_free else f"{self.op}:{self.magnitude}"


IDENTITY = Cell("Identity")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are unique: `{"cat": ..., "cat": ...}` is refused as the inline form is, instead of
    the last entry silently winning."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise AutoshieldError(f"label {key!r} appears twice in the policy")
        seen[key] = value
    return seen


@dataclass(frozen=True)
class Policy:
    """Cell per label, in `CLASSES` order."""

    cells: tuple[Cell, ...]

    def __post_init__(self) -> None:
        if len(self.cells) != len(CLASSES):
            raise AutoshieldError(f"a policy needs {len(CLASSES)} cells, got {len(self.cells)}")

    @classmethod
    def uniform(cls, cell: Cell) -> Policy:
        return cls((cell,) * len(CLASSES))

    @classmethod
    def identity(cls) -> Policy:
        return cls.uniform(IDENTITY)

    @classmethod
    def from_mapping(cls, mapping: dict[str, Any]) -> Policy:
        cells = [IDENTITY] * len(CLASSES)
        for label, value in mapping.items():
            if label not in CLASSES:
                raise AutoshieldError(f"unknown label {label!r}; labels are {', '.join(CLASSES)}")
            if isinstance(value, str):
                cells[CLASSES.index(label)] = Cell.parse(value)
            elif isinstance(value, dict) and set(value) <= {"op", "magnitude"} and "op" in value:
                cells[CLASSES.index(label)] = Cell.of(value["op"], value.get("magnitude", 0))
            else:
                raise AutoshieldError(f"policy entry for {label!r} must be 'Op:m' or {{op, magnitude}}, got {value!r}")
        return cls(tuple(cells))

    @classmethod
    def parse(cls, text: str) -> Policy:
        """'airplane=Rotate:5,automobile=Brightness:5' (unlisted labels: Identity), or one cell for all."""
        text = text.strip()
        if not text or text.lower() == "identity":
            return cls.identity()
        if "=" not in text:
            return cls.uniform(Cell.parse(text))
        mapping: dict[str, str] = {}
        for item in text.split(","):
            label, sep, cell = item.partition("=")
            label = label.strip()
            if not sep or not label or not cell.strip():
                raise AutoshieldError(f"malformed policy item {item.strip()!r}; expected label=Op:magnitude")
            if label in mapping:
                raise AutoshieldError(f"label {label!r} appears twice in the policy")
            mapping[label] = cell
        return cls.from_mapping(mapping)

    @classmethod
    def from_json(cls, text: str) -> Policy:
        try:
            data = json.loads(text, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as error:
            raise AutoshieldError(f"policy JSON is malformed: {error}") from None
        if isinstance(data, dict) and isinstance(data.get("policy"), dict):
            data = data["policy"]
        if not isinstance(data, dict):
            raise AutoshieldError("policy JSON must be an object mapping labels to cells")
        return cls.from_mapping(data)

    def to_json(self) -> str:
        return json.dumps({"policy": self.as_mapping()}, indent=2)

    def as_mapping(self) -> dict[str, str]:
        return {label: str(cell) for label, cell in zip(CLASSES, self.cells, strict=True)}

    def __str__(self) -> str:
        """One cell, or the labels that are not Identity, comma and space separated so that a page can wrap it."""
        if len(set(self.cells)) == 1:
            return str(self.cells[0])
        return ", ".join(
            f"{label}={cell}"
            for label, cell in self.as_mapping().items()
            if self.cells[CLASSES.index(label)] != IDENTITY
        )

    def apply(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        signs: torch.Tensor,
        using: Callable[..., torch.Tensor] = apply_op,
    ) -> torch.Tensor:
        """Transform a uint8 batch; labels sharing a cell go through one vectorised call per sign.

        `using` swaps the per-cell function, `(images, op, magnitude, signs=) -> images`: the differentiable twins
        (`data.soft_ops.soft_apply`) and the inverses (`data.inverse.invert_op`) walk the policy the same way.
        """
        out = images.clone()
        for cell in set(self.cells):
            if cell == IDENTITY:
                continue
            wanted = torch.tensor([i for i, c in enumerate(self.cells) if c == cell], device=labels.device)
            members = torch.isin(labels, wanted)
            if members.any():
                out[members] = using(images[members], cell.op, cell.magnitude, signs=signs[members])
        return out


def split_signs(split: Split, *, seed: int) -> torch.Tensor:
    """One seeded ±1 per image, indexed by dataset position, so an image's sign does not depend on its company."""
    return random_signs(int(split.indices.max()) + 1, generator=torch.Generator().manual_seed(seed))[split.indices]


def transform_split(split: Split, policy: Policy, *, seed: int) -> Split:
    """The policy applied to a split, with each image's seeded sign (`split_signs`)."""
    signs = split_signs(split, seed=seed)
    return Split(policy.apply(split.images, split.labels, signs=signs), split.labels, split.indices)


def load_policy_file(path: Path | str) -> Policy:
    try:
        return Policy.from_json(read_text_file(path, what="policy file"))
    except AutoshieldError as error:
        message = str(error)
        raise AutoshieldError(message if str(path) in message else f"policy file {str(path)!r}: {message}") from None


def policy_from_argument(text: str) -> Policy:
    """A CLI `--policy`: a JSON file path (`.json` in any case) or an inline policy string."""
    if text.lower().endswith(".json"):
        return load_policy_file(text)
    return Policy.parse(text)


class PolicyTransform(Transform):
    """A `transforms.v2` transform applying a per-label policy to `(image, label)` samples.

    Accepts uint8 tensors, `tv_tensors.Image` or PIL images and returns the same kind;
    signs of signed operations come from torch's global RNG like every v2 transform.
    """

    def __init__(self, policy: Policy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, *inputs: Any) -> Any:
        sample = inputs if len(inputs) > 1 else inputs[0]
        if not (isinstance(sample, (tuple, list)) and len(sample) == 2):
            raise AutoshieldError("PolicyTransform expects an (image, label) sample")
        image, label = sample
        label = int(label)
        was_pil = not isinstance(image, torch.Tensor)
        tensor = F.pil_to_tensor(image) if was_pil else image
        batch = self.policy.apply(
            tensor.unsqueeze(0),
            torch.tensor([label]),
            signs=random_signs(1, generator=torch.default_generator),
        )
        result = batch[0]
        if was_pil:
            result = F.to_pil_image(result)
        elif type(image) is not torch.Tensor:
            result = result.as_subclass(type(image))
        return result, sample[1]
