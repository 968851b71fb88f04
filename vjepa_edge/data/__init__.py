"""Clips for every stage: the embedded physics generator, real video (PyAV), transforms and V-JEPA's masks.

PyAV is imported only when a real video is opened, so `import vjepa_edge.data` stays light.
"""

from vjepa_edge.data.config import AugmentConfig, ClipSpec
from vjepa_edge.data.loader import ClipLoader, collate_clips
from vjepa_edge.data.masks import VJEPA_MASKS, MaskCollator, MaskSpec, MultiBlock3DMasker
from vjepa_edge.data.sources import PHYSICS, PhysicsDataset, describe_source, open_source

__all__ = [
    "PHYSICS",
    "VJEPA_MASKS",
    "AugmentConfig",
    "ClipLoader",
    "ClipSpec",
    "MaskCollator",
    "MaskSpec",
    "MultiBlock3DMasker",
    "PhysicsDataset",
    "collate_clips",
    "describe_source",
    "open_source",
]
