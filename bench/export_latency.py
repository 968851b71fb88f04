"""Host latency of a student's export artifacts: eager fp32, ExecuTorch .pte fp32 and int8 (XNNPACK), ONNX Runtime
fp32 and int8, measured side by side in one run with the same thread count, as ratios to eager.

The artifacts are made with the project's own export (`vjepa_edge.export.run.export`: targets xnnpack-fp32,
xnnpack-int8, onnx-fp32, onnx-int8), each verified against eager before it is timed; the int8 programs are
quantized with small calibration and evaluation options so the bench is quick to prepare (latency does not
depend on the calibration). The student is the vit_s recipe's (vit_small, 16 frames at 64 px in 4-frame tubelets)
with random weights, or the student of a run folder passed as argument (copied with its recipe and any quant/
programs into a temporary run, so the bench never writes into it).

Threads: `torch.set_num_threads(n)` for eager; ExecuTorch's pool reset to n (`_unsafe_reset_threadpool`) before
the timed programs are loaded (the XNNPACK runtime keeps the pool it finds at load); ONNX Runtime sessions with
`intra_op_num_threads=n`, `inter_op_num_threads=1`. Timing: after `--warmup` calls of each, `--runs` rounds, each
calling every runtime once (round-robin, the starting runtime rotated each round, so machine noise and the
spin-waiting threads a runtime leaves behind hit all alike); median and p90 per runtime. The .pte programs are
timed through the low-overhead API (`set_inputs` / `execute` / `get_outputs(clone_outputs=False)`), ONNX Runtime
through `InferenceSession.run`, eager under `torch.inference_mode()`. Cosine: the mean token cosine of each
runtime's output against eager fp32 on one held-out physics clip. The .pte rows add the delegation report
(partitions, operators left outside the delegate): what limits XNNPACK.

    uv run python bench/export_latency.py                         # random-init vit_s student, 2 threads
    uv run python bench/export_latency.py runs/distill/vit_s --threads 2 --runs 30 --json
    uv run python bench/export_latency.py --keep /tmp/lat && uv run python bench/export_latency.py --keep /tmp/lat \
        --threads 1                                               # time the same artifacts again
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

RUNTIMES = ("eager fp32", ".pte fp32", ".pte int8", "ORT fp32", "ORT int8")
TARGETS = {".pte fp32": "xnnpack-fp32", ".pte int8": "xnnpack-int8", "ORT fp32": "onnx-fp32", "ORT int8": "onnx-int8"}


def make_run(root: Path, source: str | None) -> Path:
    """A run folder the exports may write into: the vit_s recipe's student with random weights, or a copy of
    `source`'s student, recipe and quant/ programs."""
    from vjepa_edge.distill.recipe import load_recipe
    from vjepa_edge.models.checkpoint import save_vjepa
    from vjepa_edge.models.students import create_student
    from vjepa_edge.models.vjepa import student_model
    from vjepa_edge.runinfo import write_json
    from vjepa_edge.runs import RunDir, resolve_run_or_ckpt

    run = RunDir(root / "run")
    if built(run.root) is not None:  # a previous --keep run's artifacts
        return run.root
    run.root.mkdir(parents=True)
    if source is None:
        recipe = load_recipe("vit_s")
        s = recipe.student
        torch.manual_seed(0)
        student = create_student(s.name, frames=s.frames, size=s.size, tubelet_size=s.tubelet_size)
        save_vjepa(student_model(student), run.student)
        write_json(run.recipe, recipe.to_dict())
        return run.root
    resolved = resolve_run_or_ckpt(source)
    if resolved.run is None or resolved.kind != "distill":
        raise SystemExit(f"{source}: pass a distill run folder (or nothing for a random-init vit_s student)")
    shutil.copy(resolved.path, run.student)
    shutil.copy(resolved.run.recipe, run.recipe)
    if resolved.run.quant.is_dir():  # programs quantize made with the run's own calibration: export reuses them
        shutil.copytree(resolved.run.quant, run.quant)
    return run.root


