"""Training checkpoints: the model in the project's format plus the optimizer and loop state, written atomically.

A checkpoint is a folder `checkpoints/step_0000100/` holding `model.safetensors` (encoder, EMA target encoder
and predictor with the architecture record: `load_vjepa` reads it) and `state.pt` (optimizer moments, step,
the collapse watch's reference). It is written under a temporary name and renamed into place, so a kill at
any moment leaves either the whole checkpoint or none. `state.pt` holds only tensors and plain data and is
read with `torch.load(weights_only=True)`.

Weights are gathered with torch.distributed.checkpoint's state-dict API, which works the same for one
process, DDP and FSDP2 (sharded DTensors are gathered on rank 0).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from vjepa_edge.errors import TrainingError
from vjepa_edge.models.arch import VJEPAArch
from vjepa_edge.models.checkpoint import save_weights
from vjepa_edge.runinfo import write_json
from vjepa_edge.runs import Checkpoint, RunDir, list_checkpoints
from vjepa_edge.train.distributed import DistInfo, barrier


def _options(**kw: Any):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True, **kw)


def save_checkpoint(
    run_dir: Path,
    step: int,
    *,
    model: nn.Module,
    arch: VJEPAArch,
    trained: nn.Module,
    optimizer: torch.optim.Optimizer,
    extra: dict[str, Any],
    info: DistInfo,
    keep: int,
) -> Checkpoint | None:
    """Write checkpoint `step` (collective: every process must call it); returns it on rank 0."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    weights = get_model_state_dict(model, options=_options())
    optim = get_optimizer_state_dict(trained, optimizer, options=_options())
    ckpt = None
    if info.is_main:
        root = RunDir(run_dir).checkpoints
        ckpt = Checkpoint(root / f"step_{step:07d}", step)
        tmp = root / f".tmp-step_{step:07d}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_weights(arch, weights, tmp / "model.safetensors")
        torch.save({"step": step, "optimizer": optim, **extra}, tmp / "state.pt")
        if ckpt.path.exists():  # the same step written again (a resumed run's final save): replace it
            shutil.rmtree(ckpt.path)
        os.replace(tmp, ckpt.path)
        for old in list_checkpoints(run_dir)[:-keep]:
            shutil.rmtree(old.path, ignore_errors=True)
    barrier(info)
    return ckpt


def load_checkpoint(
    ckpt: Checkpoint, *, model: nn.Module, trained: nn.Module, optimizer: torch.optim.Optimizer
) -> dict[str, Any]:
    """Load weights (strictly) and optimizer state into the live modules; return the rest of the state."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    try:
        weights = load_file(str(ckpt.model))
        state = torch.load(ckpt.state, map_location="cpu", weights_only=True)
    except Exception as e:  # a damaged file: say which, never half-load
        raise TrainingError(
            f"checkpoint {ckpt.path} is unreadable ({str(e).splitlines()[0][:200]})",
            hint="delete that checkpoint folder to resume from the one before it",
        ) from None
    try:
        set_model_state_dict(model, weights, options=_options(strict=True))
        set_optimizer_state_dict(trained, optimizer, state.pop("optimizer"), options=_options())
    except (RuntimeError, KeyError, ValueError) as e:
        raise TrainingError(
            f"checkpoint {ckpt.path} does not fit this model ({str(e).splitlines()[0][:200]})",
            hint="resume with the config the run was started with (its config.json)",
        ) from None
    return state


def prepare_run_dir(
    out: Path,
    config: Any,
    *,
    resume: bool,
    load: Callable[[dict[str, Any], str], Any],
    file: str,
    what: str,
    hint: str,
) -> Any:
    """Create run folder `out` holding `file` (the resolved config), or check that the run being resumed there was
    started with the same config; returns the config to train with. `config` has `to_dict()` and `digest()`;
    `load(dict, where)` rebuilds one. A folder that holds a run is never overwritten."""
    stored = out / file
    if resume:
        if not stored.is_file():
            raise TrainingError(f"nothing to resume in {out}: no {file}", hint="drop --resume to start this run")
        previous = load(json.loads(stored.read_text()), str(stored))
        if previous.digest() != config.digest():
            a, b = previous.to_dict(), config.to_dict()
            changed = sorted(k for k in a if a.get(k) != b.get(k) and k not in ("name", "description"))
            raise TrainingError(
                f"{out} was started with another {what} (sections that differ: {', '.join(changed) or 'run'})",
                hint=hint,
            )
        return previous
    if list_checkpoints(out) or RunDir(out).metrics.exists():
        raise TrainingError(
            f"{out} already holds a run", hint="pass --resume to continue it, or --out to start another"
        )
    out.mkdir(parents=True, exist_ok=True)
    write_json(stored, config.to_dict())
    return config
