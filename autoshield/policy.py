"""Per-label augmentation policies and the search spaces they are drawn from.

A policy maps each CIFAR-10 label to one (operation, magnitude) cell. Cells of
magnitude-free operations are canonicalised to magnitude 0, so `Equalize:3`
and `Equalize:7` are the same cell and never computed twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib
import torch
from torchvision.transforms.v2 import Transform
from torchvision.transforms.v2 import functional as F

from autoshield.data import CLASSES
from autoshield.errors import AutoshieldError
from autoshield.ops import OPS, apply_op, check_magnitude, get_op, random_signs

SEARCH_SPACE_DIR = Path(__file__).resolve().parent.parent / "search_spaces"


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

    def __str__(self) -> str:
        return self.op if get_op(self.op).magnitude_free else f"{self.op}:{self.magnitude}"


IDENTITY = Cell("Identity")


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
            data = json.loads(text)
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
        if len(set(self.cells)) == 1:
            return str(self.cells[0])
        return ",".join(
            f"{label}={cell}"
            for label, cell in self.as_mapping().items()
            if self.cells[CLASSES.index(label)] != IDENTITY
        )

    def apply(self, images: torch.Tensor, labels: torch.Tensor, *, signs: torch.Tensor) -> torch.Tensor:
        """Transform a uint8 batch; labels sharing a cell go through one vectorised call per sign."""
        out = images.clone()
        for cell in set(self.cells):
            if cell == IDENTITY:
                continue
            wanted = torch.tensor([i for i, c in enumerate(self.cells) if c == cell], device=labels.device)
            members = torch.isin(labels, wanted)
            if members.any():
                out[members] = apply_op(images[members], cell.op, cell.magnitude, signs=signs[members])
        return out


def load_policy_file(path: Path | str) -> Policy:
    try:
        return Policy.from_json(Path(path).read_text())
    except FileNotFoundError:
        raise AutoshieldError(f"policy file {str(path)!r} does not exist") from None


def policy_from_argument(text: str) -> Policy:
    """A CLI `--policy`: a JSON file path or an inline policy string."""
    if text.endswith(".json"):
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


@dataclass(frozen=True)
class SearchSpace:
    """Operations and magnitudes a grid or search draws cells from."""

    name: str
    ops: tuple[str, ...]
    magnitudes: tuple[int, ...]

    def cells(self) -> list[Cell]:
        """The distinct cells: magnitude-free operations appear once."""
        out: list[Cell] = []
        for op in self.ops:
            candidates = [Cell.of(op)] if get_op(op).magnitude_free else [Cell.of(op, m) for m in self.magnitudes]
            out.extend(c for c in candidates if c not in out)
        return out


def load_search_space(name_or_path: str | Path) -> SearchSpace:
    """A bundled space by name (`randaugment14`, `poster14`) or a TOML file, validated."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = SEARCH_SPACE_DIR / f"{name_or_path}.toml"
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        bundled = ", ".join(sorted(p.stem for p in SEARCH_SPACE_DIR.glob("*.toml")))
        raise AutoshieldError(f"search space {str(name_or_path)!r} not found (bundled: {bundled})") from None
    except tomllib.TOMLDecodeError as error:
        raise AutoshieldError(f"search space {path} is not valid TOML: {error}") from None
    ops, magnitudes = data.get("ops"), data.get("magnitudes")
    if not isinstance(ops, list) or not ops or not all(isinstance(o, str) for o in ops):
        raise AutoshieldError(f"search space {path}: 'ops' must be a non-empty list of operation names")
    if len(set(ops)) != len(ops):
        raise AutoshieldError(f"search space {path}: 'ops' lists an operation twice")
    for op in ops:
        if op not in OPS:
            raise AutoshieldError(f"search space {path}: unknown operation {op!r}; known: {', '.join(OPS)}")
    if not isinstance(magnitudes, list) or not magnitudes:
        raise AutoshieldError(f"search space {path}: 'magnitudes' must be a non-empty list of integers 0-10")
    for magnitude in magnitudes:
        try:
            check_magnitude(magnitude)
        except AutoshieldError as error:
            raise AutoshieldError(f"search space {path}: {error}") from None
    return SearchSpace(str(data.get("name", path.stem)), tuple(ops), tuple(sorted(set(magnitudes))))
