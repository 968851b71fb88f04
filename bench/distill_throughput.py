"""Distillation throughput: training clips/s with the teacher-feature cache against the teacher run online.

Measured side by side in one run (shared machines are noisy): rounds alternate between the two modes on the
same recipe, student, batches and precision, and the table gives the median of each and their ratio.
- `online teacher`: every step decodes/generates the clip, runs the teacher forward, then the student's
  forward and backward;
- `cached features`: every step generates the clip and reads the teacher's tokens from the memory-mapped
  fp16 cache (built once before, its build rate is printed too).
The teacher is the recipe's architecture with random weights unless it is already cached (speed does not
depend on the weights), so the bench never pretrains one.

    uv run python bench/distill_throughput.py                  # the vit_s recipe
    uv run python bench/distill_throughput.py --recipe vit_t --steps 8 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from vjepa_edge.data.loader import ClipLoader, StepBatchSampler, collate_clips
from vjepa_edge.distill.cache import collate_with_teacher
from vjepa_edge.distill.recipe import load_recipe
from vjepa_edge.distill.train import _Distiller
from vjepa_edge.train.distributed import DistInfo


def embedded_teacher_or_random(tmp: Path) -> Path:
    from teacher.embedded import embedded_config, embedded_teacher_path
    from vjepa_edge.models.checkpoint import save_vjepa
    from vjepa_edge.models.vjepa import VJEPA

    path = embedded_teacher_path()
    if path.is_file():
        return path
    return save_vjepa(VJEPA(embedded_config().arch()), tmp / "random_teacher.safetensors")


def time_steps(d: _Distiller, loader: ClipLoader, steps: int, start: int) -> float:
    """Clips/s over `steps` training steps (data loading included), after one untimed warm-up step."""
    it = iter(loader)
    d.step(next(it), start)
    t, clips = time.perf_counter(), 0
    for i in range(steps):
        batch = next(it)
        d.step(batch, start + 1 + i)
        clips += batch["clip"].shape[0]
    return clips / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="vit_s")
    ap.add_argument("--steps", type=int, default=6, help="timed steps per round")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        base = load_recipe(args.recipe)
        teacher = base.teacher.path if not base.teacher.embedded else str(embedded_teacher_or_random(tmp))
        batch = base.data.batch_size
        clips = batch * (args.steps + 1) * args.rounds
        recipe = load_recipe(
            args.recipe,
            teacher={"path": teacher},
            data={"clips": clips},
            cache={"dir": str(tmp / "cache")},
        )
        d = _Distiller(recipe, tmp / "run", DistInfo(), progress=False)
        raw = d.dataset
        t = time.perf_counter()
        d.prepare_cache()
        build = clips / (time.perf_counter() - t)
        cached = d.dataset
        print(
            f"recipe {recipe.name}: student {recipe.student.name} {recipe.student.frames}x{recipe.student.size}, "
            f"teacher {d.teacher_dim}-wide {d.spec.frames}x{d.spec.size}, batch {batch}, autocast {d.amp}"
        )
        print(f"cache build: {build:.1f} clips/s (teacher forward + fp16 write), {d.cache.nbytes / 1e6:.1f} MB")
        results: dict[str, list[float]] = {"online teacher": [], "cached features": []}
        for r in range(args.rounds):
            start = r * (args.steps + 1)
            for mode, dataset, collate in (
                ("online teacher", raw, collate_clips),
                ("cached features", cached, collate_with_teacher),
            ):
                sampler = StepBatchSampler(len(dataset), batch, seed=0, epoch=0, start=start, rank=0, world_size=1)
                loader = ClipLoader(
                    dataset,
                    batch_size=batch,
                    num_workers=recipe.data.num_workers,
                    batch_sampler=sampler,
                    collate=collate,
                )
                results[mode].append(time_steps(d, loader, args.steps, start))
        base_rate = statistics.median(results["online teacher"])
        print(f"\n{'mode':<18}{'clips/s (median)':>18}{'rounds':>30}{'ratio':>8}")
        for mode, rates in results.items():
            med = statistics.median(rates)
            rounds = " ".join(f"{x:.1f}" for x in rates)
            print(f"{mode:<18}{med:>18.2f}{rounds:>30}{med / base_rate:>7.2f}x")


if __name__ == "__main__":
    torch.set_num_threads(torch.get_num_threads())
    main()
