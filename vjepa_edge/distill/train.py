"""The distillation loop: a small student learns to produce the teacher's latent features.

One step: the clip (at the teacher's input) gives the teacher's tokens (from the feature cache, or the teacher
run online), resampled to the student's token grid and LayerNorm'ed; the student sees the same clip resampled
to its own input (`student.input_spec.adapt`); its tokens, through the projector (and the predictor for masked
distillation), regress the teacher's. AdamW with warmup and cosine, bf16 autocast where the hardware has it,
gradient clipping. Everything a step depends on is a function of (recipe, step), so `--resume` after a kill
ends with the weights of an uninterrupted run. The loop itself (resume, logging, checkpoints) is the shared
`vjepa_edge.train.skeleton.Trainer`. A recipe's teacher is a file or a registered teacher source
(`vjepa_edge.distill.teachers`: `embedded` is pretrained by the `teacher` package on first use). At the end
the student is evaluated on held-out clips (`vjepa_edge.distill.evaluate`) and the run folder gets
`student.safetensors` and `report.json`.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vjepa_edge.data.config import ClipSpec
from vjepa_edge.data.loader import collate_clips, steps_per_epoch
from vjepa_edge.data.sources import open_source
from vjepa_edge.distill.losses import (
    DistillHead,
    DistillModel,
    causal_masks,
    distill_loss,
    teacher_targets,
    token_cosine,
    tube_masks,
)
from vjepa_edge.distill.recipe import Recipe, recipe_from_dict
from vjepa_edge.distill.teachers import get_teacher_source
from vjepa_edge.distill.validate import validate_recipe
from vjepa_edge.errors import ConfigError, TrainingError
from vjepa_edge.models.checkpoint import load_vjepa
from vjepa_edge.models.students import create_student
from vjepa_edge.models.vit import gather_tokens
from vjepa_edge.models.vjepa import student_model
from vjepa_edge.runinfo import cache_root, write_json
from vjepa_edge.runs import RunDir
from vjepa_edge.train.distributed import DistInfo, barrier, wrap_ddp
from vjepa_edge.train.loop import adamw, read_metrics, render_clips, task_bar, warmup_cosine
from vjepa_edge.train.skeleton import Checkpointed, LoopSpec, Trainer, start_run

log = logging.getLogger(__name__)

RUNS = Path("runs") / "distill"


@dataclass
class DistillResult:
    run_dir: Path
    steps: int
    student: Path
    report: dict[str, Any] = field(default_factory=dict)
    model: nn.Module | None = None  # this process's live student


def resolve_teacher(recipe: Recipe, *, progress: bool) -> Path:
    """The teacher file: the registered teacher source the recipe names (`embedded`: pretrained and cached on
    first use), else the recipe's path."""
    t = recipe.teacher
    if t.source is not None:
        return get_teacher_source(t.source).path(progress=progress)
    return Path(t.path).expanduser()


def load_teacher(recipe: Recipe, path: Path) -> nn.Module:
    """The frozen encoder that distils: the file's EMA target encoder when it has one (`part = "auto"`)."""
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
    deploy: bool = False,
) -> DistillResult:
    """Distill (or resume distilling) `recipe` into run folder `out` (default runs/distill/NAME); with `deploy`, then
    run the recipe's deploy stages on it (`vjepa_edge.distill.deploy`: quantize, export, profile, eval, report).
    `stop_after` ends this process's work at that step after a checkpoint, as if killed (tests)."""
    out = Path(out) if out is not None else RUNS / recipe.name
    validate_recipe(recipe, out=out, deploy=deploy)  # every problem at once, before anything is written or computed
    info, recipe = start_run(
        out,
        recipe,
        resume=resume,
        load=lambda data, where: recipe_from_dict(data, where=where),
        file=RunDir(out).recipe.name,
        what="recipe",
        hint="resume with the same --recipe, --teacher and --data, or choose another --out",
    )
    d = _Distiller(recipe, out, info, progress=progress)
    steps, report = d.run(resume=resume, stop_after=stop_after)
    if deploy and report and info.is_main and steps >= recipe.optim.steps:
        from vjepa_edge.distill.deploy import deploy as run_deploy

        report = {**report, "deploy": run_deploy(out, recipe, progress=progress).to_dict()}
    return DistillResult(out, steps, d.weights, report=report, model=d.student)


def loop_spec(r: Recipe) -> LoopSpec:
    return LoopSpec(
        label="distill",
        note=f"distilling {r.name}",
        weights="student",
        nan_hint="lower optim.lr; resume from the last checkpoint with --resume",
        steps=r.optim.steps,
        log_every=r.run.log_every,
        checkpoint_every=r.run.checkpoint_every,
        keep_checkpoints=r.run.keep_checkpoints,
        batch_size=r.data.batch_size,
        num_workers=r.data.num_workers,
        seed=r.run.seed,
        max_bad_fraction=r.data.max_bad_fraction,
    )


