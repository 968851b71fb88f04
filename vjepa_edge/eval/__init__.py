"""Evaluation of frozen encoders: feature extraction and attentive / linear probes (V-JEPA's protocol)."""

from vjepa_edge.eval.probe import (
    AttentiveProbe,
    AttentiveProbe4,
    Features,
    GridLinearProbe,
    LinearProbe,
    ProbeConfig,
    ProbeResult,
    extract_features,
    probe,
    random_init_like,
    train_probe,
)

__all__ = [
    "AttentiveProbe",
    "AttentiveProbe4",
    "Features",
    "GridLinearProbe",
    "LinearProbe",
    "ProbeConfig",
    "ProbeResult",
    "extract_features",
    "probe",
    "random_init_like",
    "train_probe",
]
