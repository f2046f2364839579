"""The package-level import graph of autoshield, read from the source with `ast` (no import is executed).

`python tools/import_graph.py` prints, for each package (layer) of autoshield, the packages it imports;
`--modules` prints module-level edges instead; `--mermaid` prints a Mermaid graph for the README.
tests/test_layers.py uses `edges()` to enforce that no layer imports a higher one.
"""

from __future__ import annotations

import argparse
import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "autoshield"
LAYERS = ("core", "data", "learn", "dp", "privacy", "evaluation", "study", "report", "cli")


def modules(root: Path = ROOT) -> Iterator[tuple[str, Path]]:
    """(dotted name, path) of every module under `root`."""
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def imports(path: Path) -> set[str]:
    """The autoshield modules a file imports, at any depth of the file (lazy imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("autoshield")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("autoshield"):
            found |= {f"{node.module}.{alias.name}" for alias in node.names} | {node.module}
    return found


def layer(module: str) -> str | None:
    """`autoshield.<layer>...` -> layer; the package root itself has none."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def edges(root: Path = ROOT) -> set[tuple[str, str]]:
    """(importing module, imported module) pairs inside autoshield; names that are not modules are dropped."""
    known = {name for name, _ in modules(root)}
    return {(name, target) for name, path in modules(root) for target in imports(path) if target in known}


def layer_edges(root: Path = ROOT) -> set[tuple[str, str]]:
    pairs = {(layer(a), layer(b)) for a, b in edges(root)}
    return {(a, b) for a, b in pairs if a and b and a != b}


def _short(module: str) -> str:
    return module.removeprefix("autoshield.") or "autoshield"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", action="store_true", help="module-level edges")
    parser.add_argument("--mermaid", action="store_true", help="a Mermaid graph (of the layers, or with --modules)")
    parser.add_argument("--root", type=Path, default=ROOT, help="the autoshield package folder to read")
    args = parser.parse_args()
    if args.modules:
        pairs = {(_short(a), _short(b)) for a, b in edges(args.root) if a != b}
        if args.mermaid:
            print("graph BT")
        for a, b in sorted(pairs):
            print(f"  {a.replace('.', '_')} --> {b.replace('.', '_')}" if args.mermaid else f"{a} -> {b}")
        return
    pairs = layer_edges(args.root)
    if args.mermaid:
        print("graph BT")
        for a, b in sorted(pairs, key=lambda p: (LAYERS.index(p[0]), LAYERS.index(p[1]))):
            print(f"  {a} --> {b}")
        return
    for name in LAYERS:
        targets = sorted({b for a, b in pairs if a == name}, key=LAYERS.index)
        print(f"{name:<11} imports {', '.join(targets) or '-'}")


if __name__ == "__main__":
    main()
