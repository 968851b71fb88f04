"""The training loop that pretraining (`teacher.train`) and distillation (`vjepa_edge.distill.train`) both run.

`Trainer.run` resumes from the last complete checkpoint (dropping the metrics logged after it), records the
environment in `env.json`, walks `StepBatches` under a progress bar, stops when the loss is not finite on any
rank, logs running means to `metrics.jsonl` every `log_every` steps, checkpoints every `checkpoint_every` steps
and at the end, times the training stage and, once every step is done, copies the last checkpoint's weights to
the run's final file and writes the report. A stage subclasses `Trainer` and supplies the step, the modules a
checkpoint holds and the report; the other hooks are optional.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from vjepa_edge.errors import TrainingError
from vjepa_edge.runinfo import autocast_dtype, environment, warn_if_threads_idle, write_json
from vjepa_edge.runs import RunDir
from vjepa_edge.train.distributed import DistInfo, any_across, barrier, setup
from vjepa_edge.train.loop import Meter, ProgressBar, StepBatches, log_metrics, truncate_metrics
from vjepa_edge.train.state import list_checkpoints, load_checkpoint, prepare_run_dir, save_checkpoint


@dataclass(frozen=True, kw_only=True, slots=True)
class LoopSpec:
    """What the loop needs from a stage's config: its length and cadence, its data order, and its names."""

    label: str  # the progress bar's label ("pretrain")
    note: str  # what the logged time-left note calls the run ("pretraining physics")
    weights: Literal["student", "teacher"]  # which of the run folder's (RunDir) final weights files
    nan_hint: str  # what to do when the loss stops being finite
    steps: int
    log_every: int
    checkpoint_every: int
    keep_checkpoints: int
    batch_size: int
    num_workers: int
    seed: int
    max_bad_fraction: float


@dataclass(frozen=True, slots=True)
class Checkpointed:
    """The modules a checkpoint holds: `model` in `load_vjepa`'s format (its `.arch` is recorded), `trained` the
    module the optimizer steps (DDP / FSDP2-wrapped under torchrun) and the optimizer."""

    model: nn.Module
    trained: nn.Module
    optimizer: torch.optim.Optimizer


def start_run(
    out: Path, config: Any, *, resume: bool, load: Callable[[dict[str, Any], str], Any], **run_dir: str
) -> tuple[DistInfo, Any]:
    """Join the torchrun process group (if any); rank 0 creates or checks run folder `out` (`prepare_run_dir`
    with `run_dir`'s file, what and hint); every rank then trains with rank 0's config. Returns (info, config)."""
    info = setup()
    if info.is_main:
        config = prepare_run_dir(out, config, resume=resume, load=load, **run_dir)
    if info.distributed:
        import torch.distributed as dist

        holder = [config.to_dict()]
        dist.broadcast_object_list(holder, src=0)
        config = load(holder[0], "rank 0's config")
    return info, config