class _Distiller(Trainer):
    logger = log

    def __init__(self, recipe: Recipe, out: str | Path, info: DistInfo, *, progress: bool) -> None:
        r = self.recipe = recipe
        super().__init__(loop_spec(r), out, info, progress=progress, precision=r.run.precision)
        self._load_teacher()
        torch.manual_seed(r.run.seed)
        self._build_student()
        o = r.optim
        self.optimizer = adamw(self.model, lr=o.start_lr, betas=o.betas, eps=o.eps)
        self.dataset = open_source(
            r.data.source, spec=self.spec, train=True, seed=r.run.seed, augment=r.data.augment, length=r.data.clips
        )
        steps_per_epoch(len(self.dataset), r.data.batch_size, info.world_size)  # fails early under one batch
        self.stages["data_rendering"] = render_clips(self.dataset, enabled=self.show, info=info)
        self.cache = None
        self.cache_info: dict[str, Any] = {"enabled": r.cache.enabled}
        self.mask_gen = torch.Generator()

    def _load_teacher(self) -> None:
        """The frozen teacher on this device, and the clips it takes (the training clips)."""
        r, info = self.recipe, self.info
        # The embedded teacher is pretrained by rank 0 alone; the others then read the cached file.
        t0 = time.perf_counter()
        if info.is_main:
            self.teacher_path = resolve_teacher(r, progress=self.show)
        self.stages["teacher_pretraining"] = time.perf_counter() - t0
        barrier(info)
        if not info.is_main:
            self.teacher_path = resolve_teacher(r, progress=False)
        self.teacher = load_teacher(r, self.teacher_path).to(self.device)
        t_arch = self.teacher.arch
        self.teacher_grid, self.teacher_dim = tuple(t_arch.grid), t_arch.embed_dim
        self.spec = ClipSpec(frames=t_arch.num_frames, size=t_arch.img_size, fps=r.data.fps, frame_step=None)

    def _build_student(self) -> None:
        """The student, its distillation head and the module the optimizer steps (DDP-wrapped under torchrun)."""
        r, s = self.recipe, self.recipe.student
        if self.spec.frames % s.frames:
            raise ConfigError(
                f"student.frames={s.frames} does not divide the teacher's {self.spec.frames} frames",
                hint=f"choose a divisor of {self.spec.frames} (the student sees the same time span, subsampled)",
            )
        overrides = {k: v for k, v in (("patch_size", s.patch_size), ("tubelet_size", s.tubelet_size)) if v}
        self.student = create_student(s.name, frames=s.frames, size=s.size, **overrides)
        # From here on the student's input is the student's own contract, never the recipe's numbers.
        self.student_input = self.student.input_spec
        self.student_grid = tuple(self.student.grid)
        head = DistillHead(
            self.student.embed_dim,
            self.teacher_dim,
            self.student_grid,
            projector=r.loss.projector,
            masked=r.loss.kind == "masked",
            pred_dim=r.loss.pred_dim,
            pred_depth=r.loss.pred_depth,
            pred_heads=r.loss.pred_heads,
        )
        self.model = DistillModel(self.student, head).to(self.device)
        self.vjepa = student_model(self.student)  # what is saved: the student in load_vjepa's format
        self.trained = wrap_ddp(self.model, self.info) if self.info.distributed else self.model

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
            if r.loss.causal_fraction and torch.rand(1, generator=self.mask_gen).item() < r.loss.causal_fraction:
                visible, hidden = causal_masks(clip.shape[0], self.student_grid)
            else:
                visible, hidden = tube_masks(clip.shape[0], self.student_grid, r.loss.mask_ratio, self.mask_gen)
            masks = (visible.to(self.device), hidden.to(self.device))
        student_in = self.student_input.adapt(clip)
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

    # ------------------------------------------------------------------ the loop's hooks

    def checkpointed(self) -> Checkpointed:
        return Checkpointed(self.vjepa, self.trained, self.optimizer)

    def extra_state(self) -> dict[str, Any]:
        return {"head": self.model.head.state_dict()}

    def restore(self, state: dict[str, Any]) -> None:
        self.model.head.load_state_dict(state["head"], strict=True)

    def env(self) -> dict[str, Any]:
        return {"teacher": str(self.teacher_path)}

    def before_loop(self, start: int) -> None:
        if self.recipe.cache.enabled and start < self.recipe.optim.steps:
            t0 = time.perf_counter()
            self.prepare_cache()
            self.stages["feature_cache"] = time.perf_counter() - t0
        self.model.train()

    def collate(self):
        if self.cache is None:
            return collate_clips
        from vjepa_edge.distill.cache import collate_with_teacher

        return collate_with_teacher

    def stats(self, last: dict[str, float]) -> str:
        return (
            f"loss {last['loss']:.4f}  cos {last['cosine']:.3f}  lr {last['lr']:.2e}  {last['clips_per_s']:.1f} clips/s"
        )

    def report(self, *, step: int, start: int, elapsed: float) -> dict[str, Any]:
        """The held-out evaluation (`vjepa_edge.distill.evaluate`) and the run's figures, in report.json."""
        from vjepa_edge.distill.evaluate import evaluate

        self.model.eval()
        rows = read_metrics(self.metrics)
        t0 = time.perf_counter()
        report = evaluate(self, progress=self.show)
        self.stages["evaluation"] = time.perf_counter() - t0
        batch, world = self.recipe.data.batch_size, self.info.world_size
        report.update(
            {
                "recipe": self.recipe.name,
                "steps": step,
                "first_loss": rows[0]["loss"] if rows else None,
                "final_loss": rows[-1]["loss"] if rows else None,
                "train_clips_per_s": (step - start) * batch * world / max(elapsed, 1e-9),
                "train_seconds_this_process": elapsed,
                "world_size": world,
                "precision": "bf16" if self.amp else "fp32",
                "cache": self.cache_info,
                "stages": dict(self.stages),
                "torch_threads": torch.get_num_threads(),
                "teacher_path": str(self.teacher_path),
                "student_path": str(self.weights),
                "bad_videos": self.health.summary() if self.health is not None else None,
            }
        )
        write_json(RunDir(self.out).report, report)
        return report
