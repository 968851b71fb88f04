"""Read and write V-JEPA checkpoints: `load_vjepa(path)`, `read_arch(path)` and `save_vjepa(model, path)`.

Formats read (detected from the file, never from its name):
- V-JEPA 1 `.pth.tar` and V-JEPA 2 `.pt` training checkpoints (`encoder`, `target_encoder`, `predictor` state
  dicts with `module.backbone.` prefixes), or a bare encoder state dict;
- a Hugging Face `VJEPA2Model` directory (`config.json` + `model.safetensors`);
- our own format: one `.safetensors` file whose metadata holds the architecture record (or a directory with a
  `model.safetensors` of that kind).

Pickles are opened with `torch.load(weights_only=True)`: a file holding anything but tensors and plain data is
refused, never executed. Weights load with `strict=True`; every rename is a named function in `keymaps`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import Tensor

from vjepa_edge.errors import ArchitectureError, CheckpointError, ConfigError
from vjepa_edge.models.arch import AnyEncoderArch, EncoderArch, PredictorArch, TimmEncoderArch, VJEPAArch
from vjepa_edge.models.infer import check_heads, heads_hint, infer_encoder, infer_predictor
from vjepa_edge.models.keymaps import hf_vjepa2_to_native, prefix, strip_wrapper_prefixes, tubelet_conv_to_linear
from vjepa_edge.models.vjepa import PARTS, VJEPA, Source
from vjepa_edge.runinfo import save_safetensors

FORMAT_TAG = "vjepa-edge"
StateDict = dict[str, Tensor]


# ----------------------------------------------------------------------------- reading files


def _sniff(path: Path) -> str:
    """'dir', 'zip' (torch.save), 'safetensors' or 'other', from the first bytes."""
    if path.is_dir():
        return "dir"
    with path.open("rb") as f:
        head = f.read(9)
    if len(head) == 0:
        raise CheckpointError(f"{path} is empty (0 bytes)", hint="the download or copy was probably interrupted")
    if head[:4] == b"PK\x03\x04":
        return "zip"
    if len(head) == 9 and head[8:9] == b"{":  # u64 header length, then the JSON header
        return "safetensors"
    return "other"


def _torch_load(path: Path, kind: str) -> Any:
    """torch.load with weights_only=True, turning every failure into one clear CheckpointError."""
    if kind == "zip":
        try:
            with zipfile.ZipFile(path) as z:
                bad = z.testzip() if path.stat().st_size < (64 << 20) else None
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise CheckpointError(
                f"{path} is truncated or corrupt ({e})", hint="download or copy the file again"
            ) from None
        if bad is not None:
            raise CheckpointError(
                f"{path} is corrupt: member {bad!r} fails its CRC check", hint="download or copy the file again"
            )
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols; the outcome is reported below
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True, mmap=kind == "zip")
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        if found:
            raise CheckpointError(
                f"{path} contains a pickled Python object ({found.group(1)}) that is not plain data; "
                "refused: loading it would execute code",
                hint="re-save the checkpoint with only tensors, dicts, lists and numbers, or as safetensors",
            ) from None
        op = re.search(r"Unsupported operand (\d+)", str(e))
        detail = f" (pickle opcode {op.group(1)})" if op else ""
        raise CheckpointError(
            f"{path} is a pickle that the safe loader cannot read{detail}; it was not unpickled",
            hint="save checkpoints with torch.save or as safetensors",
        ) from None
    except Exception as e:  # the file-format boundary: every other failure is a bad file, not a bug
        if kind == "zip":
            raise CheckpointError(
                f"{path} is truncated or corrupt ({_first_line(e)})", hint="download or copy the file again"
            ) from None
        raise _not_a_checkpoint(path, _first_line(e)) from None


def _not_a_checkpoint(path: Path, why: str) -> CheckpointError:
    return CheckpointError(
        f"{path} is not a PyTorch checkpoint ({why})",
        hint="pass a V-JEPA .pth.tar/.pt, a Hugging Face VJEPA2 directory or a vjepa-edge .safetensors file",
    )


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__


def _safetensors_metadata(path: Path) -> dict[str, str]:
    """The header's metadata; opening checks that the header covers the whole file (catches truncation)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except Exception as e:  # safetensors raises its own SafetensorError and plain OSErrors
        raise _bad_safetensors(path, e) from None


def _load_safetensors(path: Path) -> tuple[StateDict, dict[str, str]]:
    meta = _safetensors_metadata(path)
    try:
        return load_file(str(path)), meta
    except Exception as e:
        raise _bad_safetensors(path, e) from None