def built(run: Path) -> dict[str, dict[str, Any]] | None:
    """The reports of the four artifacts a previous `--keep` run left in `run`, if all are there."""
    from vjepa_edge.export.run import REPORT
    from vjepa_edge.runs import RunDir

    path = RunDir(run).export / REPORT
    reports = json.loads(path.read_text()) if path.is_file() else {}
    if all(t in reports and Path(reports[t]["artifact"]).exists() for t in TARGETS.values()):
        return {runtime: reports[t] for runtime, t in TARGETS.items()}
    return None


def build(run: Path, verify_clips: int, calib_clips: int) -> dict[str, dict[str, Any]]:
    """The four artifacts, exported and verified by the project's own export; their reports by runtime."""
    from vjepa_edge.export.run import ExportOptions, export
    from vjepa_edge.quant.run import QuantizeOptions

    reports = built(run)
    if reports is not None:
        print(f"  reusing the artifacts in {run} (exported and verified when they were made)")
        return reports
    quant = QuantizeOptions(calib_clips=calib_clips, eval_train_clips=8, eval_test_clips=4, batch_size=4)
    reports = {}
    for runtime, target in TARGETS.items():
        t = time.perf_counter()
        options = ExportOptions(target=target, verify_clips=verify_clips, quantize=quant)
        reports[runtime] = export(run, options, progress=False).report
        print(f"  {target:<14} exported and verified in {time.perf_counter() - t:5.1f} s", flush=True)
    return reports


