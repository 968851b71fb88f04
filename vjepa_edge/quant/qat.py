"""`--qat`: a short fine-tune of the student with fake quantization, continuing its distillation loss, then convert.

What it reads, all from the distill run folder, so that it costs no teacher forward pass: the recipe (data,
loss distance, target normalisation, seed), the teacher-feature cache the run trained on (found through
report.json, checked against the key of the dataset rebuilt from the recipe), and the distillation head of the
run's last checkpoint (its projector maps student tokens to the teacher's width). The scheme's own QAT path
makes the trainable model (`SchemeImpl.prepare_qat`: `prepare_qat_pt2e` with the quantizer's QAT config, or
torchao's QAT), and `convert_qat` turns it into the same kind of program post-training quantization makes.

The loss is the run's distance between the projected student tokens and the teacher's (resampled to the
student's grid, LayerNorm'ed as in training) on every token: the deployed encoder sees whole clips, so the
fine-tune trains what ships, not the masked-prediction path. AdamW at a small learning rate with a short warmup
and a cosine decay; the projector trains too.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vjepa_edge.config import check_count, check_number
from vjepa_edge.errors import ConfigError
from vjepa_edge.quant.base import QuantizedModel, SchemeImpl
from vjepa_edge.runs import RunDir

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class QatOptions:
    steps: int = 60
    lr: float = 2e-5
    warmup_steps: int = 5
    batch_size: int = 0  # 0: the recipe's batch size

    def problems(self) -> list[str]:
        p: list[str] = []
        check_count("--qat-steps", self.steps, p, maximum=1_000_000)
        check_number("--qat-lr", self.lr, p, maximum=1.0)
        check_count("--qat-warmup", self.warmup_steps, p, minimum=0, maximum=1_000_000)
        check_count("--qat-batch-size", self.batch_size, p, minimum=0, maximum=100_000)
        return p


@dataclass
class QatSources:
    """What the fine-tune reads from a distill run: the clips with their cached teacher features, the projector,
    and the recipe's loss settings."""

    dataset: Any  # CachedTeacherDataset
    projector: nn.Module
    teacher_grid: tuple[int, int, int]
    distance: str
    normalize: bool
    batch_size: int
    seed: int
    cache_path: Path


def qat_sources(run: RunDir | None, student: nn.Module) -> QatSources:
    """Everything `--qat` needs from the run folder, or one error that says what is missing (checked before any
    compute)."""
    from vjepa_edge.distill.cache import CachedTeacherDataset, CacheKey, FeatureCache
    from vjepa_edge.distill.head import head_problems, load_head, run_recipe

    hint = "run --qat on a distill run folder whose teacher-feature cache still exists, or quantize without --qat"
    if run is None or not run.report.is_file() or not run.recipe.is_file():
        raise ConfigError("--qat continues a distillation: it needs the distill run folder, not a bare file", hint=hint)
    recipe = run_recipe(run)
    cache_info = json.loads(run.report.read_text()).get("cache") or {}
    if not cache_info.get("path"):
        raise ConfigError(f"{run.root} trained without a teacher-feature cache ([cache] enabled = false)", hint=hint)
    path = Path(cache_info["path"])
    try:
        manifest = json.loads((path / "manifest.json").read_text())
        stored = CacheKey.from_dict(manifest["key"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"the run's teacher-feature cache {path} is missing or unreadable ({e})", hint=hint) from None
    problems = head_problems(run, what="--qat")
    if problems:
        raise ConfigError(problems[0], hint=hint)

    from vjepa_edge.data.config import ClipSpec
    from vjepa_edge.data.sources import open_source

    spec = ClipSpec(**{"frame_step": None, "fps": None, **stored.clip})  # the key leaves out fields that are None
    r = recipe
    dataset = open_source(
        r.data.source, spec=spec, train=True, seed=r.run.seed, augment=r.data.augment, length=r.data.clips
    )
    key = CacheKey.for_dataset(
        dataset, teacher=stored.teacher, source=r.data.source, views=stored.views, grid=stored.grid, dim=stored.dim
    )
    cache = FeatureCache.open(path.parent, key)  # checks the key (same clips) and every shard's checksum
    if cache is None:
        raise ConfigError(f"the run's teacher-feature cache {path} is incomplete", hint=hint)

    head = load_head(run, student, teacher_dim=stored.dim)
    return QatSources(
        dataset=CachedTeacherDataset(dataset, cache),
        projector=head.projector,
        teacher_grid=tuple(stored.grid),
        distance=r.loss.distance,
        normalize=r.loss.normalize_targets,
        batch_size=r.data.batch_size,
        seed=r.run.seed,
        cache_path=cache.path,
    )


def qat_finetune(
    impl: SchemeImpl,
    student: nn.Module,
    sources: QatSources,
    options: QatOptions,
    *,
    keep_float: tuple[str, ...] | list[str] = (),
    progress: Any = None,
) -> tuple[QuantizedModel, dict[str, Any]]:
    """Fine-tune a fake-quantized copy of `student` for `options.steps` steps, then convert it; returns the
    program and the fine-tune's figures (first and last loss and cosine, seconds)."""
    from torch.utils.data import DataLoader

    from vjepa_edge.distill.cache import collate_with_teacher
    from vjepa_edge.distill.losses import distill_loss, teacher_targets, token_cosine
    from vjepa_edge.train.loop import render_clips, warmup_cosine

    render_clips(sources.dataset.dataset, enabled=False)
    spec = student.input_spec
    grid = tuple(student.grid)
    torch.manual_seed(sources.seed)
    prepared = impl.prepare_qat(student, keep_float=tuple(keep_float))
    projector = sources.projector.train()
    params = [p for p in prepared.parameters() if p.requires_grad] + list(projector.parameters())
    optimizer = torch.optim.AdamW(params, lr=options.lr, weight_decay=0.0)
    batch = options.batch_size or sources.batch_size
    loader = DataLoader(
        sources.dataset,
        batch_size=batch,
        shuffle=True,
        drop_last=True,
        collate_fn=collate_with_teacher,
        generator=torch.Generator().manual_seed(sources.seed + 7),
    )
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    step = 0
    prepared.train()
    while step < options.steps:
        for item in loader:
            if step >= options.steps:
                break
            lr = warmup_cosine(
                step,
                steps=options.steps,
                warmup=options.warmup_steps,
                start=options.lr / 10,
                peak=options.lr,
                final=0.0,
            )
            for g in optimizer.param_groups:
                g["lr"] = lr
            targets = teacher_targets(item["teacher"].float(), sources.teacher_grid, grid, normalize=sources.normalize)
            predictions = projector(prepared(spec.adapt(item["clip"])))
            loss = distill_loss(predictions, None, targets, sources.distance)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            with torch.no_grad():
                cos = token_cosine(predictions.detach(), targets).mean().item()
            history.append({"step": step, "loss": loss.item(), "cosine": cos, "lr": lr})
            step += 1
            if progress is not None:
                progress(1)
    seconds = time.perf_counter() - t0
    program = impl.convert_qat(prepared)
    first, last = history[0], history[-1]
    log.info("QAT: %d steps in %.0f s, loss %.4f -> %.4f", len(history), seconds, first["loss"], last["loss"])
    figures = {
        "steps": len(history),
        "lr": options.lr,
        "batch_size": batch,
        "seconds": seconds,
        "first_loss": first["loss"],
        "final_loss": last["loss"],
        "first_cosine": first["cosine"],
        "final_cosine": last["cosine"],
        "cache": str(sources.cache_path),
        "history": history,
    }
    return program, figures
