"""V-JEPA pretraining: context encoder + predictor regress the EMA target encoder's features of masked tokens.

One step (as `app/vjepa/train.py`): the target encoder (no gradient) encodes the full clip and its output
goes through a non-affine LayerNorm; for each mask spec, the context encoder encodes only the context tokens
and the predictor predicts the target tokens; the loss is the L1 distance at the targets, averaged over the
masks. AdamW steps the context encoder and predictor (no weight decay on biases and 1-D parameters), the
gradients are clipped per the schedule, and the target encoder moves toward the context encoder by EMA.

Everything a step depends on is a function of (config, step): data order (`StepBatchSampler`), augmentation
(seed, epoch, index), masks (seed, rank, step), lr / weight decay / momentum. A resumed run therefore ends
with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from teacher.config import TeacherConfig, config_from_dict
from teacher.schedules import Schedule
from vjepa_edge.data.loader import steps_per_epoch
from vjepa_edge.data.masks import MultiBlock3DMasker
from vjepa_edge.data.sources import check_source, open_source
from vjepa_edge.errors import TrainingError
from vjepa_edge.models.vit import gather_tokens
from vjepa_edge.models.vjepa import VJEPA
from vjepa_edge.runinfo import autocast_dtype, environment, warn_if_threads_idle, write_json
from vjepa_edge.train.distributed import DistInfo, any_across, setup, shard_fsdp2, wrap_ddp
from vjepa_edge.train.loop import (
    Meter,
    ProgressBar,
    StepBatches,
    log_metrics,
    param_groups,
    render_clips,
    truncate_metrics,
)
from vjepa_edge.train.state import list_checkpoints, load_checkpoint, save_checkpoint
from vjepa_edge.train.state import prepare_run_dir as _prepare_run_dir

log = logging.getLogger(__name__)


def _stats(last: dict[str, float]) -> str:
    return (
        f"loss {last['loss']:.4f}  lr {last['lr']:.2e}  {last['clips_per_s']:.1f} clips/s  "
        f"std {last['target_std']:.3f}  rank {last['target_rank']:.1f}"
    )


class ContextPath(nn.Module):
    """The trained modules in one forward (as V-JEPA's MultiMaskWrapper), so DDP sees one call per step."""

    def __init__(self, encoder: nn.Module, predictor: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.predictor = predictor

    def forward(self, clip: Tensor, masks_enc: list[Tensor], masks_pred: list[Tensor]) -> list[Tensor]:
        return [
            self.predictor(self.encoder(clip, enc), enc, pred, mask_index=i)
            for i, (enc, pred) in enumerate(zip(masks_enc, masks_pred, strict=True))
        ]


def jepa_loss(predictions: list[Tensor], targets: Tensor, masks_pred: list[Tensor]) -> Tensor:
    """Mean over masks of the L1 distance between predictions and the (normalised) targets at the masked tokens."""
    losses = [
        (z.float() - gather_tokens(targets, m)).abs().mean() for z, m in zip(predictions, masks_pred, strict=True)
    ]
    return torch.stack(losses).mean()


def feature_std(features: Tensor) -> float:
    """Mean over channels of the std over tokens and clips: falls toward 0 when the features collapse."""
    return features.flatten(0, -2).float().std(dim=0).mean().item()


def effective_rank(features: Tensor) -> float:
    """exp(entropy) of the normalised covariance spectrum of the tokens (RankMe): the number of directions the
    features really use. It falls toward 1 under dimensional collapse, which the per-dimension std can miss."""
    x = features.flatten(0, -2).float()
    x = x - x.mean(dim=0)
    eig = torch.linalg.eigvalsh(x.T @ x).clamp_min(0)
    p = eig / eig.sum().clamp_min(1e-12)
    return torch.exp(-(p * p.clamp_min(1e-12).log()).sum()).item()


@dataclass
class RunResult:
    run_dir: Path
    steps: int
    teacher: Path
    report: dict[str, Any] = field(default_factory=dict)
    model: nn.Module | None = None  # this process's live VJEPA module (sharded under FSDP2)


def prepare_run_dir(config: TeacherConfig, out: Path, *, resume: bool) -> TeacherConfig:
    """Create the run folder, or check that a resumed run's folder matches; returns the config to train with."""
    return _prepare_run_dir(
        out,
        config,
        resume=resume,
        load=lambda data, where: config_from_dict(data, where=where),
        file="config.json",
        what="config",
        hint="resume with the same --config, --steps and --data as the first run, or choose another --out",
    )


def pretrain(
    config: TeacherConfig,
    out: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> RunResult:
    """Run (or resume) pretraining into run folder `out`. `stop_after` ends the process's work early at
    that step, after a checkpoint, as if it had been killed (for tests and time-boxed sessions)."""
    check_source(config.data.source)  # before anything is written
    info = setup()
    out = Path(out)
    if info.is_main:
        config = prepare_run_dir(config, out, resume=resume)
    if info.distributed:
        import torch.distributed as dist

        holder = [config.to_dict()]
        dist.broadcast_object_list(holder, src=0)
        config = config_from_dict(holder[0])
    trainer = _Trainer(config, out, info, progress=progress)
    return trainer.run(resume=resume, stop_after=stop_after)


class _Trainer:
    def __init__(self, config: TeacherConfig, out: Path, info: DistInfo, *, progress: bool) -> None:
        self.config, self.out, self.info, self.show_progress = config, out, info, progress and info.is_main
        c = config
        self.arch = c.arch()
        self.device = info.device
        self.amp = autocast_dtype(c.run.precision, info.device)
        if self.device.type == "cpu" and info.is_main:
            warn_if_threads_idle(log)
        torch.manual_seed(c.run.seed)
        model = VJEPA(self.arch)
        model.target_encoder.load_state_dict(model.encoder.state_dict())  # the EMA starts as a copy
        model.target_encoder.requires_grad_(False)
        model.encoder.grad_checkpointing = c.run.activation_checkpointing
        self.model = model.to(self.device)
        context = ContextPath(model.encoder, model.predictor)
        if info.distributed and c.run.distributed == "fsdp2":
            shard_fsdp2(model.target_encoder, [model.target_encoder.blocks])
            context = shard_fsdp2(context, [model.encoder.blocks, model.predictor.predictor_blocks])
        elif info.distributed:
            context = wrap_ddp(context, info)
        self.context = context
        o = c.optim
        self.optimizer = torch.optim.AdamW(param_groups(context), lr=o.start_lr, betas=o.betas, eps=o.eps)
        self.schedule = Schedule(o)
        self.masker = MultiBlock3DMasker(self.arch.encoder.grid, c.masks, seed=c.run.seed * 4099 + info.rank)
        self.dataset = open_source(
            c.data.source,
            spec=c.data.clip,
            train=True,
            seed=c.run.seed,
            augment=c.data.augment,
            length=c.data.physics_clips,
        )
        steps_per_epoch(len(self.dataset), c.data.batch_size, info.world_size)  # fails early under one batch
        self.stages = {"data_rendering": render_clips(self.dataset, enabled=self.show_progress, info=info)}
        self.std_ref: float | None = None
        self.collapse_steps: list[int] = []

    # ------------------------------------------------------------------ one step

    def step(self, clip: Tensor, step: int) -> dict[str, float]:
        s, D = self.schedule, self.arch.encoder.embed_dim
        lr, wd, momentum, max_norm = s.lr(step), s.weight_decay(step), s.momentum(step), s.clip_grad(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
            if group["apply_wd"]:
                group["weight_decay"] = wd
        masks_enc, masks_pred = self.masker.sample(clip.shape[0], step)
        masks_enc = [m.to(self.device) for m in masks_enc]
        masks_pred = [m.to(self.device) for m in masks_pred]
        with torch.autocast(self.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None):
            with torch.no_grad():
                targets = F.layer_norm(self.model.target_encoder(clip).float(), (D,))
            predictions = self.context(clip, masks_enc, masks_pred)
            loss = jepa_loss(predictions, targets, masks_pred)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm else float("inf"))
        self.optimizer.step()
        self._ema(momentum)
        return {
            "loss": loss.item(),
            "grad_norm": float(grad_norm),
            "target_std": feature_std(targets),
            "target_rank": effective_rank(targets),
            "lr": lr,
            "wd": wd,
            "momentum": momentum,
        }

    @torch.no_grad()
    def _ema(self, momentum: float) -> None:
        target = list(self.model.target_encoder.parameters())
        online = list(self.model.encoder.parameters())
        if any(hasattr(t, "to_local") for t in target):  # FSDP2 DTensors: lerp shard by shard
            for t, o in zip(target, online, strict=True):
                t.lerp_(o.detach(), 1.0 - momentum)
        else:
            torch._foreach_lerp_(target, [o.detach() for o in online], 1.0 - momentum)

    # ------------------------------------------------------------------ the loop

    def run(self, *, resume: bool, stop_after: int | None) -> RunResult:
        c, info = self.config, self.info
        total = c.optim.steps
        start = 0
        if resume:
            found = list_checkpoints(self.out)
            if found:
                state = load_checkpoint(found[-1], model=self.model, trained=self.context, optimizer=self.optimizer)
                start = int(state["step"])
                self.std_ref = state.get("std_ref")
                self.collapse_steps = list(state.get("collapse_steps", []))
                log.info("resumed %s at step %d of %d", self.out, start, total)
            if info.is_main:
                truncate_metrics(self.out / "metrics.jsonl", start)
        if info.is_main:
            write_json(self.out / "env.json", {**environment(), "world_size": info.world_size, "amp": str(self.amp)})
        metrics = self.out / "metrics.jsonl"
        meter = Meter()
        end = total if stop_after is None else min(total, stop_after)
        bar = ProgressBar(
            "pretrain",
            total,
            start,
            enabled=self.show_progress,
            stats=_stats,
            end=end,
            note=f"pretraining {c.name}" if info.is_main else None,
            logger=log,
        )
        batches = StepBatches(
            self.dataset,
            batch_size=c.data.batch_size,
            num_workers=c.data.num_workers,
            seed=c.run.seed,
            rank=info.rank,
            world_size=info.world_size,
            max_bad_fraction=c.data.max_bad_fraction,
        )
        step, t_start = start, time.perf_counter()
        last: dict[str, float] = {}
        try:
            for step, epoch, batch in batches(start, end):
                clip = batch["clip"].to(self.device, non_blocking=True)
                values = self.step(clip, step)
                step += 1
                if any_across(info, not math.isfinite(values["loss"])):
                    raise TrainingError(
                        f"the loss became {values['loss']} at step {step}",
                        hint="lower optim.lr or raise optim.ema; resume from the last checkpoint with --resume",
                    )
                meter.add(clip.shape[0] * info.world_size, **values)
                if step % c.run.log_every == 0 or step == total or step == start + 1:
                    last = self._log(metrics, step, meter, epoch)
                    meter.reset()
                bar.update(step, last)
                if step % c.run.checkpoint_every == 0 or step == end:
                    self._save(step)
        finally:
            bar.close()
        health = batches.health
        elapsed = time.perf_counter() - t_start
        teacher = self.out / "teacher.safetensors"
        result = RunResult(self.out, step, teacher, model=self.model)
        if step >= total and info.is_main:
            shutil.copyfile(list_checkpoints(self.out)[-1].model, teacher)
            result.report = self._report(step, start, elapsed, health)
        return result

    def _log(self, path: Path, step: int, meter: Meter, epoch: int) -> dict[str, float]:
        reduced = row = log_metrics(path, step, epoch, meter, self.info)
        if self.std_ref is None:
            self.std_ref = reduced["target_std"]
        elif reduced["target_std"] < self.config.run.collapse_std * self.std_ref:
            self.collapse_steps.append(step)
            log.warning(
                "step %d: the target features' per-dimension std fell to %.4f (%.1f%% of its first value %.4f): "
                "the representation may be collapsing; consider a lower lr or a higher EMA momentum",
                step,
                reduced["target_std"],
                100 * reduced["target_std"] / self.std_ref,
                self.std_ref,
            )
        return row

    def _save(self, step: int) -> None:
        save_checkpoint(
            self.out,
            step,
            model=self.model,
            arch=self.arch,
            trained=self.context,
            optimizer=self.optimizer,
            extra={"std_ref": self.std_ref, "collapse_steps": self.collapse_steps, "world_size": self.info.world_size},
            info=self.info,
            keep=self.config.run.keep_checkpoints,
        )

    def _report(self, step: int, start: int, elapsed: float, health) -> dict[str, Any]:
        rows = [json.loads(ln) for ln in (self.out / "metrics.jsonl").read_text().splitlines() if ln.strip()]
        params = {
            "encoder": sum(p.numel() for p in self.model.encoder.parameters()),
            "predictor": sum(p.numel() for p in self.model.predictor.parameters()),
        }
        report = {
            "config": self.config.name,
            "steps": step,
            "first_loss": rows[0]["loss"] if rows else None,
            "final_loss": rows[-1]["loss"] if rows else None,
            "final_target_std": rows[-1]["target_std"] if rows else None,
            "collapse_warnings": self.collapse_steps,
            "clips_per_s": (step - start) * self.config.data.batch_size * self.info.world_size / max(elapsed, 1e-9),
            "wall_s_this_process": elapsed,
            "stages": {**self.stages, "training": elapsed},  # seconds per stage, this process
            "world_size": self.info.world_size,
            "precision": "bf16" if self.amp else "fp32",
            "parameters": params,
            "teacher": str(self.out / "teacher.safetensors"),
            "bad_videos": health.summary() if health is not None else None,
        }
        write_json(self.out / "report.json", report)
        return report