def runners(model: torch.nn.Module, reports: dict[str, dict[str, Any]], x: torch.Tensor, threads: int) -> dict:
    """One zero-argument call per runtime returning its output as a torch tensor (loaded after the thread
    settings, as the runtimes require)."""
    import executorch.extension.pybindings.portable_lib as pl
    import executorch.kernels.quantized  # noqa: F401  q/dq kernels for ops an int8 program leaves outside XNNPACK
    import onnxruntime as ort

    gc.collect()  # the export's verification loaded programs on the old pool: drop them before it is replaced
    pl._unsafe_reset_threadpool(threads)
    calls: dict[str, Callable[[], torch.Tensor]] = {}

    def eager() -> torch.Tensor:
        with torch.inference_mode():
            return model(x)

    calls["eager fp32"] = eager
    for runtime in (".pte fp32", ".pte int8"):
        method = pl._load_program(reports[runtime]["artifact"], enable_etdump=False).load_method("forward")

        def pte(method: Any = method) -> torch.Tensor:
            method.set_inputs([x])
            method.execute()
            return method.get_outputs(clone_outputs=False)[0]

        calls[runtime] = pte
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    feed = np.ascontiguousarray(x.numpy())
    for runtime in ("ORT fp32", "ORT int8"):
        sess = ort.InferenceSession(reports[runtime]["artifact"], so, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name

        def onnx(sess: Any = sess, name: str = name) -> torch.Tensor:
            return torch.from_numpy(sess.run(None, {name: feed})[0])

        calls[runtime] = onnx
    print(f"  threads: torch {torch.get_num_threads()}, executorch {pl._threadpool_get_thread_count()}, ORT {threads}")
    return calls


def measure(calls: dict[str, Callable[[], torch.Tensor]], warmup: int, runs: int) -> dict[str, list[float]]:
    """Milliseconds per call: `warmup` untimed calls of each, then `runs` round-robin rounds (rotated start)."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    names = list(calls)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(runs):
        for n in names[r % len(names) :] + names[: r % len(names)]:
            t = time.perf_counter()
            calls[n]()
            times[n].append((time.perf_counter() - t) * 1e3)
    return times


def p90(values: list[float]) -> float:
    return float(np.percentile(values, 90))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", nargs="?", help="a distill run folder (default: the vit_s student, random weights)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=15, help="timed rounds (one call of each runtime per round)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--verify-clips", type=int, default=2, help="held-out clips each artifact is verified on")
    ap.add_argument("--calib-clips", type=int, default=8, help="calibration clips of the int8 programs")
    ap.add_argument(
        "--keep",
        type=Path,
        help="keep the artifacts in this folder, or time the ones already there (default: a temporary one)",
    )
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object on the last line")
    args = ap.parse_args()
    for name in ("threads", "runs", "warmup", "verify_clips", "calib_clips"):
        if getattr(args, name) < (0 if name == "warmup" else 1):
            ap.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")

    from vjepa_edge.export.verify import compare, held_out_clips
    from vjepa_edge.models.checkpoint import load_vjepa
    from vjepa_edge.runinfo import machine_line

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="vjepa-edge-bench-") as tmp_name:
        root = args.keep or Path(tmp_name)
        run = make_run(root, args.run)
        t = time.perf_counter()
        print(f"building the artifacts in {run} ...", flush=True)
        reports = build(run, args.verify_clips, args.calib_clips)
        prepare = time.perf_counter() - t
        model = load_vjepa(Path(run) / "student.safetensors").encoder.eval()
        spec = model.input_spec
        x = held_out_clips(spec.frames, spec.size, fps=8.0, seed=0, count=1).contiguous()
        calls = runners(model, reports, x, args.threads)
        ref = calls["eager fp32"]().clone()
        cosine = {n: compare(call().clone(), ref)["cosine"] for n, call in calls.items()}
        times = measure(calls, args.warmup, args.runs)

    base = statistics.median(times["eager fp32"])
    rows = []
    for n in RUNTIMES:
        med = statistics.median(times[n])
        row: dict[str, Any] = {"runtime": n, "target": TARGETS.get(n), "median_ms": med, "p90_ms": p90(times[n])}
        row.update(vs_eager=med / base, cosine_vs_eager=cosine[n])
        if n in TARGETS:
            r = reports[n]
            row["size_mb"] = r["size_bytes"] / 1e6
            row["scheme"] = r["scheme"]
            d = r["delegation"]
            if "partitions" in d:
                row["partitions"] = d["partitions"]
                row["outside"] = d["outside"]
                row["flops_share_inside"] = d["flops_share_inside"]
        rows.append(row)
    by = {r["runtime"]: r for r in rows}
    pte_vs_ort = by[".pte int8"]["median_ms"] / by["ORT int8"]["median_ms"]

    shape = "x".join(map(str, spec.shape(1)))
    print(
        f"\nstudent {'random-init vit_s' if args.run is None else args.run}: input {shape}, {model.arch.depth} blocks"
    )
    print(f"{machine_line()}; {args.threads} threads everywhere; {args.runs} rounds after {args.warmup} warm-up")
    print(f"{'runtime':<12}{'ms (median)':>12}{'p90':>9}{'vs eager':>10}{'cosine vs eager':>17}{'MB':>7}  partitions")
    for r in rows:
        parts = "" if "partitions" not in r else f"  {r['partitions']}"
        size = f"{r['size_mb']:7.1f}" if "size_mb" in r else " " * 7
        print(
            f"{r['runtime']:<12}{r['median_ms']:>12.1f}{r['p90_ms']:>9.1f}{r['vs_eager']:>9.2f}x"
            f"{r['cosine_vs_eager']:>17.5f}{size}{parts}"
        )
    print(f".pte int8 / ORT int8 = {pte_vs_ort:.2f} (goal: <= 1.00)")
    for n in (".pte fp32", ".pte int8"):
        outside = ", ".join(f"{op.removeprefix('aten.')} x{k}" for op, k in by[n]["outside"].items())
        print(f"{n} outside the XNNPACK delegate: {outside or 'nothing'}")
    print(f"(artifacts built and verified in {prepare:.0f} s)")
    if args.json:
        print(
            json.dumps(
                {
                    "machine": machine_line(),
                    "threads": args.threads,
                    "runs": args.runs,
                    "warmup": args.warmup,
                    "input_shape": list(spec.shape(1)),
                    "rows": rows,
                    "pte_int8_vs_ort_int8": pte_vs_ort,
                    "times_ms": times,
                }
            )
        )


if __name__ == "__main__":
    main()