def _bad_safetensors(path: Path, e: Exception) -> CheckpointError:
    return CheckpointError(
        f"{path} is a truncated or corrupt safetensors file ({_first_line(e)})", hint="download or copy the file again"
    )


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, Tensor) for v in obj.values())


# ----------------------------------------------------------------------------- formats -> (arch, weights)


def _official(
    path: Path, obj: Any, *, frames: int | None, size: int | None, num_heads: int | None
) -> tuple[VJEPAArch, StateDict, Source]:
    """A V-JEPA 1 / V-JEPA 2 training checkpoint (or a bare encoder state dict)."""
    if _is_state_dict(obj):
        parts = {"encoder": strip_wrapper_prefixes(obj)}
        notes = ["bare state dict: read as an encoder"]
    elif isinstance(obj, dict) and any(_is_state_dict(obj.get(p)) for p in PARTS):
        parts = {p: strip_wrapper_prefixes(obj[p]) for p in PARTS if _is_state_dict(obj.get(p))}
        skipped = sorted(k for k in obj if k not in PARTS)
        notes = [f"not model weights, not loaded: {', '.join(skipped)}"] if skipped else []
    else:
        keys = sorted(obj)[:12] if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(
            f"{path} is not a V-JEPA checkpoint: expected 'encoder', 'target_encoder' or 'predictor' state dicts, "
            f"found {keys}",
            hint="V-JEPA 2.1 files (key 'ema_encoder') and probe checkpoints are not supported yet",
        )
    enc_key = "target_encoder" if "encoder" not in parts else "encoder"
    enc, input_from = infer_encoder(parts[enc_key], part=enc_key, num_heads=num_heads)
    if num_heads is not None:
        notes.append(f"num_heads {num_heads} given by the caller (no tensor records it)")
    if "encoder" in parts and "target_encoder" in parts:
        target, _ = infer_encoder(parts["target_encoder"], part="target_encoder", num_heads=num_heads)
        if target != enc:
            raise ArchitectureError("target_encoder and encoder have different architectures")
    enc, input_from = _override_input(enc, input_from, frames=frames, size=size)
    pred = infer_predictor(parts["predictor"], enc) if "predictor" in parts else None
    if "encoder" not in parts:  # a target-only file: its EMA weights are the encoder
        parts["encoder"] = parts["target_encoder"]
        notes.append("no context encoder: the target encoder's weights serve as the encoder")
    arch = VJEPAArch(
        version="vjepa1" if enc.pos == "sincos" else "vjepa2",
        encoder=enc,
        predictor=pred,
        target_encoder="target_encoder" in parts,
    )
    weights: StateDict = {}
    for name, sd in parts.items():
        weights.update(prefix(tubelet_conv_to_linear(sd), name))
    fmt = "V-JEPA 1 checkpoint" if arch.version == "vjepa1" else "V-JEPA 2 checkpoint"
    return arch, weights, Source(path=str(path), format=fmt, input_from=input_from, notes=tuple(notes))


def _override_input(enc: AnyEncoderArch, input_from: str, *, frames: int | None, size: int | None):
    if frames is None and size is None:
        return enc, input_from
    if isinstance(enc, TimmEncoderArch):
        # Its feature grid was measured at the recorded size; a CNN backbone runs at other sizes all the same.
        enc = dataclasses.replace(enc, num_frames=frames or enc.num_frames)
        kept = "" if size in (None, enc.img_size) else f"; img_size stays {enc.img_size} (measured for a timm student)"
        return enc, ("given by the caller" if frames else input_from) + kept
    if enc.pos == "sincos" and (frames, size) != (enc.num_frames, enc.img_size):
        # The sin-cos table is tied to the grid it was stored for; other inputs are interpolated at run time.
        return enc, input_from + "; other sizes are interpolated at run time"
    enc = dataclasses.replace(enc, num_frames=frames or enc.num_frames, img_size=size or enc.img_size)
    return enc, "given by the caller"


