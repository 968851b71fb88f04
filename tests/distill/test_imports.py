"""No import cycles: the distillation loop and its evaluation import in either order, and no library module
imports a module that imports it back (at module level or inside a function)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "vjepa_edge"


def _modules() -> dict[str, tuple[Path, bool]]:
    """Every module of the library: its dotted name -> (file, is a package)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if package else parts)] = (path, package)
    return found


def _imports(name: str, path: Path, package: bool, known: set[str]) -> set[str]:
    """The library modules `name` imports anywhere in its file (module level, functions, TYPE_CHECKING)."""
    here = name.split(".") if package else name.split(".")[:-1]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the package `level - 1` above this one
                base = ".".join(here[: len(here) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            targets |= {base} | {f"{base}.{a.name}" for a in node.names}  # `from pkg import module` too
    return {t for t in targets if t in known and t != name}


def test_no_module_imports_one_that_imports_it_back():
    modules = _modules()
    graph = {name: _imports(name, path, pkg, set(modules)) for name, (path, pkg) in modules.items()}
    mutual = sorted(f"{a} <-> {b}" for a in graph for b in graph[a] if a < b and a in graph[b])
    assert mutual == [], mutual


@pytest.mark.parametrize(
    "first, second",
    [
        ("vjepa_edge.distill.evaluate", "vjepa_edge.distill.train"),
        ("vjepa_edge.distill.train", "vjepa_edge.distill.evaluate"),
    ],
)
def test_evaluate_and_train_import_in_either_order(first, second):
    code = f"import {first}, {second}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
