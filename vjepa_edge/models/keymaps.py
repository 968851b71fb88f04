"""Named, tested key renames between checkpoint layouts and ours.

Our layout is the official V-JEPA one (`patch_embed.proj`, `blocks.N.attn.qkv`, `predictor_blocks.N`, ...)
with one change: the tubelet embedding is a Linear, so `patch_embed.proj.weight` is [D, C*t*p*p] instead of the
Conv3d's [D, C, t, p, p] (same numbers, flattened in the Conv3d's own order).
"""

from __future__ import annotations

import re

import torch
from torch import Tensor

from vjepa_edge.errors import ArchitectureError

StateDict = dict[str, Tensor]

_WRAPPER_PREFIXES = ("module.", "backbone.", "_orig_mod.")


def strip_wrapper_prefixes(sd: StateDict) -> StateDict:
    """Drop the DDP (`module.`), MultiMaskWrapper (`backbone.`) and torch.compile (`_orig_mod.`) prefixes."""
    out: StateDict = {}
    for key, value in sd.items():
        k = key
        while k.startswith(_WRAPPER_PREFIXES):
            k = k[next(len(p) for p in _WRAPPER_PREFIXES if k.startswith(p)) :]
        if k in out:
            raise ArchitectureError(f"two tensors map to {k!r} once wrapper prefixes are removed ({key!r})")
        out[k] = value
    return out


def tubelet_conv_to_linear(sd: StateDict, key: str = "patch_embed.proj.weight") -> StateDict:
    """Reshape the Conv3d tubelet weight [D, C, t, p, p] to the Linear weight [D, C*t*p*p]."""
    out = dict(sd)
    w = out.get(key)
    if w is not None and w.dim() == 5:
        out[key] = w.reshape(w.shape[0], -1)
    return out


def tubelet_linear_to_conv(
    sd: StateDict, *, in_chans: int, tubelet: int, patch: int, key: str = "patch_embed.proj.weight"
) -> StateDict:
    """The inverse of `tubelet_conv_to_linear`, for writing official-layout files."""
    out = dict(sd)
    w = out.get(key)
    if w is not None and w.dim() == 2:
        out[key] = w.reshape(w.shape[0], in_chans, tubelet, patch, patch)
    return out


_HF_LAYER = re.compile(r"^(encoder|predictor)\.layer\.(\d+)\.(.+)$")
_HF_LAYER_RENAMES = {"attention.proj.": "attn.proj.", "norm1.": "norm1.", "norm2.": "norm2.", "mlp.": "mlp."}
_HF_SIMPLE = {
    "encoder.embeddings.patch_embeddings.proj.": ("encoder", "patch_embed.proj."),
    "encoder.layernorm.": ("encoder", "norm."),
    "predictor.embeddings.predictor_embeddings.": ("predictor", "predictor_embed."),
    "predictor.layernorm.": ("predictor", "predictor_norm."),
    "predictor.proj.": ("predictor", "predictor_proj."),
}


def hf_vjepa2_to_native(sd: StateDict) -> tuple[dict[str, StateDict], list[str]]:
    """Hugging Face `VJEPA2Model` keys -> official V-JEPA 2 keys, split into encoder and predictor.

    Separate query/key/value projections are concatenated into one qkv (rows q, k, v), the stacked mask tokens
    [n, 1, 1, D] become `mask_tokens.0..n-1`. A `vjepa2.` prefix (VJEPA2ForVideoClassification) is removed;
    tensors outside the backbone (pooler, classifier) are returned by name as the second value, not loaded.
    """
    parts: dict[str, StateDict] = {"encoder": {}, "predictor": {}}
    qkv: dict[tuple[str, str, str], dict[str, Tensor]] = {}
    unused: list[str] = []
    for key, value in sd.items():
        k = key.removeprefix("vjepa2.")
        if k == "predictor.embeddings.mask_tokens":
            for i in range(value.shape[0]):
                parts["predictor"][f"mask_tokens.{i}"] = value[i]
            continue
        simple = next((p for p in _HF_SIMPLE if k.startswith(p)), None)
        if simple is not None:
            part, new = _HF_SIMPLE[simple]
            parts[part][new + k[len(simple) :]] = value
            continue
        m = _HF_LAYER.match(k)
        if m is None:
            unused.append(key)
            continue
        part, idx, rest = m.groups()
        blocks = "blocks" if part == "encoder" else "predictor_blocks"
        qm = re.match(r"^attention\.(query|key|value)\.(weight|bias)$", rest)
        if qm:
            qkv.setdefault((part, idx, qm.group(2)), {})[qm.group(1)] = value
            continue
        new_rest = next((rest.replace(a, b, 1) for a, b in _HF_LAYER_RENAMES.items() if rest.startswith(a)), None)
        if new_rest is None:
            unused.append(key)
            continue
        parts[part][f"{blocks}.{idx}.{new_rest}"] = value
    for (part, idx, kind), pieces in qkv.items():
        missing = {"query", "key", "value"} - set(pieces)
        if missing:
            raise ArchitectureError(f"{part}.layer.{idx}.attention is missing {sorted(missing)} {kind}")
        blocks = "blocks" if part == "encoder" else "predictor_blocks"
        parts[part][f"{blocks}.{idx}.attn.qkv.{kind}"] = torch.cat([pieces["query"], pieces["key"], pieces["value"]])
    return {k: v for k, v in parts.items() if v}, unused


def prefix(sd: StateDict, name: str) -> StateDict:
    """Nest a part's state dict under `name.`."""
    return {f"{name}.{k}": v for k, v in sd.items()}