def _hf_dir(
    path: Path, *, frames: int | None, size: int | None, num_heads: int | None
) -> tuple[VJEPAArch, StateDict, Source]:
    """A Hugging Face VJEPA2Model (or VJEPA2ForVideoClassification) directory."""
    try:
        cfg = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path / 'config.json'} is not valid JSON ({_first_line(e)})") from None
    if cfg.get("model_type") != "vjepa2":
        raise CheckpointError(f"{path} holds a {cfg.get('model_type')!r} model, not a V-JEPA 2 ('vjepa2') one")
    if cfg.get("hidden_act", "gelu") != "gelu":
        raise ArchitectureError(f"{path}: hidden_act {cfg['hidden_act']!r} is not supported (only 'gelu')")
    raw, _ = _load_safetensors(path / "model.safetensors")
    parts, unused = hf_vjepa2_to_native(raw)
    heads = _hf_heads(cfg, num_heads, path / "config.json")  # before the try: a contradiction is the caller's error
    try:
        enc = EncoderArch(
            embed_dim=cfg["hidden_size"],
            depth=cfg["num_hidden_layers"],
            num_heads=heads,
            mlp_hidden=int(cfg["hidden_size"] * cfg.get("mlp_ratio", 4.0)),
            patch_size=cfg["patch_size"],
            tubelet_size=cfg["tubelet_size"],
            in_chans=cfg.get("in_chans", 3),
            pos="rope",
            qkv_bias=cfg.get("qkv_bias", True),
            norm_eps=cfg.get("layer_norm_eps", 1e-6),
            num_frames=frames or cfg["frames_per_clip"],
            img_size=size or cfg["crop_size"],
        )
        pred = None
        if "predictor" in parts:
            pdim = cfg["pred_hidden_size"]
            pred = PredictorArch(
                embed_dim=enc.embed_dim,
                pred_dim=pdim,
                depth=cfg["pred_num_hidden_layers"],
                num_heads=cfg["pred_num_attention_heads"],
                mlp_hidden=int(pdim * cfg.get("pred_mlp_ratio", 4.0)),
                num_mask_tokens=cfg["pred_num_mask_tokens"],
                pos="rope",
                sort_tokens=True,
                qkv_bias=cfg.get("qkv_bias", True),
                norm_eps=cfg.get("layer_norm_eps", 1e-6),
            )
    except KeyError as e:
        raise CheckpointError(f"{path / 'config.json'} lacks {e.args[0]!r}") from None
    except ConfigError as e:
        raise ArchitectureError(f"{path / 'config.json'} describes an invalid architecture: {e.message}") from None
    arch = VJEPAArch(version="vjepa2", encoder=enc, predictor=pred)
    weights: StateDict = {}
    for name, sd in parts.items():
        weights.update(prefix(tubelet_conv_to_linear(sd), name))
    notes = (f"outside the backbone, not loaded: {len(unused)} tensors ({', '.join(unused[:3])}...)",) if unused else ()
    src = Source(
        path=str(path),
        format="Hugging Face VJEPA2 directory",
        input_from="given by the caller" if frames or size else "config.json",
        notes=notes,
    )
    return arch, weights, src


def _hf_heads(cfg: dict[str, Any], num_heads: int | None, where: Path) -> int:
    """config.json's head count; the caller's `num_heads` only where it records none, and never against it."""
    stored = cfg.get("num_attention_heads")
    if stored is None and num_heads is None:
        raise CheckpointError(f"{where} lacks 'num_attention_heads'", hint=heads_hint(cfg.get("hidden_size", 0)))
    if stored is None:
        return check_heads(cfg.get("hidden_size", 0), num_heads)
    _check_stored_heads(stored, num_heads, where)
    return stored


def _check_stored_heads(stored: int | None, num_heads: int | None, where: Path | str) -> None:
    if num_heads is not None and num_heads != stored:
        what = f"records {stored} heads" if stored is not None else "is a timm student, which has no attention heads"
        raise ConfigError(
            f"num_heads={num_heads} contradicts {where}, which {what}",
            hint="drop num_heads (--heads): this file records its own architecture",
        )


