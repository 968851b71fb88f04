"""vjepa-edge: distill V-JEPA video world models into small ViT students and run them on edge devices.

`import vjepa_edge` stays lean: export backends (executorch, coremltools, onnx, onnxruntime) are imported
only inside the functions that use them.
"""

from vjepa_edge.errors import VjepaEdgeError
from vjepa_edge.models import VJEPA, InputSpec, load_vjepa, read_arch, save_vjepa
from vjepa_edge.runs import RunDir, resolve_run_or_ckpt

__version__ = "0.1.0"
__all__ = [
    "VJEPA",
    "InputSpec",
    "RunDir",
    "VjepaEdgeError",
    "__version__",
    "load_vjepa",
    "read_arch",
    "resolve_run_or_ckpt",
    "save_vjepa",
]
