"""Imports stay lean: `import vjepa_edge` pulls in no export backend and no video or image library, and no module
of the library imports an export backend or the `teacher` app at import time (backends are imported inside their
exporters and runners; the embedded teacher is reached through its registered teacher source)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("executorch", "coremltools", "onnx", "onnxruntime", "onnxscript", "teacher", "av", "PIL", "matplotlib")
NEVER = ("executorch", "coremltools", "onnx", "onnxruntime", "onnxscript", "teacher")


def _loaded_after(code: str, roots: tuple[str, ...]) -> list[str]:
    code += f"\nprint(sorted(m for m in sys.modules if m.split('.')[0] in {roots!r}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return eval(out.strip().splitlines()[-1])  # a printed list of module names


def test_import_is_lean() -> None:
    code = (
        "import sys, vjepa_edge, vjepa_edge.models, vjepa_edge.data, vjepa_edge.cli, vjepa_edge.eval;"
        "import vjepa_edge.config, vjepa_edge.report;"
        "from vjepa_edge import load_vjepa"
    )
    assert _loaded_after(code, HEAVY) == []


def test_no_module_imports_a_backend_or_the_teacher_app() -> None:
    code = (
        "import importlib, pkgutil, sys, vjepa_edge\n"
        "mods = pkgutil.walk_packages(vjepa_edge.__path__, 'vjepa_edge.')\n"
        "names = [m.name for m in mods if not m.name.endswith('__main__')]  # __main__ runs the CLI\n"
        "assert len(names) > 40, names\n"
        "for name in names: importlib.import_module(name)"
    )
    assert _loaded_after(code, NEVER) == []
