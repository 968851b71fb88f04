"""Which layers int8 hurts most: the SQNR of each layer's output when that layer alone is quantized.

For every Linear and Conv layer of a student, on the calibration clips: the layer's fp32 output against its output
with int8 weights (symmetric, per output channel, as every scheme here quantizes weights) and int8 inputs
(per-tensor affine over the calibration range, as a static scheme quantizes activations). One forward pass per
batch measures every layer at once (forward hooks), so the table costs a few fp32 forwards, not a quantization per
layer. SQNR = 10 log10(|y|^2 / |y - y_q|^2) in dB: higher is better; 8-bit keeps about 35-45 dB on a well-scaled
layer. `--keep-float N` keeps the N layers of lowest SQNR in float.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

QUANTIZED = (nn.Linear, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True, kw_only=True, slots=True)
class LayerSensitivity:
    name: str
    kind: str
    params: int
    sqnr_db: float

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "kind": self.kind, "params": self.params, "sqnr_db": self.sqnr_db}


def quantize_weight(w: Tensor) -> Tensor:
    """int8 symmetric per-output-channel rounding of a weight, returned dequantized (fp32)."""
    flat = w.flatten(1)
    scale = flat.abs().amax(dim=1).clamp_min(1e-12) / 127.0
    q = torch.clamp(torch.round(flat / scale[:, None]), -127, 127)
    return (q * scale[:, None]).view_as(w)


def quantize_activation(x: Tensor, lo: float, hi: float) -> Tensor:
    """int8 affine per-tensor rounding of an activation over the range [lo, hi] (0 always representable)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max(hi - lo, 1e-12) / 255.0
    zero = round(-128 - lo / scale)
    return (torch.clamp(torch.round(x / scale) + zero, -128, 127) - zero) * scale


def _forward(layer: nn.Module, x: Tensor, w: Tensor) -> Tensor:
    if isinstance(layer, nn.Linear):
        return F.linear(x, w, layer.bias)
    return layer._conv_forward(x, w, layer.bias)  # type: ignore[union-attr,operator]


@torch.no_grad()
def layer_sensitivity(model: nn.Module, batches: Iterable[Tensor]) -> list[LayerSensitivity]:
    """Per-layer SQNR (dB) over `batches`, lowest (most sensitive) first. Two passes over the batches: the input
    range of every layer, then the errors at that range."""
    batches = list(batches)
    layers = {name: m for name, m in model.named_modules() if isinstance(m, QUANTIZED)}
    ranges: dict[str, list[float]] = {name: [math.inf, -math.inf] for name in layers}
    signal = dict.fromkeys(layers, 0.0)
    noise = dict.fromkeys(layers, 0.0)

    def observe(name: str):
        def hook(_: nn.Module, args: tuple[Tensor, ...]) -> None:
            r = ranges[name]
            r[0], r[1] = min(r[0], float(args[0].min())), max(r[1], float(args[0].max()))

        return hook

    def measure(name: str):
        def hook(layer: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
            x = quantize_activation(args[0].float(), *ranges[name])
            y_q = _forward(layer, x, quantize_weight(layer.weight.float()))
            signal[name] += float(out.float().pow(2).sum())
            noise[name] += float((out.float() - y_q).pow(2).sum())

        return hook

    was_training = model.training
    model.eval()
    try:
        for make in (
            lambda n: layers[n].register_forward_pre_hook(observe(n)),
            lambda n: layers[n].register_forward_hook(measure(n)),
        ):
            handles = [make(name) for name in layers]
            try:
                for x in batches:
                    model(x)
            finally:
                for h in handles:
                    h.remove()
    finally:
        model.train(was_training)
    rows = [
        LayerSensitivity(
            name=name,
            kind=type(m).__name__,
            params=sum(p.numel() for p in m.parameters()),
            sqnr_db=10 * math.log10(signal[name] / noise[name]) if noise[name] > 0 else math.inf,
        )
        for name, m in layers.items()
    ]
    return sorted(rows, key=lambda r: r.sqnr_db)


def most_sensitive(rows: list[LayerSensitivity], n: int) -> tuple[str, ...]:
    """The names of the `n` layers of lowest SQNR."""
    return tuple(r.name for r in rows[:n])
