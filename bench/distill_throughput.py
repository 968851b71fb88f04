"""Distillation throughput: training clips/s of the step alone and of the real loop with the teacher-feature
cache, against the loop with the teacher run online.

Measured side by side in one run (shared machines are noisy): rounds alternate between the three modes on the
same recipe, student, batches and precision, and the table gives the median of each and its ratio to the
step alone. The physics clips are rendered into the memory-mapped store and the cache is built before any
round (the build rate is printed), so neither is counted in a round.
- `cached step alone`: `_Distiller.step` repeated on one batch already on the device (clip and cached teacher
  features, collated once): the student's forward and backward and AdamW, nothing else;
- `cached loop`: the real loop's data path: a loader reading the rendered clips (augmentation) and the
  teacher's tokens from the memory-mapped fp16 cache, then the same step;
- `online teacher`: the loader reads the rendered clips and every step runs the teacher forward before the
  student's forward and backward.
`cached loop` over `cached step alone` shows what data costs; `cached loop` over `online teacher` is the
cache's speed-up. The teacher is the recipe's architecture with random weights unless it is already cached
(speed does not depend on the weights), so the bench never pretrains one.

    uv run python bench/distill_throughput.py                  # the vit_s recipe
    uv run python bench/distill_throughput.py --recipe vit_t --steps 8 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from vjepa_edge.data.loader import ClipLoader, StepBatchSampler, collate_clips
from vjepa_edge.distill.cache import collate_with_teacher
from vjepa_edge.distill.recipe import load_recipe
from vjepa_edge.distill.train import _Distiller
from vjepa_edge.runinfo import autocast_dtype, machine_line
from vjepa_edge.train.distributed import DistInfo
from vjepa_edge.train.loop import render_clips


def embedded_teacher_or_random(tmp: Path) -> Path:
    from teacher.embedded import embedded_config, embedded_teacher_path
    from vjepa_edge.models.checkpoint import save_vjepa
    from vjepa_edge.models.vjepa import VJEPA

    path = embedded_teacher_path()
    if path.is_file():
        return path
    return save_vjepa(VJEPA(embedded_config().arch()), tmp / "random_teacher.safetensors")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_loader(d: _Distiller, loader: ClipLoader, steps: int, start: int) -> float:
    """Clips/s over `steps` training steps (data loading included), after one untimed warm-up step."""
    it = iter(loader)
    d.step(next(it), start)
    _sync(d.device)
    t, clips = time.perf_counter(), 0
    for i in range(steps):
        batch = next(it)
        d.step(batch, start + 1 + i)
        clips += batch["clip"].shape[0]
    _sync(d.device)
    return clips / (time.perf_counter() - t)


def time_batch(d: _Distiller, batch: dict[str, Any], steps: int, start: int) -> float:
    """Clips/s of `steps` training steps on the same in-memory batch, after one untimed warm-up step."""
    d.step(batch, start)
    _sync(d.device)
    t = time.perf_counter()
    for i in range(steps):
        d.step(batch, start + 1 + i)
    _sync(d.device)
    return batch["clip"].shape[0] * steps / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="vit_s")
    ap.add_argument("--steps", type=int, default=6, help="timed steps per round")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if args.steps < 1 or args.rounds < 1:
        ap.error(f"--steps and --rounds must be at least 1, got {args.steps} and {args.rounds}")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        base = load_recipe(args.recipe)
        teacher = base.teacher.path if not base.teacher.embedded else str(embedded_teacher_or_random(tmp))
        batch = base.data.batch_size
        clips = batch * (args.steps + 1) * args.rounds
        overrides: dict[str, dict[str, Any]] = {}
        if base.run.precision == "bf16" and autocast_dtype("auto", device) is None:
            overrides["run"] = {"precision": "fp32"}  # emulated bf16 is hundreds of times slower than fp32
            print(f"recipe precision bf16 replaced by fp32: bf16 is not native on this {device.type}")
        recipe = load_recipe(
            args.recipe,
            teacher={"path": teacher},
            data={"clips": clips},
            cache={"dir": str(tmp / "cache")},
            **overrides,
        )
        d = _Distiller(recipe, tmp / "run", DistInfo(device=device), progress=False)
        raw = d.dataset
        # _Distiller renders the clips when it is built; this call is then a no-op kept to make sure of it.
        rendered = d.stages["data_rendering"] + render_clips(raw, enabled=False)
        t = time.perf_counter()
        d.prepare_cache()
        build = clips / (time.perf_counter() - t)
        cached = d.dataset
        print(
            f"recipe {recipe.name}: student {recipe.student.name} {recipe.student.frames}x{recipe.student.size}, "
            f"teacher {d.teacher_dim}-wide {d.spec.frames}x{d.spec.size}, batch {batch}, on {device}, "
            f"precision {'bf16' if d.amp else 'fp32'}"
        )
        print(machine_line(device))
        print(f"rendered {clips} physics clips before any round: {rendered:.1f} s (0 when already in the store)")
        print(f"cache build: {build:.1f} clips/s (teacher forward + fp16 write), {d.cache.nbytes / 1e6:.1f} MB")
        in_memory = {
            k: v.to(device) if isinstance(v, torch.Tensor) else v
            for k, v in collate_with_teacher([cached[i] for i in range(batch)]).items()
        }
        results: dict[str, list[float]] = {"cached step alone": [], "cached loop": [], "online teacher": []}
        for r in range(args.rounds):
            start = r * (args.steps + 1)
            results["cached step alone"].append(time_batch(d, in_memory, args.steps, start))
            for mode, dataset, collate in (
                ("cached loop", cached, collate_with_teacher),
                ("online teacher", raw, collate_clips),
            ):
                sampler = StepBatchSampler(len(dataset), batch, seed=0, epoch=0, start=start, rank=0, world_size=1)
                loader = ClipLoader(
                    dataset,
                    batch_size=batch,
                    num_workers=recipe.data.num_workers,
                    batch_sampler=sampler,
                    collate=collate,
                )
                results[mode].append(time_loader(d, loader, args.steps, start))
        medians = {mode: statistics.median(rates) for mode, rates in results.items()}
        alone = medians["cached step alone"]
        print(f"\n{'mode':<20}{'clips/s (median)':>18}{'rounds':>30}{'vs step alone':>15}")
        for mode, rates in results.items():
            rounds = " ".join(f"{x:.1f}" for x in rates)
            print(f"{mode:<20}{medians[mode]:>18.2f}{rounds:>30}{medians[mode] / alone:>14.2f}x")
        ratio = medians["cached loop"] / alone
        print(
            f"what data costs: the cached loop runs at {ratio:.2f}x the step alone; reading the clips and "
            f"cached features takes {1 - ratio:.0%} of its time"
        )
        print(
            f"cache speed-up: the cached loop runs at {medians['cached loop'] / medians['online teacher']:.2f}x "
            "the online teacher"
        )


if __name__ == "__main__":
    main()
