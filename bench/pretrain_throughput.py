"""Pretraining throughput of a teacher config: clips/s of the training step alone and of the real loop, model
FLOPs and model FLOPs utilisation (MFU).

Measured side by side in one run, because shared machines are noisy, after the physics clips the loop needs
are rendered into the memory-mapped store (so rendering is counted nowhere):
- `step fp32` / `step bf16`: training steps (target forward, context encoder + predictor forward and
  backward, AdamW, EMA) on one batch already in memory, in fp32 and under bf16 autocast; the bf16 variant
  runs only where bf16 is native (`autocast_dtype("auto", device)`): on a CPU without AVX512-BF16/AMX a
  bf16 matmul is emulated, hundreds of times slower than fp32;
- `pretrain loop`: `teacher.train.pretrain` itself (loader reading the rendered clips, augmentation, a
  metrics line per step) at the config's auto precision; its rate is taken from the per-step metrics
  after the first step, so the warm-up step and the final checkpoint are left out like the steps' warm-up.
The `vs step` column is the loop's rate over the step alone at the same precision: one minus it is the
share of the loop's time that data and bookkeeping cost. Model FLOPs per clip are counted by
`torch.utils.flop_counter` on one real step (matmuls and attention, forward and backward). MFU divides the
achieved FLOP/s by the peak: the datasheet's dense bf16 peak for known GPUs, else a big matmul measured here
in the same run at the auto precision.

    uv run python bench/pretrain_throughput.py                      # physics teacher, CPU or GPU
    uv run python bench/pretrain_throughput.py --config vitl16 --batch-size 8 --steps 5   # on a GPU
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch

from teacher.config import load_config
from teacher.train import _Trainer, pretrain
from vjepa_edge.data.sources import open_source
from vjepa_edge.runinfo import autocast_dtype, machine_line
from vjepa_edge.train.distributed import DistInfo
from vjepa_edge.train.loop import render_clips

# Dense bf16 tensor-core peaks from the vendors' datasheets (FLOP/s).
GPU_PEAK = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "4090": 165e12}


def bf16_skip_reason(device: torch.device) -> str | None:
    """Why the bf16 step is not run here, or None when bf16 is this device's auto precision."""
    if autocast_dtype("auto", device) is torch.bfloat16:
        return None
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} does not support bf16"
    return (
        "this CPU has no native bf16 (AVX512-BF16 or AMX, not capped by ONEDNN_MAX_CPU_ISA): "
        "its bf16 matmuls are emulated, hundreds of times slower than fp32"
    )


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


def loop_rate(out: Path) -> float:
    """Clips/s of the loop's steps after the first, from metrics.jsonl (one line per step: `log_every` = 1).

    Each line's rate covers one step from the previous line on: waiting for the batch, the step, logging.
    The first line pays for the warm-up step and the loader's start, and the final checkpoint comes after the
    last line, so both are left out, as the steps alone leave out their warm-up."""
    rows = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines() if ln.strip()]
    steady = [r["clips_per_s"] for r in rows[1:]]
    return len(steady) / sum(1 / r for r in steady)  # equal clips per line: the harmonic mean


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="physics")
    ap.add_argument("--steps", type=int, default=8, help="timed steps per variant")
    ap.add_argument("--batch-size", type=int, default=None)
    args = ap.parse_args()
    if args.steps < 1:
        ap.error(f"--steps must be at least 1, got {args.steps}")
    cfg = load_config(args.config)
    if args.batch_size:
        cfg = cfg.replace(data={"batch_size": args.batch_size})
    B = cfg.data.batch_size
    loop_steps = args.steps + 2  # the first (warm-up) step is left out of the loop's rate
    # Only the clips the loop reads, in one epoch: the bench renders no more than it times.
    cfg = cfg.replace(data={"source": "physics", "physics_clips": B * (loop_steps + 1)})
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    info = DistInfo(device=device)
    clip_spec = cfg.data.clip
    clip = torch.randn(B, 3, clip_spec.frames, clip_spec.size, clip_spec.size, device=device)
    enc = cfg.arch().encoder
    auto = autocast_dtype("auto", device)
    auto_name = "bf16" if auto is torch.bfloat16 else "fp32"
    print(
        f"config {cfg.name}: encoder {enc.embed_dim}x{enc.depth}, {enc.num_patches} tokens "
        f"({clip_spec.frames}x{clip_spec.size}px), batch {B}, on {device}, auto precision {auto_name}"
    )
    print(machine_line(device))

    dataset = open_source(
        "physics",
        spec=clip_spec,
        train=True,
        seed=cfg.run.seed,
        augment=cfg.data.augment,
        length=cfg.data.physics_clips,
    )
    seconds = render_clips(dataset, enabled=True)
    print(f"rendered {len(dataset)} physics clips before timing: {seconds:.1f} s (0 when already in the store)")

    variants = [("step fp32", "fp32")]
    skipped = bf16_skip_reason(device)
    if skipped is None:
        variants.append(("step bf16", "bf16"))
    else:
        print(f"step bf16 skipped: {skipped}")
    rows = []
    flops = None
    for name, precision in variants:
        trainer = _Trainer(cfg.replace(run={"precision": precision}), tempfile.gettempdir(), info, progress=False)
        if flops is None:
            flops = step_flops(trainer, clip)
        rows.append((name, precision, time_steps(trainer, clip, args.steps)))
        del trainer

    out = Path(tempfile.mkdtemp(prefix="bench-pretrain-"))
    try:
        loop_cfg = cfg.with_steps(loop_steps).replace(
            run={"checkpoint_every": 10**6, "log_every": 1, "precision": "auto"}
        )
        report = pretrain(loop_cfg, out, progress=False).report
        rows.append(("pretrain loop", report["precision"], loop_rate(out)))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    stages = report["stages"]
    print(
        f"pretrain loop: {loop_steps} steps; its report gives {report['clips_per_s']:.2f} clips/s over the "
        f"training stage alone ({stages['training']:.1f} s, warm-up step and final checkpoint included), "
        f"rendering stage {stages['data_rendering']:.2f} s not counted"
    )

    peak, peak_src = peak_flops(device, auto or torch.float32)
    base = rows[0][2]
    step_at = {precision: rate for name, precision, rate in rows if name.startswith("step")}
    print(f"model FLOPs per training clip: {flops / 1e9:.1f} GFLOP (forward + backward, torch flop counter)")
    print(f"peak for MFU: {peak / 1e12:.1f} TFLOP/s ({peak_src})")
    print(f"{'variant':<15}{'precision':>10}{'clips/s':>10}{'vs fp32':>9}{'vs step':>9}{'TFLOP/s':>9}{'MFU':>8}")
    for name, precision, rate in rows:
        achieved = rate * flops
        vs_step = f"{rate / step_at[precision]:.2f}x" if name == "pretrain loop" else "-"
        print(
            f"{name:<15}{precision:>10}{rate:>10.2f}{rate / base:>8.2f}x{vs_step:>9}"
            f"{achieved / 1e12:>9.2f}{achieved / peak:>8.1%}"
        )
    loop_precision, loop = rows[-1][1], rows[-1][2]
    ratio = loop / step_at[loop_precision]
    print(
        f"what data costs: the real loop runs at {ratio:.2f}x the step alone ({loop_precision}); waiting for "
        f"data and logging take {1 - ratio:.0%} of its time"
    )


if __name__ == "__main__":
    main()
