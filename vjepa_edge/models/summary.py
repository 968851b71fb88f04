"""A plain-data description of a loaded V-JEPA model, for `vjepa-edge teacher inspect`."""

from __future__ import annotations

from typing import Any

from torch import nn

from vjepa_edge.models.arch import size_for_width
from vjepa_edge.models.checkpoint import load_vjepa
from vjepa_edge.models.vjepa import PARTS, VJEPA


def count_params(module: nn.Module | None) -> int:
    """Learned parameters (fixed sin-cos tables are buffers and not counted)."""
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def summarize(model: VJEPA) -> dict[str, Any]:
    a, e, p = model.arch, model.arch.encoder, model.arch.predictor
    named = size_for_width(e.embed_dim)
    size_name = named[0] if named and (named[1].depth, named[1].mlp_hidden) == (e.depth, e.mlp_hidden) else "custom"
    pos = "3-D RoPE" if e.pos == "rope" else f"3-D sin-cos (uniform_power={e.uniform_power})"
    dtype = str(next(model.encoder.parameters()).dtype).removeprefix("torch.")
    params = {part: count_params(getattr(model, part, None)) for part in PARTS}
    return {
        "path": model.source.path,
        "format": model.source.format,
        "version": "V-JEPA 1" if a.version == "vjepa1" else "V-JEPA 2",
        "architecture": {
            "size": size_name,
            "width": e.embed_dim,
            "depth": e.depth,
            "heads": e.num_heads,
            "head_dim": e.head_dim,
            "mlp_hidden": e.mlp_hidden,
            "position_encoding": pos,
            "tubelet": e.tubelet_size,
            "patch": e.patch_size,
            "qkv_bias": e.qkv_bias,
            "norm_eps": e.norm_eps,
        },
        "parts": {part: part in model.parts for part in PARTS},
        "parameters": params | {"total": sum(params.values())},
        "predictor": None
        if p is None
        else {
            "width": p.pred_dim,
            "depth": p.depth,
            "heads": p.num_heads,
            "mask_tokens": p.num_mask_tokens,
            "sorts_tokens": p.sort_tokens,
        },
        "input": {
            "layout": "[B, C, T, H, W] float",
            "frames": e.num_frames,
            "size": [e.img_size, e.img_size],
            "channels": e.in_chans,
            "mean": list(e.mean),
            "std": list(e.std),
            "token_grid": list(e.grid),
            "tokens": e.num_patches,
            "from": model.source.input_from,
        },
        "dtype": dtype,
        "notes": list(model.source.notes),
    }


def inspect_checkpoint(
    path: str, *, frames: int | None = None, size: int | None = None, num_heads: int | None = None
) -> dict[str, Any]:
    """Load `path` strictly and describe it (`num_heads`: see `load_vjepa`)."""
    return summarize(load_vjepa(path, frames=frames, size=size, num_heads=num_heads))
