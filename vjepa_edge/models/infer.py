"""Infer a V-JEPA architecture from the tensors of a checkpoint in the official key layout.

Width, depth, MLP width, patch and tubelet come from tensor shapes; the head count (which no shape records)
from the caller (`num_heads`), else from the table of published sizes; V-JEPA 1's input grid and `uniform_power`
from matching the stored 3-D sin-cos `pos_embed` against the ones each grid would give. Any tensor that does not
fit raises an `ArchitectureError` naming the key, its shape and what was expected.
"""

from __future__ import annotations

import re

import torch
from torch import Tensor

from vjepa_edge.errors import ArchitectureError, ConfigError
from vjepa_edge.models.arch import VIT_SIZES, VJEPA2_PREDICTOR_HEADS, EncoderArch, PredictorArch, size_for_width
from vjepa_edge.models.layers import sincos_3d

StateDict = dict[str, Tensor]


def _shape(t: Tensor) -> list[int]:
    return list(t.shape)


def _require(sd: StateDict, key: str, shape: list[int], part: str) -> Tensor:
    if key not in sd:
        raise ArchitectureError(f"{part}: missing tensor {key!r} (expected shape {shape})")
    if _shape(sd[key]) != shape:
        raise ArchitectureError(f"{part}: {key!r} has shape {_shape(sd[key])}, expected {shape}")
    return sd[key]


def _block_indices(sd: StateDict, prefix: str, part: str) -> int:
    found = {int(m.group(1)) for k in sd if (m := re.match(rf"^{re.escape(prefix)}\.(\d+)(\.|$)", k))}
    if not found:
        raise ArchitectureError(f"{part}: no transformer blocks ('{prefix}.N.*' keys) found")
    if found != set(range(len(found))):
        raise ArchitectureError(f"{part}: '{prefix}.N' indices {sorted(found)} are not 0..{len(found) - 1}")
    return len(found)


def _check_blocks(sd: StateDict, prefix: str, depth: int, dim: int, hidden: int, bias: bool, part: str) -> None:
    for i in range(depth):
        b = f"{prefix}.{i}."
        for name in ("norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias", "attn.proj.bias", "mlp.fc2.bias"):
            _require(sd, b + name, [dim], part)
        _require(sd, b + "attn.qkv.weight", [3 * dim, dim], part)
        if bias:
            _require(sd, b + "attn.qkv.bias", [3 * dim], part)
        _require(sd, b + "attn.proj.weight", [dim, dim], part)
        _require(sd, b + "mlp.fc1.weight", [hidden, dim], part)
        _require(sd, b + "mlp.fc1.bias", [hidden], part)
        _require(sd, b + "mlp.fc2.weight", [dim, hidden], part)


def _known_heads(width: int, key: str, shape: list[int], part: str, *, hint: str) -> int:
    """The head count of the published size of width `width`; no tensor records it."""
    found = size_for_width(width)
    if found is None:
        sizes = sorted(VIT_SIZES.items(), key=lambda item: item[1].embed_dim)
        known = ", ".join(f"{s.embed_dim} ({n})" for n, s in sizes)
        raise ArchitectureError(
            f"{part}: {key!r} has shape {shape}: width {width} fits no known architecture, and no tensor records "
            f"the head count (known widths: {known})",
            hint=hint,
        )
    return found[1].num_heads


