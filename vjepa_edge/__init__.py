"""vjepa-edge: distill V-JEPA video world models into small ViT students and run them on edge devices.

`import vjepa_edge` stays lean: export backends (executorch, coremltools, onnx, onnxruntime) are imported
only inside the functions that use them.
"""

from vjepa_edge.errors import VjepaEdgeError
from vjepa_edge.models import VJEPA, load_vjepa, save_vjepa

__version__ = "0.1.0"
__all__ = ["VJEPA", "VjepaEdgeError", "__version__", "load_vjepa", "save_vjepa"]
