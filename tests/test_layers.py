"""The architecture holds: layers import only downwards, modules stay small, importing changes no global state."""

from __future__ import annotations

import ast

from tools.import_graph import LAYERS, ROOT, edges, layer, modules

MAX_LINES = 400
# Calls that change process-wide state: the CLI entry point or the call site makes them, never an import.
GLOBAL_SETTERS = {"use", "set_verbosity", "filterwarnings", "simplefilter", "set_num_threads", "manual_seed"}


def test_every_module_sits_in_a_layer():
    stray = [name for name, _ in modules() if name != "autoshield" and layer(name) is None]
    assert stray == []


def test_no_layer_imports_a_higher_one():
    upward = [
        f"{a} -> {b}"
        for a, b in sorted(edges())
        if layer(a) and layer(b) and LAYERS.index(layer(b)) > LAYERS.index(layer(a))
    ]
    assert upward == []


def test_the_check_sees_an_upward_import(tmp_path):
    """The layering test above must be able to fail: a planted upward import is found."""
    package = tmp_path / "autoshield"
    for name in ("core", "study"):
        (package / name).mkdir(parents=True)
        (package / name / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "study" / "jobs.py").write_text("X = 1\n")
    (package / "core" / "files.py").write_text("def f():\n    from autoshield.study.jobs import X\n    return X\n")
    assert ("autoshield.core.files", "autoshield.study.jobs") in edges(package)


def test_no_module_over_400_lines():
    long = {name: n for name, path in modules() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_importing_sets_no_global_state():
    """No module-level statement calls matplotlib.use, optuna's verbosity, warning filters and the like."""
    offenders = []
    for name, path in modules(ROOT):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue  # runs when called, not on import
            for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
                function = call.func
                called = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
                if called in GLOBAL_SETTERS:
                    offenders.append(f"{name}: {called}")
    assert offenders == []