class Trainer(ABC):
    """One training run in run folder `out`. Subclasses set `dataset` (and `logger`) in `__init__` and
    implement `step`, `checkpointed` and `report`; `run` does the rest."""

    logger: logging.Logger = logging.getLogger(__name__)
    dataset: Any

    def __init__(self, loop_spec: LoopSpec, out: str | Path, info: DistInfo, *, progress: bool, precision: str) -> None:
        self.loop_spec, self.out, self.info = loop_spec, Path(out), info
        self.show = progress and info.is_main  # rank 0 alone draws bars
        self.device = info.device
        self.amp = autocast_dtype(precision, info.device)
        if self.device.type == "cpu" and info.is_main:
            warn_if_threads_idle(self.logger)
        self.stages: dict[str, float] = {}  # seconds per stage, this process
        self.health: Any = None  # the bad-video tracker of the last loop

    # ------------------------------------------------------------------ hooks

    @abstractmethod
    def step(self, batch: Any, step: int) -> dict[str, float]:
        """Train one step; returns the values to log (with "loss")."""

    @abstractmethod
    def checkpointed(self) -> Checkpointed:
        """The modules checkpoints save and restore."""

    @abstractmethod
    def report(self, *, step: int, start: int, elapsed: float) -> dict[str, Any]:
        """Rank 0, after the last step: the report (written to the run folder)."""

    # ------------------------------------------------------------------ optional hooks (defaults do nothing)

    def train_step(self, batch: dict[str, Any], step: int) -> dict[str, float]:
        """One step on a loader batch (a stage whose `step` takes something else unpacks it here)."""
        return self.step(batch, step)

    def extra_state(self) -> dict[str, Any]:
        """Loop state saved beside the optimizer (plain data and tensors), given back to `restore`."""
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        """Take back the state of the checkpoint a run resumes from."""
        return None

    def env(self) -> dict[str, Any]:
        """Entries `env.json` records beside the environment."""
        return {}

    def before_loop(self, start: int) -> None:
        """Work between resuming and the first step (a feature cache, say)."""
        return None

    def collate(self) -> Callable[[list[dict[str, Any]]], Any] | None:
        """The loader's collate function (None: the loader's default)."""
        return None

    def on_log(self, row: dict[str, float]) -> None:
        """A metrics row was logged (the values averaged over every process)."""
        return None

    def stats(self, last: dict[str, float]) -> str:
        """The progress bar's text for the last logged row."""
        return ""

    # ------------------------------------------------------------------ the run

    @property
    def metrics(self) -> Path:
        return RunDir(self.out).metrics

    @property
    def weights(self) -> Path:
        return getattr(RunDir(self.out), self.loop_spec.weights)

    def run(self, *, resume: bool, stop_after: int | None) -> tuple[int, dict[str, Any]]:
        """Train (or resume) up to the last step, or `stop_after`; returns the step reached and the report
        (empty before the last step and on ranks other than 0)."""
        start = self.resume() if resume else 0
        if self.info.is_main:
            env = {**environment(), "world_size": self.info.world_size, "amp": str(self.amp), **self.env()}
            write_json(RunDir(self.out).env, env)
        self.before_loop(start)
        t0 = time.perf_counter()
        step = self.loop(start, stop_after)
        elapsed = self.stages["training"] = time.perf_counter() - t0
        report: dict[str, Any] = {}
        if step >= self.loop_spec.steps:
            if self.info.is_main:
                shutil.copyfile(list_checkpoints(self.out)[-1].model, self.weights)
                report = self.report(step=step, start=start, elapsed=elapsed)
            barrier(self.info)  # the other ranks wait for rank 0's report (evaluation can take a while)
        return step, report

    def resume(self) -> int:
        """Load the last complete checkpoint, if any, and drop the rows logged after it; returns its step."""
        start = 0
        found = list_checkpoints(self.out)
        if found:
            parts = self.checkpointed()
            state = load_checkpoint(found[-1], model=parts.model, trained=parts.trained, optimizer=parts.optimizer)
            start = int(state["step"])
            self.restore(state)
            self.logger.info("resumed %s at step %d of %d", self.out, start, self.loop_spec.steps)
        if self.info.is_main:
            truncate_metrics(self.metrics, start)  # those steps are about to be redone
        return start

    def loop(self, start: int, stop_after: int | None) -> int:
        """Train steps `start`.. up to the last (or `stop_after`); returns the step reached."""
        s, info = self.loop_spec, self.info
        end = s.steps if stop_after is None else min(s.steps, stop_after)
        note = s.note if info.is_main else None
        bar = ProgressBar(
            s.label, s.steps, start, enabled=self.show, stats=self.stats, end=end, note=note, logger=self.logger
        )
        batches = self.batches()
        meter, last, step = Meter(), {}, start
        try:
            for step, epoch, batch in batches(start, end):
                values = self.train_step(batch, step)
                step += 1
                self.check_finite(values["loss"], step)
                meter.add(batch["clip"].shape[0] * info.world_size, **values)
                if step % s.log_every == 0 or step == s.steps or step == start + 1:
                    last = log_metrics(self.metrics, step, epoch, meter, info)
                    self.on_log(last)
                    meter.reset()
                bar.update(step, last)
                if step % s.checkpoint_every == 0 or step == end:
                    self.save(step)
        finally:
            bar.close()
        self.health = batches.health
        return step

    def batches(self) -> StepBatches:
        s, info = self.loop_spec, self.info
        return StepBatches(
            self.dataset,
            batch_size=s.batch_size,
            num_workers=s.num_workers,
            seed=s.seed,
            rank=info.rank,
            world_size=info.world_size,
            collate=self.collate(),
            max_bad_fraction=s.max_bad_fraction,
        )

    def check_finite(self, loss: float, step: int) -> None:
        # Every rank takes part, so that all of them stop together instead of one waiting in a collective.
        if any_across(self.info, not math.isfinite(loss)):
            raise TrainingError(f"the loss became {loss} at step {step}", hint=self.loop_spec.nan_hint)

    def save(self, step: int) -> None:
        """Write checkpoint `step` (collective: every rank calls it)."""
        parts = self.checkpointed()
        save_checkpoint(
            self.out,
            step,
            model=parts.model,
            arch=parts.model.arch,
            trained=parts.trained,
            optimizer=parts.optimizer,
            extra={**self.extra_state(), "world_size": self.info.world_size},
            info=self.info,
            keep=self.loop_spec.keep_checkpoints,
        )
