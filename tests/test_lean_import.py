"""`import vjepa_edge` must not pull in the export backends (they are imported inside their exporters)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("executorch", "coremltools", "onnx", "onnxruntime", "onnxscript", "teacher", "av", "PIL")


def test_import_is_lean() -> None:
    code = (
        "import sys, vjepa_edge, vjepa_edge.models, vjepa_edge.data, vjepa_edge.cli, vjepa_edge.eval;"
        "import vjepa_edge.config;"
        "from vjepa_edge import load_vjepa;"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
