"""Pretraining throughput of a teacher config: clips/s, model FLOPs and model FLOPs utilisation (MFU).

Measured side by side in one run, because shared machines are noisy:
- `step fp32` / `step bf16`: training steps (target forward, context encoder + predictor forward and
  backward, AdamW, EMA) on clips already in memory, in fp32 and under bf16 autocast; the ratio column is
  against fp32;
- `pretrain loop`: `teacher.train.pretrain` itself for a few steps (data generation or decoding, masks,
  logging, a checkpoint), at the config's precision.
Model FLOPs per clip are counted by `torch.utils.flop_counter` on one real step (matmuls and attention,
forward and backward). MFU divides the achieved FLOP/s by the peak: the datasheet's dense bf16 peak for
known GPUs, else a big matmul measured here in the same run.

    uv run python bench/pretrain_throughput.py                      # physics teacher, CPU or GPU
    uv run python bench/pretrain_throughput.py --config vitl16 --batch-size 8 --steps 5   # on a GPU
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time

import torch

from teacher.config import load_config
from teacher.train import _Trainer, pretrain
from vjepa_edge.runinfo import autocast_dtype
from vjepa_edge.train.distributed import DistInfo

# Dense bf16 tensor-core peaks from the vendors' datasheets (FLOP/s).
GPU_PEAK = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "4090": 165e12}


def measured_peak(device: torch.device, dtype: torch.dtype) -> float:
    n = 4096 if device.type == "cuda" else 2048
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    _sync(device)
    reps, t = 20 if device.type == "cuda" else 5, time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t)


def peak_flops(device: torch.device, dtype: torch.dtype) -> tuple[float, str]:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, peak in GPU_PEAK.items():
            if key in name:
                return peak, f"{name} datasheet dense bf16"
    return measured_peak(device, dtype), f"measured {str(dtype).removeprefix('torch.')} matmul on {device.type}"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(trainer: _Trainer, clip: torch.Tensor, steps: int) -> float:
    trainer.step(clip, 0)  # warm-up (allocations, kernels)
    _sync(trainer.device)
    t = time.perf_counter()
    for i in range(steps):
        trainer.step(clip, i + 1)
    _sync(trainer.device)
    return clip.shape[0] * steps / (time.perf_counter() - t)


def step_flops(trainer: _Trainer, clip: torch.Tensor) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        trainer.step(clip, 0)
    return counter.get_total_flops() / clip.shape[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="physics")
    ap.add_argument("--steps", type=int, default=8, help="timed steps per variant")
    ap.add_argument("--batch-size", type=int, default=None)
    args = ap.parse_args()
    cfg = load_config(args.config)
    if args.batch_size:
        cfg = cfg.replace(data={"batch_size": args.batch_size})
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    info = DistInfo(device=device)
    clip_spec = cfg.data.clip
    B = cfg.data.batch_size
    clip = torch.randn(B, 3, clip_spec.frames, clip_spec.size, clip_spec.size, device=device)
    enc = cfg.arch().encoder
    where = f"{device} ({torch.get_num_threads()} threads)" if device.type == "cpu" else torch.cuda.get_device_name()
    print(
        f"config {cfg.name}: encoder {enc.embed_dim}x{enc.depth}, {enc.num_patches} tokens "
        f"({clip_spec.frames}x{clip_spec.size}px), batch {B}, on {where}"
    )

    rows = []
    flops = None
    for name, precision in (("step fp32", "fp32"), ("step bf16", "bf16")):
        trainer = _Trainer(
            cfg.replace(run={"precision": precision}, data={"source": "physics"}),
            tempfile.gettempdir(),
            info,
            progress=False,
        )
        if flops is None:
            flops = step_flops(trainer, clip)
        rows.append((name, precision, time_steps(trainer, clip, args.steps)))
        del trainer

    out = tempfile.mkdtemp(prefix="bench-pretrain-")
    try:
        loop_cfg = cfg.with_steps(args.steps + 2).replace(
            run={"checkpoint_every": 10**6, "log_every": 1}, data={"source": "physics"}
        )
        result = pretrain(loop_cfg, out, progress=False)
        rows.append(("pretrain loop", result.report["precision"], result.report["clips_per_s"]))
    finally:
        shutil.rmtree(out, ignore_errors=True)

    auto = autocast_dtype("auto", device)
    peak, peak_src = peak_flops(device, auto or torch.float32)
    base = rows[0][2]
    print(f"model FLOPs per training clip: {flops / 1e9:.1f} GFLOP (forward + backward, torch flop counter)")
    print(f"peak for MFU: {peak / 1e12:.1f} TFLOP/s ({peak_src})")
    print(f"{'variant':<15}{'precision':>10}{'clips/s':>10}{'vs fp32':>9}{'TFLOP/s':>9}{'MFU':>8}")
    for name, precision, rate in rows:
        achieved = rate * flops
        print(
            f"{name:<15}{precision:>10}{rate:>10.2f}{rate / base:>8.2f}x{achieved / 1e12:>9.2f}{achieved / peak:>8.1%}"
        )


if __name__ == "__main__":
    main()
