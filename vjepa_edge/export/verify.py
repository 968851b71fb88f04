"""Verification: the artifact, run where this machine can, against the eager student on held-out clips.

The artifact's outputs are compared with the eager student of the same precision (the fp32 student for fp32
targets, the scheme's quantized program for int8 ones) and with the fp32 student: max abs error relative to the
output scale (max abs of the reference), and the token cosine (mean over tokens, as `vjepa-edge quantize` reports
it). Each precision has its tolerances; out of them, `check` raises VerificationError (the command then writes
nothing). Clips are held-out physics clips (split "test") at the student's input, rendered with the run's fps
and seed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from vjepa_edge.errors import VerificationError


@dataclass(frozen=True, kw_only=True, slots=True)
class Tolerance:
    """Largest max-abs error relative to the output scale and smallest cosine, against the same-precision
    reference; smallest cosine against the fp32 student."""

    max_rel_error: float
    min_cosine: float
    min_cosine_fp32: float


# fp32: the bound. int8: the artifact's integer kernels against the quantized program run in torch
# (a rounding step apart here and there), and the cosine against fp32. fp16 artifacts run on Apple
# devices only; their bound is for when they can be run.
TOLERANCES = {
    "fp32": Tolerance(max_rel_error=1e-4, min_cosine=0.99999, min_cosine_fp32=0.99999),
    "fp16": Tolerance(max_rel_error=1e-2, min_cosine=0.9999, min_cosine_fp32=0.9999),
    "int8": Tolerance(max_rel_error=0.1, min_cosine=0.999, min_cosine_fp32=0.995),
}


def compare(out: Tensor, ref: Tensor) -> dict[str, float]:
    """Max abs error, output scale (max abs of `ref`), their ratio, and the mean token cosine of [B, N, D]."""
    out, ref = out.float(), ref.float()
    if out.shape != ref.shape:
        raise VerificationError(f"the artifact returns {list(out.shape)}, the student {list(ref.shape)}")
    if not bool(torch.isfinite(out).all()):
        raise VerificationError("the artifact returns non-finite values")
    err = float((out - ref).abs().max())
    scale = float(ref.abs().max())
    cos = float(torch.nn.functional.cosine_similarity(out, ref, dim=-1).mean())
    return {"max_abs_error": err, "scale": scale, "max_rel_error": err / scale if scale else err, "cosine": cos}


def check(precision: str, same: dict[str, float], fp32: dict[str, float], *, what: str) -> Tolerance:
    """Raise VerificationError when the figures are out of `precision`'s tolerances."""
    tol = TOLERANCES[precision]
    bad = []
    if not same["max_rel_error"] <= tol.max_rel_error:
        bad.append(f"max abs error {same['max_rel_error']:.3g} of the output scale (limit {tol.max_rel_error:g})")
    if not same["cosine"] >= tol.min_cosine:
        bad.append(f"cosine {same['cosine']:.6f} against the {precision} student (limit {tol.min_cosine})")
    if not fp32["cosine"] >= tol.min_cosine_fp32:
        bad.append(f"cosine {fp32['cosine']:.6f} against the fp32 student (limit {tol.min_cosine_fp32})")
    if bad:
        raise VerificationError(
            f"{what} does not compute what the student computes: {'; '.join(bad)}; nothing was written",
            hint="a bug in lowering or a quantization too coarse for this student: keep sensitive layers in float "
            "(`vjepa-edge quantize --keep-float N`) or export a float target",
        )
    return tol


def held_out_clips(frames: int, size: int, *, fps: float, seed: int, count: int) -> Tensor:
    """`count` held-out physics clips [count, C, frames, size, size] (split "test", no augmentation)."""
    from vjepa_edge.data.config import ClipSpec
    from vjepa_edge.data.sources import PhysicsDataset

    spec = ClipSpec(frames=frames, size=size, fps=fps, frame_step=None)
    data = PhysicsDataset(spec, length=count, seed=seed, split="test").render()
    return torch.stack([data[i]["clip"] for i in range(count)])


def tolerance_dict(precision: str) -> dict[str, Any]:
    return asdict(TOLERANCES[precision])
