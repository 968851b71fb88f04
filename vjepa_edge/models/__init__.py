"""V-JEPA encoders and predictors, the student registry, their architecture records, and the checkpoint loaders."""

from vjepa_edge.models.arch import VIT_SIZES, EncoderArch, PredictorArch, TimmEncoderArch, VJEPAArch
from vjepa_edge.models.checkpoint import load_vjepa, read_arch, read_checkpoint, save_vjepa
from vjepa_edge.models.inputs import InputSpec
from vjepa_edge.models.predictor import Predictor
from vjepa_edge.models.students import (
    STUDENTS,
    StudentSpec,
    TimmVideoEncoder,
    create_student,
    list_students,
    student_table,
)
from vjepa_edge.models.vit import VisionTransformer
from vjepa_edge.models.vjepa import VJEPA, student_model

__all__ = [
    "STUDENTS",
    "VIT_SIZES",
    "VJEPA",
    "EncoderArch",
    "InputSpec",
    "PredictorArch",
    "Predictor",
    "StudentSpec",
    "TimmEncoderArch",
    "TimmVideoEncoder",
    "VJEPAArch",
    "VisionTransformer",
    "create_student",
    "list_students",
    "load_vjepa",
    "read_arch",
    "read_checkpoint",
    "save_vjepa",
    "student_model",
    "student_table",
]
