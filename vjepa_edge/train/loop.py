"""The pieces of a training loop that pretraining and distillation share: AdamW parameter groups, running
means between log lines, the rich progress bar (rank 0), step-indexed batches, and metrics.jsonl (written,
read, trimmed on resume). The loop that puts them together is `vjepa_edge.train.skeleton.Trainer`."""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn


def param_groups(module: nn.Module) -> list[dict[str, Any]]:
    """V-JEPA's groups: weight decay on weight matrices only, never on biases and 1-D parameters."""
    decay, no_decay = [], []
    for name, p in module.named_parameters():
        if p.requires_grad:
            (no_decay if name.endswith("bias") or p.ndim == 1 else decay).append(p)
    return [{"params": decay, "apply_wd": True}, {"params": no_decay, "apply_wd": False, "weight_decay": 0.0}]


def adamw(module: nn.Module, *, lr: float, betas: tuple[float, float], eps: float) -> torch.optim.AdamW:
    """AdamW over `param_groups(module)` with the fused kernel: one pass over each parameter instead of torch's
    per-tensor loop of a dozen ops (on 2 CPU cores, the update of 29 M parameters alone takes 20 ms against 150, and
    the embedded teacher's whole step is 3-4% faster: `bench/adamw_step.py`). Under AVX2 it gives the per-tensor
    loop's weights bit for bit (the embedded teacher's 360 steps came out the same); with AVX-512 the last bits can
    differ."""
    return torch.optim.AdamW(param_groups(module), lr=lr, betas=betas, eps=eps, fused=True)


class Meter:
    """Running means between log lines, and the throughput of the steps taken in this process."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, float] = {}
        self.n = 0
        self.clips = 0
        self.t0 = time.perf_counter()

    def add(self, clips: int, **values: float) -> None:
        self.n += 1
        self.clips += clips
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + v

    def means(self) -> dict[str, float]:
        return {k: v / max(1, self.n) for k, v in self.sums.items()}

    def rate(self) -> float:
        return self.clips / max(1e-9, time.perf_counter() - self.t0)


class TimeLeft:
    """The time a loop has left, from the rate measured on this machine: steps after the first few (which pay
    for allocations and warm-up) are timed, and `note(step)` logs the estimate once, `after` steps in."""

    def __init__(self, label: str, start: int, end: int, *, skip: int = 2, after: int = 8) -> None:
        self.label, self.end, self.skip, self.after = label, end, skip, after
        self.first = start + skip
        self.t_first: float | None = None
        self.noted = False

    def seconds(self, step: int) -> float | None:
        """Seconds left after `step`, or None before any step was timed."""
        if step == self.first:
            self.t_first = time.perf_counter()
        if self.t_first is None or step <= self.first:
            return None
        per_step = (time.perf_counter() - self.t_first) / (step - self.first)
        return per_step * (self.end - step)

    def note(self, step: int, logger: Any) -> None:
        left = self.seconds(step)
        if left is None or self.noted or step < self.first + self.after:
            return
        self.noted = True
        logger.warning(
            "%s: %s left, measured on this machine (%d steps to go)", self.label, fmt_time(left), self.end - step
        )


def fmt_time(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def log_metrics(path: Path, step: int, epoch: int, meter: Meter, info: Any) -> dict[str, float]:
    """The meter's means averaged over every process, as one `metrics.jsonl` row (written by rank 0, with a
    non-finite value as null so that the file stays JSON; the returned row keeps the floats)."""
    from vjepa_edge.runinfo import json_line
    from vjepa_edge.train.distributed import mean_across

    means = meter.means()
    keys = sorted(means)
    reduced = dict(zip(keys, mean_across(info, [means[k] for k in keys]), strict=True))
    row = {"step": step, "epoch": epoch, **reduced, "clips_per_s": meter.rate(), "time": time.time()}
    if info.is_main:
        with path.open("a") as f:
            f.write(json_line(row) + "\n")
    return row


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The rows of a `metrics.jsonl`, in order."""
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def truncate_metrics(path: Path, step: int) -> None:
    """Drop the lines logged after the checkpoint a run resumes from (they are about to be redone)."""
    if not path.exists():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= step]
    path.write_text("".join(ln + "\n" for ln in keep))