def _ours(
    path: Path, sd: StateDict, meta: dict[str, str], *, frames: int | None, size: int | None, num_heads: int | None
) -> tuple[VJEPAArch, StateDict, Source]:
    try:
        arch = VJEPAArch.from_dict(json.loads(meta["arch"]))
    except (KeyError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: the architecture record in the metadata is unreadable ({e})") from None
    _check_stored_heads(getattr(arch.encoder, "num_heads", None), num_heads, path)
    enc, input_from = _override_input(arch.encoder, "the stored architecture record", frames=frames, size=size)
    if enc != arch.encoder:
        arch = dataclasses.replace(arch, encoder=enc)
    return arch, sd, Source(path=str(path), format="vjepa-edge checkpoint", input_from=input_from)


def _locate(path: str | os.PathLike[str]) -> tuple[Path, str]:
    """The file (or Hugging Face directory) to read at `path`, and its kind from `_sniff`."""
    p = Path(path).expanduser()
    if not p.exists():
        raise CheckpointError(f"no such file or directory: {p}", hint="check the path; nothing is downloaded")
    kind = _sniff(p)
    if kind != "dir":
        return p, kind
    if (p / "config.json").is_file() and (p / "model.safetensors").is_file():
        return p, "hf"
    if (p / "model.safetensors").is_file():  # a folder holding our own file (a training checkpoint)
        return _locate(p / "model.safetensors")
    raise CheckpointError(
        f"{p} is a directory without model.safetensors",
        hint="a Hugging Face directory holds config.json and model.safetensors",
    )


def _own_metadata(path: Path) -> dict[str, str]:
    meta = _safetensors_metadata(path)
    if meta.get("format") != FORMAT_TAG:
        raise CheckpointError(
            f"{path} is a safetensors file without a vjepa-edge architecture record",
            hint="pass the Hugging Face directory that holds it with its config.json",
        )
    return meta


def read_checkpoint(
    path: str | os.PathLike[str],
    *,
    frames: int | None = None,
    size: int | None = None,
    num_heads: int | None = None,
) -> tuple[VJEPAArch, StateDict, Source]:
    """Detect the format of `path` and return its architecture, its weights in our layout and its provenance.

    `num_heads` is the head count for files that do not record one (official checkpoints of a width that is no
    published size); for a file that records it, a different value is a ConfigError.
    """
    p, kind = _locate(path)
    if kind == "hf":
        return _hf_dir(p, frames=frames, size=size, num_heads=num_heads)
    if kind == "safetensors":
        meta = _own_metadata(p)
        sd, _ = _load_safetensors(p)
        return _ours(p, sd, meta, frames=frames, size=size, num_heads=num_heads)
    if kind == "other" and not _starts_like_pickle(p):
        raise _not_a_checkpoint(p, "neither a torch.save zip archive, a pickle nor a safetensors file")
    return _official(p, _torch_load(p, kind), frames=frames, size=size, num_heads=num_heads)


def read_arch(
    path: str | os.PathLike[str],
    *,
    frames: int | None = None,
    size: int | None = None,
    num_heads: int | None = None,
) -> VJEPAArch:
    """The architecture `load_vjepa` would build from `path`, without building it (to validate before compute).

    Our own files record it in their header, which is all that is read; other formats are inferred from their
    tensors. Raises the same errors as `load_vjepa` for a missing, truncated or foreign file.
    """
    p, kind = _locate(path)
    if kind == "safetensors":
        return _ours(p, {}, _own_metadata(p), frames=frames, size=size, num_heads=num_heads)[0]
    return read_checkpoint(p, frames=frames, size=size, num_heads=num_heads)[0]


def _starts_like_pickle(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(1) == b"\x80"  # the PROTO opcode that starts every pickle of protocol 2 or later


# ----------------------------------------------------------------------------- public API


def _aligned(t: Tensor) -> Tensor:
    """`t`, copied when its data is not 64-byte aligned. safetensors packs tensors back to back, and MKL/oneDNN
    take other code paths (other rounding) on unaligned data: a loaded model would not match its saved self."""
    return t if t.data_ptr() % 64 == 0 else t.clone()


def build_from_weights(arch: VJEPAArch, weights: StateDict, source: Source | None = None) -> VJEPA:
    """Build the model on the meta device and load `weights` strictly into it (aligned tensors are not copied)."""
    with torch.device("meta"):
        model = VJEPA(arch, source)
    try:
        model.load_state_dict({k: _aligned(v) for k, v in weights.items()}, strict=True, assign=True)
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()][1:6]
        raise ArchitectureError(
            "the checkpoint's tensors do not fit the inferred architecture:\n  " + "\n  ".join(lines)
        ) from None
    return model.eval()


def load_vjepa(
    path: str | os.PathLike[str],
    *,
    frames: int | None = None,
    size: int | None = None,
    num_heads: int | None = None,
) -> VJEPA:
    """Load any V-JEPA checkpoint; format and architecture are inferred from the file.

    `frames`/`size` override the input contract where the file does not record it (V-JEPA 2 RoPE files).
    `num_heads` is needed for an official checkpoint whose width is no published size (no tensor records it).
    """
    arch, weights, source = read_checkpoint(path, frames=frames, size=size, num_heads=num_heads)
    return build_from_weights(arch, weights, source)


def save_vjepa(model: VJEPA, path: str | os.PathLike[str]) -> Path:
    """Write `model` as one safetensors file with its architecture record; atomic (temp file + rename)."""
    return save_weights(model.arch, model.state_dict(), path)


def save_weights(arch: VJEPAArch, state_dict: dict[str, Tensor], path: str | os.PathLike[str]) -> Path:
    """Write a VJEPA state dict with its architecture record as safetensors, atomically (temp file + rename).

    For callers that gather the weights themselves (FSDP2 training holds them sharded)."""
    sd = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    return save_safetensors(sd, path, {"format": FORMAT_TAG, "arch": json.dumps(arch.to_dict())})
