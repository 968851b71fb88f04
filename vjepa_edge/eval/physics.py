"""Frozen probes on the embedded physics labels: how much of the physics an encoder's features hold.

`physics_probe({"teacher": enc, "random init": random_init_like(enc)}, ...)` extracts every encoder's tokens
on the same held-out physics clips (probe training clips from the `val` stream, test clips from the `test`
stream; neither overlaps the pretraining stream) and trains the same probe on each, so the accuracies
compare encoders and nothing else. The clips are rendered once for all encoders; an encoder named in `cache`
(a teacher, distilled into one student after another; a random-init student, the same for every run of a recipe)
has its tokens kept under the user cache, keyed by its weights, the clips, the precision and the stored dtype, so
it is encoded once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vjepa_edge.data.config import ClipSpec
from vjepa_edge.data.sources import PhysicsDataset
from vjepa_edge.eval.probe import Features, ProbeConfig, ProbeResult, extract_features, probe
from vjepa_edge.runinfo import cache_file, save_safetensors

log = logging.getLogger(__name__)

# Motion labels: the event (7 classes) and where the main object heads (4). `num_objects` is available too,
# but at 64 px no encoder tested reads it above chance.
DEFAULT_LABELS = ("event", "direction")


def probe_clips(spec: ClipSpec, *, train_clips: int, test_clips: int, seed: int) -> tuple[Any, Any]:
    """The labelled probe clips (train from the `val` stream, test from the `test` stream), rendered once."""
    train_set = PhysicsDataset(spec, length=train_clips, seed=seed, split="val").render()
    test_set = PhysicsDataset(spec, length=test_clips, seed=seed, split="test").render()
    return train_set, test_set


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
    cache: dict[str, str] | None = None,
    test_features: dict[str, Features] | None = None,
) -> dict[str, dict[str, ProbeResult]]:
    """Probe accuracy per encoder and label, trained on `train_clips` and tested on `test_clips` clips.
    `cache` maps encoder names to a digest of their weights: their tokens are read from, or kept in, the cache.
    `test_features`, when given, receives every encoder's test tokens (one encoder's train tokens are held at a
    time)."""
    train_set, test_set = probe_clips(spec, train_clips=train_clips, test_clips=test_clips, seed=seed)
    results: dict[str, dict[str, ProbeResult]] = {}
    for name, encoder in encoders.items():
        kw = dict(autocast_dtype=autocast_dtype, device=device, progress=progress)
        weights = (cache or {}).get(name)
        train = cached_features(encoder, train_set, weights, **kw)
        test = cached_features(encoder, test_set, weights, **kw)
        results[name] = probe(train, test, labels, config)
        if test_features is not None:
            test_features[name] = test
    return results


def cached_features(encoder: nn.Module, dataset: PhysicsDataset, weights: str | None, **kw: Any) -> Features:
    """`extract_features`, through the probe-feature cache when `weights` (a digest of the encoder) is given."""
    if weights is None:
        return extract_features(encoder, dataset, **kw)
    key = {
        "weights": weights,
        "clips": dataset.render_key().to_dict(),
        "count": len(dataset),
        "amp": str(kw.get("autocast_dtype")),
    }
    if kw.get("dtype", torch.float16) != torch.float16:  # tokens kept in another dtype than extract_features' default
        key["dtype"] = str(kw["dtype"])
    path = cache_file("probe-features", key)
    if path.is_file():
        try:
            features = _load(path)
            if kw.get("progress") is not None:
                kw["progress"](advance=len(features))
            return features
        except Exception as e:  # a damaged file is recomputed, never trusted
            log.warning("probe-feature cache %s is unreadable (%s); extracting again", path, e)
    features = extract_features(encoder, dataset, **kw)
    _save(features, path)
    return features


def _save(features: Features, path: Path) -> None:
    tensors = {"tokens": features.tokens.contiguous(), **{f"label.{k}": v for k, v in features.labels.items()}}
    save_safetensors(tensors, path, {"grid": json.dumps(features.grid)})


def _load(path: Path) -> Features:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        grid = json.loads(f.metadata()["grid"])
        tokens = f.get_tensor("tokens")
        labels = {k.removeprefix("label."): f.get_tensor(k) for k in f.keys() if k.startswith("label.")}
    return Features(tokens=tokens, labels=labels, grid=tuple(grid) if grid else None)
