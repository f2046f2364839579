"""Search spaces: the operations and magnitudes a grid or a search draws its cells from.

The built-in spaces ship inside the package (`autoshield/data/search_spaces/`,
read with `importlib.resources`), so an installed wheel has them too; any
other TOML file of the same format works as well (see `search_spaces/README.md`).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import tomllib

from autoshield.core.errors import AutoshieldError
from autoshield.core.files import read_text_file
from autoshield.data.ops import OPS, check_magnitude, get_op
from autoshield.data.policy import Cell

BUILT_IN = resources.files("autoshield.data") / "search_spaces"


def built_in_spaces() -> list[str]:
    """Names of the spaces that ship with autoshield."""
    return sorted(entry.name.removesuffix(".toml") for entry in BUILT_IN.iterdir() if entry.name.endswith(".toml"))


@dataclass(frozen=True)
class SearchSpace:
    """Operations and magnitudes a grid or search draws cells from, or an explicit list of cells."""

    name: str
    ops: tuple[str, ...]
    magnitudes: tuple[int, ...]
    listed: tuple[Cell, ...] = ()  # a space written as `cells = [...]`: exactly these, in this order

    def cells(self) -> list[Cell]:
        """The distinct cells: magnitude-free operations appear once."""
        if self.listed:
            return list(self.listed)
        out: list[Cell] = []
        for op in self.ops:
            candidates = [Cell.of(op)] if get_op(op).magnitude_free else [Cell.of(op, m) for m in self.magnitudes]
            out.extend(c for c in candidates if c not in out)
        return out


def load_search_space(name_or_path: str | Path) -> SearchSpace:
    """A built-in space by name (`randaugment14`, `poster14`) or a TOML file, validated."""
    path = Path(name_or_path)
    source = path if path.suffix == ".toml" else BUILT_IN / f"{name_or_path}.toml"
    if not source.exists():
        bundled = ", ".join(built_in_spaces())
        raise AutoshieldError(f"search space {str(name_or_path)!r} not found (bundled: {bundled})")
    try:
        data = tomllib.loads(read_text_file(source, what="search space"))
    except tomllib.TOMLDecodeError as error:
        raise AutoshieldError(f"search space {path} is not valid TOML: {error}") from None
    if "cells" in data:
        return _listed_space(data, path)
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


def _listed_space(data: dict, path: Path) -> SearchSpace:
    """A space of hand-picked cells (`cells = ["Identity", "Rotate:9"]`), e.g. a paired comparison's."""
    texts = data["cells"]
    if set(data) - {"name", "cells"}:
        raise AutoshieldError(f"search space {path}: give either 'cells' or 'ops' with 'magnitudes', not both")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise AutoshieldError(f'search space {path}: \'cells\' must be a non-empty list like ["Identity", "Rotate:9"]')
    try:
        cells = tuple(Cell.parse(text) for text in texts)
    except AutoshieldError as error:
        raise AutoshieldError(f"search space {path}: {error}") from None
    if len(set(cells)) != len(cells):
        raise AutoshieldError(f"search space {path}: 'cells' lists a cell twice")
    ops = tuple(dict.fromkeys(cell.op for cell in cells))
    magnitudes = tuple(sorted({cell.magnitude for cell in cells if not get_op(cell.op).magnitude_free}))
    return SearchSpace(str(data.get("name", path.stem)), ops, magnitudes, cells)