class ProgressBar:
    """A rich progress bar (stderr, rank 0) over steps, with `stats(last_logged_row)` and the time left from
    the rate measured on this machine (`TimeLeft`), which is also logged once as a note when `note` is set."""

    def __init__(
        self,
        label: str,
        total: int,
        start: int,
        *,
        enabled: bool,
        stats: Callable[[dict[str, float]], str] | None = None,
        end: int | None = None,
        note: str | None = None,
        logger: Any = None,
    ) -> None:
        self.progress = None
        self.stats = stats
        self.left = TimeLeft(note or label, start, total if end is None else end)
        self.note, self.logger = note, logger
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.progress = Progress(
            TextColumn(f"[bold]{label}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("steps"),
            TextColumn("{task.fields[left]}"),
            TextColumn("{task.fields[stats]}"),
            console=Console(stderr=True),
        )
        self.progress.start()
        self.task = self.progress.add_task(label, total=total, completed=start, stats="", left="")

    def update(self, step: int, last: dict[str, float]) -> None:
        left = self.left.seconds(step)
        if self.note and self.logger is not None:
            self.left.note(step, self.logger)
        if self.progress is None:
            return
        text = self.stats(last) if last and self.stats is not None else ""
        shown = f"{fmt_time(left)} left" if left is not None else "timing..."
        self.progress.update(self.task, completed=step, stats=text, left=shown)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


@contextlib.contextmanager
def task_bar(label: str, total: int, *, enabled: bool, unit: str = "clips") -> Iterator[Callable[..., None] | None]:
    """A rich progress bar (stderr) for one long task; yields the `progress(advance=n)` callback, or None."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task(label, total=total)

        def advance(advance: int = 1) -> None:
            bar.update(task, advance=advance)

        yield advance


def render_clips(dataset: Any, *, enabled: bool, info: Any = None) -> float:
    """Render a physics dataset's clips once into the shared store, with a progress bar (other sources read
    their files as they go and pass through); under torchrun rank 0 renders and the others then open the
    store. Returns the seconds it took."""
    if getattr(dataset, "render", None) is None or dataset.store is not None:
        return 0.0
    from vjepa_edge.train.distributed import barrier

    main = info is None or info.is_main
    t0 = time.perf_counter()
    if main:
        # A bar only when there is something to render (a stored stream is opened at once).
        with task_bar("render clips", len(dataset), enabled=enabled and not dataset.rendered()) as bar:
            dataset.render(progress=bar)
    if info is not None:
        barrier(info)
    if not main:
        dataset.render()
    return time.perf_counter() - t0


def warmup_cosine(step: int, *, steps: int, warmup: int, start: float, peak: float, final: float) -> float:
    """Linear warmup from `start` to `peak` over `warmup` steps, then cosine from `peak` to `final`."""
    if step < warmup:
        return start + (peak - start) * step / max(1, warmup)
    progress = (step - warmup) / max(1, steps - warmup)
    return final + 0.5 * (peak - final) * (1 + math.cos(math.pi * min(1.0, progress)))


class StepBatches:
    """The batches of steps `start`..`end` as a pure function of (seed, step), epoch after epoch.

    Each epoch gets a `StepBatchSampler` (a permutation drawn from (seed, epoch), this rank's slice of every
    global batch) starting at the step's offset in it, so a run resumed at any step sees the batches an
    uninterrupted run would. `health` is the bad-video tracker shared by the epochs.
    """

    def __init__(
        self,
        dataset: Any,
        *,
        batch_size: int,
        num_workers: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        collate: Callable[[list[dict[str, Any]]], Any] | None = None,
        max_bad_fraction: float = 0.05,
    ) -> None:
        from vjepa_edge.data.loader import steps_per_epoch

        self.dataset, self.batch_size, self.num_workers, self.seed = dataset, batch_size, num_workers, seed
        self.rank, self.world_size, self.collate, self.max_bad_fraction = rank, world_size, collate, max_bad_fraction
        self.steps_per_epoch = steps_per_epoch(len(dataset), batch_size, world_size)
        self.health = None

    def __call__(self, start: int, end: int) -> Iterator[tuple[int, int, Any]]:
        """Yields (step, epoch, batch) for step = start, ..., end - 1."""
        from vjepa_edge.data.loader import ClipLoader, StepBatchSampler

        step = start
        while step < end:
            epoch, offset = divmod(step, self.steps_per_epoch)
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(epoch)
            sampler = StepBatchSampler(
                len(self.dataset),
                self.batch_size,
                seed=self.seed,
                epoch=epoch,
                start=offset,
                rank=self.rank,
                world_size=self.world_size,
            )
            loader = ClipLoader(
                self.dataset,
                batch_size=self.batch_size,
                num_workers=self.num_workers,
                batch_sampler=sampler,
                collate=self.collate,
                health=self.health,
                max_bad_fraction=self.max_bad_fraction,
            )
            self.health = loader.health
            for batch in loader:
                yield step, epoch, batch
                step += 1
                if step >= end:
                    return
