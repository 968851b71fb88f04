"""V-JEPA pretraining: context encoder + predictor regress the EMA target encoder's features of masked tokens.

One step (as `app/vjepa/train.py`): the target encoder (no gradient) encodes the full clip and its output
goes through a non-affine LayerNorm; for each mask spec, the context encoder encodes only the context tokens
and the predictor predicts the target tokens; the loss is the L1 distance at the targets, averaged over the
masks. AdamW steps the context encoder and predictor (no weight decay on biases and 1-D parameters), the
gradients are clipped per the schedule, and the target encoder moves toward the context encoder by EMA.

Everything a step depends on is a function of (config, step): data order (`StepBatchSampler`), augmentation
(seed, epoch, index), masks (seed, rank, step), lr / weight decay / momentum. A resumed run therefore ends
with the same weights as an uninterrupted one. The loop around the step (resume, logging, checkpoints, the
final weights) is the one distillation runs too, `vjepa_edge.train.skeleton.Trainer`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from teacher.config import TeacherConfig, config_from_dict, validate_config
from teacher.schedules import Schedule
from vjepa_edge.data.loader import steps_per_epoch
from vjepa_edge.data.masks import MultiBlock3DMasker
from vjepa_edge.data.sources import open_source
from vjepa_edge.models.vit import gather_tokens
from vjepa_edge.models.vjepa import VJEPA
from vjepa_edge.runinfo import write_json
from vjepa_edge.runs import RunDir
from vjepa_edge.train.distributed import DistInfo, shard_fsdp2, wrap_ddp
from vjepa_edge.train.loop import adamw, read_metrics, render_clips
from vjepa_edge.train.skeleton import Checkpointed, LoopSpec, Trainer, start_run

log = logging.getLogger(__name__)


class ContextPath(nn.Module):
    """The trained modules in one forward (as V-JEPA's MultiMaskWrapper), so DDP sees one call per step."""

    def __init__(self, encoder: nn.Module, predictor: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.predictor = predictor

    def forward(
        self, clip: Tensor, masks_enc: list[Tensor], masks_pred: list[Tensor]
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Predictions at the targets of each mask, and the context tokens they were predicted from."""
        contexts = [self.encoder(clip, enc) for enc in masks_enc]
        predictions = [
            self.predictor(z, enc, pred, mask_index=i)
            for i, (z, enc, pred) in enumerate(zip(contexts, masks_enc, masks_pred, strict=True))
        ]
        return predictions, contexts


def jepa_loss(
    predictions: list[Tensor],
    targets: Tensor,
    masks_pred: list[Tensor],
    weights: Tensor | None = None,
    *,
    exp: float = 1.0,
) -> Tensor:
    """Mean over masks of mean(|prediction - target| ** exp) / exp at the masked tokens (exp 1: V-JEPA's L1); with
    `weights` [B, N] (one per token) a weighted mean over the masked tokens of each mask."""
    losses = []
    for z, m in zip(predictions, masks_pred, strict=True):
        dist = (z.float() - gather_tokens(targets, m)).abs()
        if exp != 1.0:
            dist = dist.pow(exp) / exp
        if weights is None:
            losses.append(dist.mean())
        else:
            w = torch.gather(weights, 1, m)
            losses.append((dist.mean(-1) * w).sum() / w.sum().clamp_min(1e-6))
    return torch.stack(losses).mean()


def motion_weights(clip: Tensor, tubelet: int, patch: int, weight: float) -> Tensor:
    """Per-token loss weights [B, N] from clips [B, C, T, H, W]: (1 - weight) + weight * m / mean(m), m the mean
    absolute frame difference under each token (the first frame repeats the first difference), in the encoder's
    token order (time, rows, columns). In a clip where nothing moves every token weighs 1."""
    x = clip.float()
    diff = (x[:, :, 1:] - x[:, :, :-1]).abs().mean(1)
    diff = torch.cat([diff[:, :1], diff], dim=1)
    m = F.avg_pool3d(diff.unsqueeze(1), (tubelet, patch, patch)).flatten(1)
    mean = m.mean(1, keepdim=True)
    share = torch.where(mean > 0, m / mean.clamp_min(1e-12), torch.ones_like(m))  # a still clip: every token alike
    return (1.0 - weight) + weight * share


def variance_covariance(contexts: list[Tensor]) -> tuple[Tensor, Tensor]:
    """VICReg's terms on tokens [B, K, D], averaged over masks: the hinge max(0, 1 - std) per channel (std over
    every token of the batch) and the sum of squared off-diagonal covariances divided by D."""
    var, cov = [], []
    for z in contexts:
        x = z.float().flatten(0, -2)
        x = x - x.mean(dim=0)
        std = torch.sqrt(x.var(dim=0) + 1e-4)
        var.append(F.relu(1.0 - std).mean())
        c = (x.T @ x) / max(x.shape[0] - 1, 1)
        cov.append((c.pow(2).sum() - c.diagonal().pow(2).sum()) / x.shape[1])
    return torch.stack(var).mean(), torch.stack(cov).mean()


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
    validate_config(config, out=out)  # every problem at once, before anything is written or computed
    out = Path(out)
    info, config = start_run(
        out,
        config,
        resume=resume,
        load=lambda data, where: config_from_dict(data, where=where),
        file=RunDir(out).config.name,
        what="config",
        hint="resume with the same --config, --steps and --data as the first run, or choose another --out",
    )
    trainer = _Trainer(config, out, info, progress=progress)
    steps, report = trainer.run(resume=resume, stop_after=stop_after)
    return RunResult(out, steps, trainer.weights, report=report, model=trainer.model)


def loop_spec(c: TeacherConfig) -> LoopSpec:
    return LoopSpec(
        label="pretrain",
        note=f"pretraining {c.name}",
        weights="teacher",
        nan_hint="lower optim.lr or raise optim.ema; resume from the last checkpoint with --resume",
        steps=c.optim.steps,
        log_every=c.run.log_every,
        checkpoint_every=c.run.checkpoint_every,
        keep_checkpoints=c.run.keep_checkpoints,
        batch_size=c.data.batch_size,
        num_workers=c.data.num_workers,
        seed=c.run.seed,
        max_bad_fraction=c.data.max_bad_fraction,
    )


def regression_targets(encoder: nn.Module, clip: Tensor, layers: int = 1) -> Tensor:
    """What the predictor regresses: the target encoder's output layer-normed (V-JEPA), or with `layers` > 1 the
    average of its last `layers` blocks, each layer-normed (the last through the encoder's own norm), layer-normed
    again (data2vec's top-K average). The blocks' outputs are read with forward hooks, so the encoder runs its own
    forward (wrapped or sharded alike)."""
    hidden: list[Tensor] = []
    hooks = [b.register_forward_hook(lambda _m, _i, out: hidden.append(out)) for b in encoder.blocks[-layers:-1]]
    try:
        out = encoder(clip).float()
    finally:
        for h in hooks:
            h.remove()
    D = out.shape[-1]
    normed = [F.layer_norm(h.float(), (D,)) for h in [*hidden, out]]
    return normed[0] if layers == 1 else F.layer_norm(torch.stack(normed).mean(0), (D,))


class _Trainer(Trainer):
    logger = log

    def __init__(self, config: TeacherConfig, out: str | Path, info: DistInfo, *, progress: bool) -> None:
        c = self.config = config
        super().__init__(loop_spec(c), out, info, progress=progress, precision=c.run.precision)
        self.arch = c.arch()
        torch.manual_seed(c.run.seed)
        self.model, self.context = self._build_model()
        o = c.optim
        self.optimizer = adamw(self.context, lr=o.start_lr, betas=o.betas, eps=o.eps)
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
        self.stages["data_rendering"] = render_clips(self.dataset, enabled=self.show, info=info)
        self.std_ref: float | None = None
        self.collapse_steps: list[int] = []

    def _build_model(self) -> tuple[VJEPA, nn.Module]:
        """The VJEPA model on this device and the trained path (context encoder + predictor), wrapped or sharded
        for torchrun."""
        c, info = self.config, self.info
        model = VJEPA(self.arch)
        model.target_encoder.load_state_dict(model.encoder.state_dict())  # the EMA starts as a copy
        model.target_encoder.requires_grad_(False)
        model.encoder.grad_checkpointing = c.run.activation_checkpointing
        model = model.to(self.device)
        context: nn.Module = ContextPath(model.encoder, model.predictor)
        if info.distributed and c.run.distributed == "fsdp2":
            shard_fsdp2(model.target_encoder, [model.target_encoder.blocks])
            context = shard_fsdp2(context, [model.encoder.blocks, model.predictor.predictor_blocks])
        elif info.distributed:
            context = wrap_ddp(context, info)
        return model, context

    # ------------------------------------------------------------------ one step

    def train_step(self, batch: dict[str, Any], step: int) -> dict[str, float]:
        return self.step(batch["clip"].to(self.device, non_blocking=True), step)

    def step(self, clip: Tensor, step: int) -> dict[str, float]:
        s = self.schedule
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
                targets = regression_targets(self.model.target_encoder, clip, self.config.optim.target_layers)
            predictions, contexts = self.context(clip, masks_enc, masks_pred)
            o, extra = self.config.optim, {}
            weights = None
            if o.motion_weight:
                e = self.arch.encoder
                weights = motion_weights(clip, e.tubelet_size, e.patch_size, o.motion_weight)
            loss = jepa_loss(predictions, targets, masks_pred, weights, exp=o.loss_exp)
            if o.variance_weight or o.covariance_weight:
                var, cov = variance_covariance(contexts)
                extra = {"variance": var.item(), "covariance": cov.item()}
                total = loss + o.variance_weight * var + o.covariance_weight * cov
            else:
                total = loss
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
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
            **extra,
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

    # ------------------------------------------------------------------ the loop's hooks

    def checkpointed(self) -> Checkpointed:
        return Checkpointed(self.model, self.context, self.optimizer)

    def extra_state(self) -> dict[str, Any]:
        return {"std_ref": self.std_ref, "collapse_steps": self.collapse_steps}

    def restore(self, state: dict[str, Any]) -> None:
        self.std_ref = state.get("std_ref")
        self.collapse_steps = list(state.get("collapse_steps", []))

    def on_log(self, row: dict[str, float]) -> None:
        """The collapse watch: warn when the target features' spread falls far below its first logged value."""
        std = row["target_std"]
        if self.std_ref is None:
            self.std_ref = std
        elif std < self.config.run.collapse_std * self.std_ref:
            self.collapse_steps.append(int(row["step"]))
            log.warning(
                "step %d: the target features' per-dimension std fell to %.4f (%.1f%% of its first value %.4f): "
                "the representation may be collapsing; consider a lower lr or a higher EMA momentum",
                row["step"],
                std,
                100 * std / self.std_ref,
                self.std_ref,
            )

    def stats(self, last: dict[str, float]) -> str:
        return (
            f"loss {last['loss']:.4f}  lr {last['lr']:.2e}  {last['clips_per_s']:.1f} clips/s  "
            f"std {last['target_std']:.3f}  rank {last['target_rank']:.1f}"
        )

    def report(self, *, step: int, start: int, elapsed: float) -> dict[str, Any]:
        rows = read_metrics(self.metrics)
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
            "stages": dict(self.stages),  # seconds per stage, this process
            "world_size": self.info.world_size,
            "precision": "bf16" if self.amp else "fp32",
            "parameters": params,
            "teacher": str(self.weights),
            "bad_videos": self.health.summary() if self.health is not None else None,
        }
        write_json(RunDir(self.out).report, report)
        return report
