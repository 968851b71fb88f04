"""The distillation loop: a small student learns to produce the teacher's latent features.

One step: the clip (at the teacher's input) gives the teacher's tokens (from the feature cache, or the teacher
run online), resampled to the student's token grid and LayerNorm'ed; the student sees the same clip resampled
to its own input (frames, size); its tokens, through the projector (and the predictor for masked
distillation), regress the teacher's. AdamW with warmup and cosine, bf16 autocast where the hardware has it,
gradient clipping. Everything a step depends on is a function of (recipe, step), so `--resume` after a kill
ends with the weights of an uninterrupted run. At the end the student is evaluated on held-out clips
(`vjepa_edge.distill.evaluate`) and the run folder gets `student.safetensors` and `report.json`.
"""

from __future__ import annotations

import functools
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

from vjepa_edge.data.config import ClipSpec
from vjepa_edge.data.loader import collate_clips, steps_per_epoch
from vjepa_edge.data.sources import open_source
from vjepa_edge.distill.losses import DistillHead, DistillModel, distill_loss, teacher_targets, token_cosine, tube_masks
from vjepa_edge.distill.recipe import Recipe, external_problems, recipe_from_dict
from vjepa_edge.errors import ConfigError, TrainingError
from vjepa_edge.models.checkpoint import load_vjepa
from vjepa_edge.models.students import create_student
from vjepa_edge.models.vit import gather_tokens
from vjepa_edge.models.vjepa import student_model
from vjepa_edge.runinfo import autocast_dtype, cache_root, environment, warn_if_threads_idle, write_json
from vjepa_edge.train.distributed import DistInfo, any_across, barrier, setup, wrap_ddp
from vjepa_edge.train.loop import (
    Meter,
    ProgressBar,
    StepBatches,
    log_metrics,
    param_groups,
    render_clips,
    task_bar,
    truncate_metrics,
    warmup_cosine,
)
from vjepa_edge.train.state import list_checkpoints, load_checkpoint, prepare_run_dir, save_checkpoint

log = logging.getLogger(__name__)

RUNS = Path("runs") / "distill"


@dataclass
class DistillResult:
    run_dir: Path
    steps: int
    student: Path
    report: dict[str, Any] = field(default_factory=dict)
    model: nn.Module | None = None  # this process's live student