def fitting_heads(width: int) -> list[int]:
    """Head counts that split `width` into heads of an even dim (RoPE rotates channel pairs)."""
    return [h for h in range(1, width + 1) if width % h == 0 and (width // h) % 2 == 0]


def check_heads(width: int, num_heads: int) -> int:
    """`num_heads` given by the caller, checked against the width it must split; raises ConfigError."""
    if not isinstance(num_heads, int) or isinstance(num_heads, bool) or num_heads <= 0:
        problem = "it must be a positive integer"
    elif width % num_heads:
        problem = f"{width} is not divisible by {num_heads}"
    elif (width // num_heads) % 2:
        problem = f"the head dim {width // num_heads} is odd (RoPE rotates channel pairs)"
    else:
        return num_heads
    raise ConfigError(
        f"num_heads={num_heads!r} does not fit embed_dim {width}: {problem}",
        hint=f"head counts that fit a width of {width}: {', '.join(map(str, fitting_heads(width)))}",
    )


def heads_hint(width: int) -> str:
    return (
        f"pass num_heads=N to load_vjepa (or --heads N on the command line); embed_dim {width} must be divisible "
        f"by it with an even head dim ({', '.join(map(str, fitting_heads(width)))})"
    )


def match_sincos_grid(pos_embed: Tensor, *, atol: float = 1e-4) -> tuple[tuple[int, int, int], bool] | None:
    """The square grid (T', g, g) and `uniform_power` whose 3-D sin-cos embedding equals `pos_embed` [1, N, D]."""
    n, dim = pos_embed.shape[-2], pos_embed.shape[-1]
    stored = pos_embed.reshape(n, dim).float()
    for depth in range(1, n + 1):
        if n % depth:
            continue
        g = round((n // depth) ** 0.5)
        if g * g * depth != n:
            continue
        for uniform_power in (True, False):
            if torch.allclose(sincos_3d(dim, (depth, g, g), uniform_power=uniform_power), stored, atol=atol):
                return (depth, g, g), uniform_power
    return None


def infer_encoder(sd: StateDict, *, part: str = "encoder", num_heads: int | None = None) -> tuple[EncoderArch, str]:
    """Encoder architecture from an official-layout state dict; also says where the input size came from.

    `num_heads`, when given, is used instead of the table of published sizes (needed for any other width).
    """
    key = "patch_embed.proj.weight"
    if key not in sd:
        raise ArchitectureError(f"{part}: missing tensor {key!r}: this is not a V-JEPA video encoder")
    w = sd[key]
    if w.dim() != 5 or w.shape[3] != w.shape[4]:
        raise ArchitectureError(
            f"{part}: {key!r} has shape {_shape(w)}, expected a Conv3d tubelet weight [D, C, t, p, p]"
        )
    dim, in_chans, tubelet, patch = int(w.shape[0]), int(w.shape[1]), int(w.shape[2]), int(w.shape[3])
    if num_heads is not None:
        heads = check_heads(dim, num_heads)
    else:
        heads = _known_heads(dim, key, _shape(w), part, hint=heads_hint(dim))
    _require(sd, "patch_embed.proj.bias", [dim], part)
    depth = _block_indices(sd, "blocks", part)
    fc1 = sd.get("blocks.0.mlp.fc1.weight")
    if fc1 is None or fc1.dim() != 2:
        raise ArchitectureError(f"{part}: missing tensor 'blocks.0.mlp.fc1.weight'")
    hidden = int(fc1.shape[0])
    bias = "blocks.0.attn.qkv.bias" in sd
    _check_blocks(sd, "blocks", depth, dim, hidden, bias, part)
    _require(sd, "norm.weight", [dim], part)
    _require(sd, "norm.bias", [dim], part)
    common = dict(
        embed_dim=dim,
        depth=depth,
        num_heads=heads,
        mlp_hidden=hidden,
        patch_size=patch,
        tubelet_size=tubelet,
        in_chans=in_chans,
        qkv_bias=bias,
    )
    if "pos_embed" in sd:
        pe = sd["pos_embed"]
        if pe.dim() != 3 or pe.shape[0] != 1 or pe.shape[2] != dim:
            raise ArchitectureError(f"{part}: 'pos_embed' has shape {_shape(pe)}, expected [1, N, {dim}]")
        match = match_sincos_grid(pe)
        if match is None:
            raise ArchitectureError(
                f"{part}: 'pos_embed' {_shape(pe)} is not V-JEPA's 3-D sin-cos embedding of any square grid"
            )
        (t, g, _), uniform_power = match
        arch = EncoderArch(
            **common, pos="sincos", uniform_power=uniform_power, num_frames=t * tubelet, img_size=g * patch
        )
        return arch, "the stored pos_embed"
    size = size_for_width(dim)
    if size is None:  # a width of no published size (its head count was given): the record's defaults
        arch = EncoderArch(**common, pos="rope")
        return arch, f"the defaults, {arch.num_frames} frames at {arch.img_size} px (RoPE files do not record them)"
    arch = EncoderArch(**common, pos="rope", num_frames=size[1].frames, img_size=size[1].size)
    return arch, f"the {size[0]} default (RoPE files do not record their input size)"


def infer_predictor(sd: StateDict, enc: EncoderArch, *, part: str = "predictor") -> PredictorArch:
    """Predictor architecture from an official-layout state dict, given the encoder it predicts for."""
    key = "predictor_embed.weight"
    if key not in sd:
        raise ArchitectureError(f"{part}: missing tensor {key!r}")
    w = sd[key]
    if w.dim() != 2 or w.shape[1] != enc.embed_dim:
        raise ArchitectureError(
            f"{part}: {key!r} has shape {_shape(w)}, expected [P, {enc.embed_dim}] for a {enc.embed_dim}-wide encoder"
        )
    pdim = int(w.shape[0])
    _require(sd, "predictor_embed.bias", [pdim], part)
    n_tokens = _block_indices(sd, "mask_tokens", part) if any(k.startswith("mask_tokens.") for k in sd) else 0
    for i in range(n_tokens):
        _require(sd, f"mask_tokens.{i}", [1, 1, pdim], part)
    if n_tokens == 0:
        raise ArchitectureError(
            f"{part}: no mask tokens ('mask_tokens.N' keys): predictors without mask tokens "
            "(V-JEPA 1's unused diffusion variant) are not supported"
        )
    depth = _block_indices(sd, "predictor_blocks", part)
    fc1 = sd.get("predictor_blocks.0.mlp.fc1.weight")
    hidden = int(fc1.shape[0]) if fc1 is not None else 0
    bias = "predictor_blocks.0.attn.qkv.bias" in sd
    _check_blocks(sd, "predictor_blocks", depth, pdim, hidden, bias, part)
    _require(sd, "predictor_norm.weight", [pdim], part)
    _require(sd, "predictor_proj.weight", [enc.embed_dim, pdim], part)
    if enc.pos == "sincos":
        heads = enc.num_heads  # V-JEPA 1 keeps the encoder's head count
        pe = _require(sd, "predictor_pos_embed", [1, enc.num_patches, pdim], part)
        match = match_sincos_grid(pe)
        if match is None or match[0] != enc.grid:
            raise ArchitectureError(
                f"{part}: 'predictor_pos_embed' {_shape(pe)} is not the sin-cos embedding of "
                f"the encoder's grid {enc.grid}"
            )
        uniform_power = match[1]
    else:
        hint = "vjepa-edge reads the published V-JEPA predictor sizes; a checkpoint saved by vjepa-edge records its own"
        heads = VJEPA2_PREDICTOR_HEADS.get(pdim) or _known_heads(pdim, key, _shape(w), part, hint=hint)
        uniform_power = True
    return PredictorArch(
        embed_dim=enc.embed_dim,
        pred_dim=pdim,
        depth=depth,
        num_heads=heads,
        mlp_hidden=hidden,
        num_mask_tokens=n_tokens,
        pos=enc.pos,
        uniform_power=uniform_power,
        sort_tokens=enc.pos == "rope",
        qkv_bias=bias,
    )
