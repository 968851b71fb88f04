"""Frozen probes on the embedded physics labels: how much of the physics an encoder's features hold.

`physics_probe({"teacher": enc, "random init": random_init_like(enc)}, ...)` extracts every encoder's tokens
on the same held-out physics clips (probe training clips from the `val` stream, test clips from the `test`
stream; neither overlaps the pretraining stream) and trains the same probe on each, so the accuracies
compare encoders and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from vjepa_edge.data.config import ClipSpec
from vjepa_edge.data.sources import PhysicsDataset
from vjepa_edge.eval.probe import ProbeConfig, ProbeResult, extract_features, probe

# Motion labels: the event (7 classes) and where the main object heads (4). `num_objects` is available too,
# but at 64 px no encoder tested reads it above chance.
DEFAULT_LABELS = ("event", "direction")


def physics_probe(
    encoders: dict[str, nn.Module],
    *,
    spec: ClipSpec,
    labels: Sequence[str] = DEFAULT_LABELS,
    train_clips: int = 1024,
    test_clips: int = 512,
    seed: int = 0,
    config: ProbeConfig | None = None,
    autocast_dtype: torch.dtype | None = None,
    device: str | torch.device = "cpu",
    progress: Callable[..., Any] | None = None,
) -> dict[str, dict[str, ProbeResult]]:
    """Probe accuracy per encoder and label, trained on `train_clips` and tested on `test_clips` clips."""
    # Rendered once (or found in the store), then read by every encoder.
    train_set = PhysicsDataset(spec, length=train_clips, seed=seed, split="val").render()
    test_set = PhysicsDataset(spec, length=test_clips, seed=seed, split="test").render()
    results: dict[str, dict[str, ProbeResult]] = {}
    for name, encoder in encoders.items():
        kw = dict(autocast_dtype=autocast_dtype, device=device, progress=progress)
        train = extract_features(encoder, train_set, **kw)
        test = extract_features(encoder, test_set, **kw)
        results[name] = probe(train, test, labels, config)
    return results