def adapt_clip(clip: Tensor, frames: int, size: int) -> Tensor:
    """The teacher's clip [B, 3, T, H, W] as the student sees it: every (T/frames)-th frame, resized to `size`."""
    B, C, T, H, W = clip.shape
    if T % frames:
        raise ConfigError(f"the student's {frames} frames do not divide the teacher's {T}")
    x = clip[:, :, :: T // frames]
    if (H, W) != (size, size):
        x = x.transpose(1, 2).reshape(B * frames, C, H, W)
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        x = x.reshape(B, frames, C, size, size).transpose(1, 2)
    return x.contiguous()


class AdaptedStudent(nn.Module):
    """A student that takes the teacher's clip (for evaluating both on the same clips)."""

    def __init__(self, student: nn.Module, frames: int, size: int) -> None:
        super().__init__()
        self.student, self.frames, self.size = student, frames, size

    def forward(self, clip: Tensor) -> Tensor:
        return self.student(adapt_clip(clip, self.frames, self.size))

    def token_grid(self, clip: Tensor) -> tuple[int, int, int]:
        return tuple(self.student.grid)


def resolve_teacher(recipe: Recipe, *, progress: bool) -> Path:
    """The teacher file: the recipe's path, or the embedded teacher (pretrained and cached on first use)."""
    if not recipe.teacher.embedded:
        return Path(recipe.teacher.path).expanduser()
    from teacher.embedded import embedded_teacher  # the teacher package pretrains it when it is not cached

    return embedded_teacher(progress=progress)


def load_teacher(recipe: Recipe, path: Path) -> nn.Module:
    t = recipe.teacher
    model = load_vjepa(path, frames=t.frames or None, size=t.size or None)
    part = t.part
    if part == "auto":
        part = "target_encoder" if "target_encoder" in model.parts else "encoder"
    encoder = getattr(model, part)
    encoder.requires_grad_(False)
    return encoder.eval()


def distill(
    recipe: Recipe,
    out: str | Path | None = None,
    *,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> DistillResult:
    """Distill (or resume distilling) `recipe` into run folder `out` (default runs/distill/NAME).
    `stop_after` ends this process's work at that step after a checkpoint, as if killed (tests)."""
    problems = external_problems(recipe.to_dict())
    if problems:
        raise ConfigError(f"invalid recipe {recipe.name}", problems=problems)
    info = setup()
    out = Path(out) if out is not None else RUNS / recipe.name
    if info.is_main:
        recipe = prepare_run_dir(
            out,
            recipe,
            resume=resume,
            load=lambda data, where: recipe_from_dict(data, where=where),
            file="recipe.json",
            what="recipe",
            hint="resume with the same --recipe, --teacher and --data, or choose another --out",
        )
    if info.distributed:
        import torch.distributed as dist

        holder = [recipe.to_dict()]
        dist.broadcast_object_list(holder, src=0)
        recipe = recipe_from_dict(holder[0])
    return _Distiller(recipe, out, info, progress=progress).run(resume=resume, stop_after=stop_after)


class _Distiller:
    def __init__(self, recipe: Recipe, out: Path, info: DistInfo, *, progress: bool) -> None:
        r = self.recipe = recipe
        self.out, self.info, self.show = out, info, progress and info.is_main
        self.device = info.device
        self.amp = autocast_dtype(r.run.precision, info.device)
        if self.device.type == "cpu" and info.is_main:
            warn_if_threads_idle(log)
        # The embedded teacher is pretrained by rank 0 alone; the others then read the cached file.
        t0 = time.perf_counter()
        if info.is_main:
            self.teacher_path = resolve_teacher(r, progress=self.show)
        self.stages: dict[str, float] = {
            "teacher_pretraining": time.perf_counter() - t0
        }  # seconds per stage, this process
        barrier(info)
        if not info.is_main:
            self.teacher_path = resolve_teacher(r, progress=False)
        self.teacher = load_teacher(r, self.teacher_path).to(self.device)
        t_arch = self.teacher.arch
        self.teacher_grid, self.teacher_dim = tuple(t_arch.grid), t_arch.embed_dim
        self.spec = ClipSpec(frames=t_arch.num_frames, size=t_arch.img_size, fps=r.data.fps, frame_step=None)
        s = r.student
        if self.spec.frames % s.frames:
            raise ConfigError(
                f"student.frames={s.frames} does not divide the teacher's {self.spec.frames} frames",
                hint=f"choose a divisor of {self.spec.frames} (the student sees the same time span, subsampled)",
            )
        torch.manual_seed(r.run.seed)
        overrides = {k: v for k, v in (("patch_size", s.patch_size), ("tubelet_size", s.tubelet_size)) if v}
        self.student = create_student(s.name, frames=s.frames, size=s.size, **overrides)
        self.student_grid = tuple(self.student.grid)
        masked = r.loss.kind == "masked"
        head = DistillHead(
            self.student.embed_dim,
            self.teacher_dim,
            self.student_grid,
            projector=r.loss.projector,
            masked=masked,
            pred_dim=r.loss.pred_dim,
            pred_depth=r.loss.pred_depth,
            pred_heads=r.loss.pred_heads,
        )
        self.model = DistillModel(self.student, head).to(self.device)
        self.vjepa = student_model(self.student)  # what is saved: the student in load_vjepa's format
        self.trained = wrap_ddp(self.model, info) if info.distributed else self.model
        o = r.optim
        self.optimizer = torch.optim.AdamW(param_groups(self.model), lr=o.start_lr, betas=o.betas, eps=o.eps)
        self.dataset = open_source(
            r.data.source, spec=self.spec, train=True, seed=r.run.seed, augment=r.data.augment, length=r.data.clips
        )
        steps_per_epoch(len(self.dataset), r.data.batch_size, info.world_size)  # fails early under one batch
        self.stages["data_rendering"] = render_clips(self.dataset, enabled=self.show, info=info)
        self.cache = None
        self.cache_info: dict[str, Any] = {"enabled": r.cache.enabled}
        self.mask_gen = torch.Generator()

    # ------------------------------------------------------------------ teacher features

    @functools.cached_property
    def teacher_digest(self) -> str:
        """A hash of the teacher's weights: the key of its cached features (training clips and probe clips)."""
        from vjepa_edge.distill.cache import state_dict_digest

        return state_dict_digest(self.teacher.state_dict())

    @torch.no_grad()
    def encode(self, clip: Tensor) -> Tensor:
        with torch.autocast(self.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None):
            return self.teacher(clip.to(self.device))

    def prepare_cache(self) -> None:
        """Encode every (view, clip) once on rank 0 (or reuse the cache); every rank then reads it."""
        from vjepa_edge.distill.cache import (
            CachedTeacherDataset,
            CacheKey,
            FeatureCache,
            build_cache,
        )

        r = self.recipe
        root = Path(r.cache.dir).expanduser() if r.cache.dir else cache_root() / "features"
        key = CacheKey.for_dataset(
            self.dataset,
            teacher=self.teacher_digest,
            source=r.data.source,
            views=r.cache.views,
            grid=self.teacher_grid,
            dim=self.teacher_dim,
        )
        t0 = time.perf_counter()
        hit = False
        if self.info.is_main:
            cache = FeatureCache.open(root, key)
            hit = cache is not None
            if cache is None:
                total = key.num_items
                log.info("encoding %d clips x %d views with the teacher into %s", len(self.dataset), key.views, root)
                with task_bar("teacher features", total, enabled=self.show) as bar:
                    cache = build_cache(
                        self.encode,
                        self.dataset,
                        key,
                        root,
                        batch_size=max(self.recipe.data.batch_size, 16),
                        num_workers=r.data.num_workers,
                        progress=bar,
                    )
        barrier(self.info)
        self.cache = FeatureCache.open(root, key, verify=not self.info.is_main)
        if self.cache is None:
            raise TrainingError(f"the teacher-feature cache under {root} is incomplete after its build")
        self.dataset = CachedTeacherDataset(self.dataset, self.cache)
        self.cache_info = {
            "enabled": True,
            "path": str(self.cache.path),
            "bytes": self.cache.nbytes,
            "items": len(self.cache),
            "views": key.views,
            "reused": hit,
            "seconds": time.perf_counter() - t0,
        }
        log.info(
            "teacher-feature cache %s: %d items, %.1f MB (%s)",
            self.cache.path,
            len(self.cache),
            self.cache.nbytes / 1e6,
            "reused" if hit else "built",
        )

    # ------------------------------------------------------------------ one step

    def step(self, batch: dict[str, Any], step: int) -> dict[str, float]:
        r, o = self.recipe, self.recipe.optim
        lr = warmup_cosine(step, steps=o.steps, warmup=o.warmup_steps, start=o.start_lr, peak=o.lr, final=o.final_lr)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
            if group["apply_wd"]:
                group["weight_decay"] = o.weight_decay
        clip = batch["clip"].to(self.device, non_blocking=True)
        features = batch["teacher"].to(self.device) if "teacher" in batch else self.encode(clip)
        targets = teacher_targets(features, self.teacher_grid, self.student_grid, normalize=r.loss.normalize_targets)
        masks = None
        if r.loss.kind == "masked":
            self.mask_gen.manual_seed(r.run.seed * 1_000_003 + step * 4099 + self.info.rank)
            visible, hidden = tube_masks(clip.shape[0], self.student_grid, r.loss.mask_ratio, self.mask_gen)
            masks = (visible.to(self.device), hidden.to(self.device))
        student_in = adapt_clip(clip, r.student.frames, r.student.size)
        with torch.autocast(self.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None):
            predictions, index = self.trained(student_in, masks)
            loss = distill_loss(predictions, index, targets, r.loss.distance)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), o.clip_grad or float("inf"))
        self.optimizer.step()
        with torch.no_grad():
            matched = gather_tokens(targets, index) if index is not None else targets
            cosine = token_cosine(predictions.detach(), matched).mean().item()
        return {"loss": loss.item(), "grad_norm": float(grad_norm), "cosine": cosine, "lr": lr}

    # ------------------------------------------------------------------ the loop

    def run(self, *, resume: bool, stop_after: int | None) -> DistillResult:
        r, info = self.recipe, self.info
        total, start = r.optim.steps, 0
        if resume:
            found = list_checkpoints(self.out)
            if found:
                state = load_checkpoint(found[-1], model=self.vjepa, trained=self.trained, optimizer=self.optimizer)
                self.model.head.load_state_dict(state["head"], strict=True)
                start = int(state["step"])
                log.info("resumed %s at step %d of %d", self.out, start, total)
            if info.is_main:
                truncate_metrics(self.out / "metrics.jsonl", start)
        if info.is_main:
            write_json(
                self.out / "env.json",
                {
                    **environment(),
                    "world_size": info.world_size,
                    "amp": str(self.amp),
                    "teacher": str(self.teacher_path),
                },
            )
        if r.cache.enabled and start < total:
            t0 = time.perf_counter()
            self.prepare_cache()
            self.stages["feature_cache"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        step = self.train_loop(start, total, stop_after)
        elapsed = self.stages["training"] = time.perf_counter() - t0
        student = self.out / "student.safetensors"
        result = DistillResult(self.out, step, student, model=self.student)
        if step >= total:
            if info.is_main:
                shutil.copyfile(list_checkpoints(self.out)[-1].model, student)
                result.report = self.finish(step, start, elapsed)
            barrier(info)
        return result

    def train_loop(self, start: int, total: int, stop_after: int | None) -> int:
        """Train steps start.. up to `total` (or `stop_after`); returns the step reached."""
        r, info = self.recipe, self.info
        metrics = self.out / "metrics.jsonl"
        meter = Meter()
        end = total if stop_after is None else min(total, stop_after)
        bar = ProgressBar(
            "distill",
            total,
            start,
            enabled=self.show,
            stats=_stats,
            end=end,
            note=f"distilling {r.name}" if info.is_main else None,
            logger=log,
        )
        batches = StepBatches(
            self.dataset,
            batch_size=r.data.batch_size,
            num_workers=r.data.num_workers,
            seed=r.run.seed,
            rank=info.rank,
            world_size=info.world_size,
            collate=self._collate(),
            max_bad_fraction=r.data.max_bad_fraction,
        )
        last: dict[str, float] = {}
        step = start
        self.model.train()
        try:
            for step, epoch, batch in batches(start, end):
                values = self.step(batch, step)
                step += 1
                if any_across(info, not math.isfinite(values["loss"])):
                    raise TrainingError(
                        f"the loss became {values['loss']} at step {step}",
                        hint="lower optim.lr; resume from the last checkpoint with --resume",
                    )
                meter.add(batch["clip"].shape[0] * info.world_size, **values)
                if step % r.run.log_every == 0 or step == total or step == start + 1:
                    last = log_metrics(metrics, step, epoch, meter, info)
                    meter.reset()
                bar.update(step, last)
                if step % r.run.checkpoint_every == 0 or step == end:
                    self._save(step)
        finally:
            bar.close()
        self.health = batches.health
        return step

    def _collate(self):
        if self.cache is None:
            return collate_clips
        from vjepa_edge.distill.cache import collate_with_teacher

        return collate_with_teacher

    def _save(self, step: int) -> None:
        save_checkpoint(
            self.out,
            step,
            model=self.vjepa,
            arch=self.vjepa.arch,
            trained=self.trained,
            optimizer=self.optimizer,
            extra={"head": self.model.head.state_dict(), "world_size": self.info.world_size},
            info=self.info,
            keep=self.recipe.run.keep_checkpoints,
        )

    def finish(self, step: int, start: int, elapsed: float) -> dict[str, Any]:
        from vjepa_edge.distill.evaluate import evaluate

        self.model.eval()
        rows = [json.loads(ln) for ln in (self.out / "metrics.jsonl").read_text().splitlines() if ln.strip()]
        t0 = time.perf_counter()
        report = evaluate(self, progress=self.show)
        self.stages["evaluation"] = time.perf_counter() - t0
        report.update(
            {
                "recipe": self.recipe.name,
                "steps": step,
                "first_loss": rows[0]["loss"] if rows else None,
                "final_loss": rows[-1]["loss"] if rows else None,
                "train_clips_per_s": (step - start)
                * self.recipe.data.batch_size
                * self.info.world_size
                / max(elapsed, 1e-9),
                "train_seconds_this_process": elapsed,
                "world_size": self.info.world_size,
                "precision": "bf16" if self.amp else "fp32",
                "cache": self.cache_info,
                "stages": dict(self.stages),
                "torch_threads": torch.get_num_threads(),
                "teacher_path": str(self.teacher_path),
                "student_path": str(self.out / "student.safetensors"),
                "bad_videos": self.health.summary() if getattr(self, "health", None) is not None else None,
            }
        )
        write_json(self.out / "report.json", report)
        return report


def _stats(last: dict[str, float]) -> str:
    return f"loss {last['loss']:.4f}  cos {last['cosine']:.3f}  lr {last['lr']:.2e}  {last['clips_per_s']:.1f} clips/s"
