"""V-JEPA encoders and predictors, their architecture records, and the checkpoint loaders."""

from vjepa_edge.models.arch import VIT_SIZES, EncoderArch, PredictorArch, VJEPAArch
from vjepa_edge.models.checkpoint import load_vjepa, read_checkpoint, save_vjepa
from vjepa_edge.models.predictor import Predictor
from vjepa_edge.models.vit import VisionTransformer
from vjepa_edge.models.vjepa import VJEPA

__all__ = [
    "VIT_SIZES",
    "VJEPA",
    "EncoderArch",
    "PredictorArch",
    "Predictor",
    "VJEPAArch",
    "VisionTransformer",
    "load_vjepa",
    "read_checkpoint",
    "save_vjepa",
]
