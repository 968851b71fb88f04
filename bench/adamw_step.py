"""The teacher's training step with torch's fused AdamW (what pretraining and distillation use,
`vjepa_edge.train.loop.adamw`) against torch's per-tensor AdamW (what they used before), side by side.

- Speed: one trainer, one batch in memory (fp32), the two optimizers' steps interleaved in adjacent pairs, because
  shared machines drift within minutes; prints each median step and the median of the pairs' ratios.
- Weights: two trainers from the same seed take the same steps, one per optimizer, and their weights are compared
  bit for bit. Under AVX2 (`ATEN_CPU_CAPABILITY=avx2`) the fused kernel gives the per-tensor loop's weights exactly
  (so the embedded teacher and its cache key did not change); with AVX-512 the last bits can differ.

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 uv run python bench/adamw_step.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from teacher.config import load_config  # noqa: E402
from teacher.train import _Trainer  # noqa: E402
from vjepa_edge.runinfo import machine_line  # noqa: E402
from vjepa_edge.train.distributed import DistInfo  # noqa: E402
from vjepa_edge.train.loop import param_groups  # noqa: E402


def per_tensor(trainer: _Trainer) -> torch.optim.AdamW:
    o = trainer.config.optim
    return torch.optim.AdamW(param_groups(trainer.context), lr=o.start_lr, betas=o.betas, eps=o.eps, foreach=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="physics")
    ap.add_argument("--pairs", type=int, default=24, help="adjacent step pairs timed (default 24)")
    ap.add_argument("--check-steps", type=int, default=10, help="steps of the bit-for-bit check (default 10)")
    args = ap.parse_args(argv)
    if args.pairs < 1 or args.check_steps < 1:
        ap.error("--pairs and --check-steps must be at least 1")
    cfg = load_config(args.config)
    cfg = cfg.replace(data={"physics_clips": 2 * cfg.data.batch_size}, run={"precision": "fp32"})
    info = DistInfo(device=torch.device("cpu"))
    spec = cfg.data.clip
    clip = torch.randn(
        cfg.data.batch_size, 3, spec.frames, spec.size, spec.size, generator=torch.Generator().manual_seed(0)
    )
    print(machine_line())

    with tempfile.TemporaryDirectory(prefix="bench-adamw-") as tmp:
        trainer = _Trainer(cfg, tmp, info, progress=False)
        optimizers = {"fused": trainer.optimizer, "per-tensor": per_tensor(trainer)}
        times: dict[str, list[float]] = {name: [] for name in optimizers}
        step = 0
        for opt in optimizers.values():  # each optimizer's state is made once, untimed
            trainer.optimizer = opt
            trainer.step(clip, step)
            step += 1
        for _ in range(args.pairs):
            for name, opt in optimizers.items():
                trainer.optimizer = opt
                t = time.perf_counter()
                trainer.step(clip, step)
                times[name].append(time.perf_counter() - t)
                step += 1
        for name, ts in times.items():
            med = statistics.median(ts)
            print(f"{name:>10} AdamW: median step {med * 1000:.0f} ms ({clip.shape[0] / med:.2f} clips/s)")
        ratios = sorted(a / b for a, b in zip(times["per-tensor"], times["fused"], strict=True))
        print(
            f"per-tensor / fused step time, median of {args.pairs} adjacent pairs: {statistics.median(ratios):.3f} "
            f"(quartiles {ratios[len(ratios) // 4]:.3f} .. {ratios[(3 * len(ratios)) // 4]:.3f})"
        )
        del trainer

        weights = {}
        for name in optimizers:
            t = _Trainer(cfg, tmp, info, progress=False)
            if name == "per-tensor":
                t.optimizer = per_tensor(t)
            for s in range(args.check_steps):
                t.step(clip, s)
            weights[name] = t.model.state_dict()
        differ = [k for k, v in weights["fused"].items() if not torch.equal(v, weights["per-tensor"][k])]
        total = len(weights["fused"])
        verdict = "the same bit for bit" if not differ else f"{len(differ)} of {total} tensors differ"
        print(f"weights after {args.check_steps} steps (context, predictor, target): {verdict} ({total} tensors)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
