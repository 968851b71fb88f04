"""Measure an exported artifact on this machine: load time, latency of every call, peak memory and where the time
goes per operator.

A `.pte` runs in ExecuTorch's Python runtime (edge-api 2): the thread pool is set first (`_unsafe_reset_threadpool`;
the XNNPACK runtime keeps the pool it finds at load), the program is loaded through the low-overhead bindings
(`portable_lib._load_program(...).load_method`) and each sample times `set_inputs` + `execute` +
`get_outputs(clone_outputs=False)`. The per-operator breakdown comes from a separate, short run of a fresh program
loaded with `enable_etdump=True` (the event tracer times every XNNPACK operator, which the timed run should not
pay for), whose ETDump is kept for `Inspector(etdump_path=...)`. An `.onnx` runs in an onnxruntime CPU session
with `intra_op_num_threads` set, timed around `run`, and a second, profiled session gives the breakdown.

Inputs are the artifact's own (shapes and dtypes from the program): floats drawn from N(0, 1) with `seed`, integer
inputs (a predictor's token indices) zeros, which index validly. Peak memory is the RSS growth during load and
the timed calls (`vjepa_edge.profile.memory`). An artifact this machine cannot run (an .mlpackage; a Core ML,
Vulkan or QNN .pte) raises `CannotRunError` before anything is loaded: the caller gives an estimate instead.
"""

from __future__ import annotations

import gc
import logging
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from vjepa_edge.config import check_count, to_dict
from vjepa_edge.errors import CannotRunError, ConfigError
from vjepa_edge.profile.breakdown import Breakdown
from vjepa_edge.profile.memory import PeakMemory
from vjepa_edge.profile.stats import LatencyStats

log = logging.getLogger(__name__)

RuntimeName = Literal["executorch", "onnxruntime"]
RUNTIMES: dict[str, RuntimeName] = {".pte": "executorch", ".onnx": "onnxruntime"}
# Delegates the Linux wheel registers but that need their device's hardware (QNN: a Snapdragon HTP).
NEEDS_DEVICE = {"QnnBackend": "the Qualcomm HTP of a Snapdragon device"}
# ExecuTorch ScalarType codes (MethodMeta.input_tensor_meta(i).dtype()) -> torch dtype names.
SCALAR_TYPES = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "float16", 6: "float32", 7: "float64"}
SCALAR_TYPES |= {11: "bool", 15: "bfloat16"}
ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64"}
ORT_TYPES |= {"tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(bool)": "bool", "tensor(uint8)": "uint8"}
ESTIMATE_HINT = "profile it on its device (a device profile with an adb or ssh transport); until then it is estimated"


@dataclass(frozen=True, kw_only=True, slots=True)
class Measurement:
    """What one artifact did on one machine: every raw latency sample, their statistics and the breakdown."""

    artifact: str
    runtime: RuntimeName
    where: str  # "host" or the device profile's name
    load_ms: float | None  # loading the program (and, for ExecuTorch, its method): ready to run
    warmup: int  # calls made before the first sample
    iterations: int
    samples_ms: tuple[float, ...]  # every timed call, in order
    stats: LatencyStats
    peak_memory_mb: float | None  # RSS growth of the process during load and the timed calls (None: not measured)
    threads: int | None  # the runtime's thread count (None: the device runner's own default)
    breakdown: Breakdown | None  # per operator, from the runtime's trace (None: not profiled)
    timing: str  # what one sample times

    def __post_init__(self) -> None:
        p: list[str] = []
        if self.runtime not in RUNTIMES.values():
            p.append(f"runtime={self.runtime!r}: one of {', '.join(RUNTIMES.values())}")
        if len(self.samples_ms) != self.iterations or self.stats.n != self.iterations:
            p.append(f"{len(self.samples_ms)} samples and n={self.stats.n} for {self.iterations} iterations")
        if p:
            raise ConfigError(f"invalid measurement of {self.artifact}", problems=p)

    @property
    def operators(self) -> list[dict[str, Any]]:
        """Rows {name, delegated, backend, calls, total_ms, share} by time per inference, longest first (the
        `OperatorTime`s of `breakdown` as plain data)."""
        return [to_dict(o) for o in self.breakdown.operators] if self.breakdown is not None else []

    @property
    def trace(self) -> str | None:
        """The runtime's trace file: an ETDump (`Inspector(etdump_path=...)`) or an onnxruntime profile."""
        return self.breakdown.trace if self.breakdown is not None else None

    @property
    def etdump(self) -> str | None:
        """The ETDump of an ExecuTorch measurement (None for onnxruntime or without a breakdown)."""
        return self.trace if self.breakdown is not None and self.breakdown.source == "etdump" else None

    def to_dict(self) -> dict[str, Any]:
        out = to_dict(self)
        out["stats"] = self.stats.to_dict()
        if self.breakdown is not None:
            out["breakdown"] = self.breakdown.to_dict()
        return out


def check_measure_options(*, warmup: int, iterations: int, threads: int | None, profile_iterations: int) -> None:
    p: list[str] = []
    check_count("warmup", warmup, p, minimum=0, maximum=100_000)
    check_count("iterations", iterations, p, maximum=1_000_000)
    check_count("profile_iterations", profile_iterations, p, minimum=0, maximum=10_000)
    if threads is not None:
        check_count("threads", threads, p, maximum=1024)
    if p:
        raise ConfigError.of(p, title="invalid measurement options")


def artifact_runtime(path: Path) -> RuntimeName:
    """The runtime that runs `path`; an .mlpackage or an unknown file is refused."""
    if path.suffix == ".mlpackage":
        raise CannotRunError(
            f"{path.name} is a Core ML package: Core ML runs on macOS and iOS only, so it cannot run here; "
            "an estimate is given instead",
            hint=ESTIMATE_HINT,
        )
    if path.suffix not in RUNTIMES:
        raise ConfigError(
            f"{path}: not an artifact this profiler runs (suffix {path.suffix!r})",
            hint=f"artifacts: {', '.join(RUNTIMES)} (measured), .mlpackage (estimated)",
        )
    if not path.is_file():
        raise ConfigError(f"{path}: no such artifact", hint="export one with `vjepa-edge export`")
    return RUNTIMES[path.suffix]


def report_target(path: Path) -> str | None:
    """The export target `vjepa-edge export` recorded for `path` in the report beside it (None: no entry)."""
    from vjepa_edge.export.artifacts import export_entry

    entry = export_entry(path)
    return entry.get("target") if entry else None


def pte_backends(path: Path) -> list[str]:
    """The delegate backends of a .pte (its flatbuffer's delegate ids, one per delegate call), read without
    loading the program."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    try:
        pte = deserialize_pte_binary(path.read_bytes())
    except Exception as e:  # a truncated or foreign file
        raise ConfigError(f"{path} is not an ExecuTorch program: {type(e).__name__}: {e}") from None
    program = getattr(pte, "program", pte)
    return [d.id for plan in program.execution_plan for d in plan.delegates]


def check_runs_here(path: Path) -> RuntimeName:
    """The runtime of `path` when this machine can run it; else `CannotRunError` saying why (and that an estimate
    is given instead)."""
    runtime = artifact_runtime(path)
    target = report_target(path)
    if target is not None:
        from vjepa_edge.export.targets import TARGETS

        if target in TARGETS and not TARGETS.get(target).runs_here:
            t = TARGETS.get(target)
            raise CannotRunError(
                f"{path.name} is a {target} artifact ({t.description}): this machine cannot run it; "
                "an estimate is given instead",
                hint=ESTIMATE_HINT,
            )
    if runtime == "executorch":
        from vjepa_edge.export.executorch import registered_backends

        registered = registered_backends()
        for backend in dict.fromkeys(pte_backends(path)):
            why = NEEDS_DEVICE.get(backend)
            if backend not in registered:
                why = f"this ExecuTorch runtime registers {', '.join(registered)} only"
            if why:
                raise CannotRunError(
                    f"{path.name} is delegated to {backend}, which cannot run here ({why}); "
                    "an estimate is given instead",
                    hint=ESTIMATE_HINT,
                )
    return runtime


def delegate_name(path: Path) -> str:
    """The delegate that delegated operators of `path` ran in (for traces made without an ETRecord)."""
    ids = set(pte_backends(path))
    return ids.pop() if len(ids) == 1 else "delegate"


def time_calls(call: Callable[[], Any], warmup: int, iterations: int, advance: Callable[..., None] | None) -> list:
    """`warmup` untimed calls, then the milliseconds of `iterations` timed ones."""
    for _ in range(warmup):
        call()
        if advance:
            advance()
    samples = []
    for _ in range(iterations):
        t = time.perf_counter()
        call()
        samples.append((time.perf_counter() - t) * 1e3)
        if advance:
            advance()
    return samples


def trace_folder(out: str | Path | None) -> Path:
    """The folder traces go to: `out` (made if missing), or a new temporary one that is kept."""
    if out is None:  # kept after the call: the measurement names the trace in it
        return Path(tempfile.mkdtemp(prefix="vjepa-edge-profile-"))
    Path(out).mkdir(parents=True, exist_ok=True)
    return Path(out)


def measure_host(
    path: str | Path,
    *,
    warmup: int = 10,
    iterations: int = 50,
    threads: int | None = None,
    seed: int = 0,
    profile_iterations: int = 5,
    out: str | Path | None = None,
    where: str = "host",
    progress: bool = False,
) -> Measurement:
    """Measure the artifact at `path` on this machine: `warmup` untimed calls, `iterations` timed ones with
    `threads` threads (None: as many as torch uses, `torch.get_num_threads()`), then a separate run of
    `profile_iterations` calls (after one warm-up) traced per operator (0: no breakdown). The trace is written
    to `out` (None: a new temporary folder that is kept). Raises `CannotRunError` for an artifact this
    machine cannot run."""
    import torch

    path = Path(path)
    check_measure_options(warmup=warmup, iterations=iterations, threads=threads, profile_iterations=profile_iterations)
    runtime = check_runs_here(path)
    threads = threads or torch.get_num_threads()
    traces = trace_folder(out) if profile_iterations else None
    measure = _measure_pte if runtime == "executorch" else _measure_onnx
    from vjepa_edge.train.loop import task_bar

    total = warmup + iterations + (profile_iterations + 1 if profile_iterations else 0)
    with task_bar(f"measure {path.name}", total, enabled=progress, unit="calls") as advance:
        load_ms, samples, peak, used, breakdown = measure(
            path, warmup, iterations, threads, seed, profile_iterations, traces, advance
        )
    timing = (
        "set_inputs + execute + get_outputs (pybindings)" if runtime == "executorch" else "InferenceSession.run (CPU)"
    )
    return Measurement(
        artifact=str(path),
        runtime=runtime,
        where=where,
        load_ms=load_ms,
        warmup=warmup,
        iterations=iterations,
        samples_ms=tuple(samples),
        stats=LatencyStats.from_samples(samples),
        peak_memory_mb=peak,
        threads=used,
        breakdown=breakdown,
        timing=timing,
    )


def _pte_inputs(meta: Any, seed: int) -> list[Any]:
    import torch

    gen = torch.Generator().manual_seed(seed)
    inputs = []
    for i in range(meta.num_inputs()):
        info = meta.input_tensor_meta(i)
        dtype = getattr(torch, SCALAR_TYPES.get(info.dtype(), "float32"))
        shape = tuple(info.sizes())
        floating = dtype.is_floating_point
        inputs.append(torch.randn(shape, generator=gen).to(dtype) if floating else torch.zeros(shape, dtype=dtype))
    return inputs


def _measure_pte(
    path: Path, warmup: int, iterations: int, threads: int, seed: int, profile: int, traces: Path | None, advance: Any
) -> tuple[float, list[float], float | None, int, Breakdown | None]:
    import executorch.extension.pybindings.portable_lib as pl
    import executorch.kernels.quantized  # noqa: F401  q/dq kernels for ops an int8 program leaves outside XNNPACK

    gc.collect()  # programs loaded on the old pool must be gone before it is replaced
    pl._unsafe_reset_threadpool(threads)
    used = pl._threadpool_get_thread_count()
    with PeakMemory() as mem:
        t = time.perf_counter()
        program = pl._load_program(
            str(path), enable_etdump=False, debug_buffer_size=0, program_verification=pl.Verification.Minimal
        )
        name = "forward" if "forward" in _method_names(program) else program.get_method_name(0)
        method = program.load_method(name)
        load_ms = (time.perf_counter() - t) * 1e3
        inputs = _pte_inputs(program.method_meta(name), seed)

        def call() -> None:
            method.set_inputs(inputs)
            method.execute()
            method.get_outputs(clone_outputs=False)

        samples = time_calls(call, warmup, iterations, advance)
    breakdown = None
    if profile and traces is not None:
        breakdown = _etdump_run(path, name, inputs, profile, traces, advance)
    return load_ms, samples, mem.peak_mb, used, breakdown


def _method_names(program: Any) -> list[str]:
    return [program.get_method_name(i) for i in range(program.num_methods())]


def _etdump_run(path: Path, name: str, inputs: list, profile: int, traces: Path, advance: Any) -> Breakdown:
    """One warm-up and `profile` calls of a fresh program with the event tracer on; their ETDump, broken down."""
    from executorch.runtime import Runtime

    from vjepa_edge.profile.breakdown import etdump_breakdown

    program = Runtime.get().load_program(path, enable_etdump=True, debug_buffer_size=0)
    method = program.load_method(name)
    for _ in range(profile + 1):
        method.execute(inputs)
        if advance:
            advance()
    etdump, debug = traces / f"{path.stem}.etdp", traces / f"{path.stem}.debug.bin"
    program.write_etdump_result_to_file(str(etdump), str(debug))
    if debug.exists() and debug.stat().st_size == 0:
        debug.unlink()  # no debug buffer was asked for
    log.info("ETDump of %s: %s", path.name, etdump)
    return etdump_breakdown(etdump, skip=1, backend=delegate_name(path))


def _onnx_feed(session: Any, seed: int) -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(seed)
    feed = {}
    for i in session.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in i.shape]  # symbolic dims at 1
        dtype = np.dtype(ORT_TYPES.get(i.type, "float32"))
        floating = np.issubdtype(dtype, np.floating)
        feed[i.name] = rng.standard_normal(shape).astype(dtype) if floating else np.zeros(shape, dtype)
    return feed


def _ort_session(path: Path, threads: int, profile_prefix: Path | None = None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = str(profile_prefix)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _measure_onnx(
    path: Path, warmup: int, iterations: int, threads: int, seed: int, profile: int, traces: Path | None, advance: Any
) -> tuple[float, list[float], float | None, int, Breakdown | None]:
    with PeakMemory() as mem:
        t = time.perf_counter()
        session = _ort_session(path, threads)
        load_ms = (time.perf_counter() - t) * 1e3
        feed = _onnx_feed(session, seed)
        samples = time_calls(lambda: session.run(None, feed), warmup, iterations, advance)
    breakdown = None
    if profile and traces is not None:
        breakdown = _ort_profile_run(path, threads, feed, profile, traces, advance)
    return load_ms, samples, mem.peak_mb, threads, breakdown


def _ort_profile_run(path: Path, threads: int, feed: dict, profile: int, traces: Path, advance: Any) -> Breakdown:
    from vjepa_edge.profile.breakdown import ort_breakdown

    session = _ort_session(path, threads, profile_prefix=traces / f"{path.stem}-ort")
    for _ in range(profile + 1):
        session.run(None, feed)
        if advance:
            advance()
    written = Path(session.end_profiling())  # PREFIX_<date>.json
    trace = traces / f"{path.stem}.onnxruntime.json"
    written.replace(trace)
    log.info("onnxruntime profile of %s: %s", path.name, trace)
    return ort_breakdown(trace, skip=1)


def summary_line(m: Measurement) -> str:
    """One line for logs: p50/p90, load, memory, threads."""
    s = m.stats
    memory = f", peak +{m.peak_memory_mb:.0f} MiB" if m.peak_memory_mb is not None else ""
    load = f", load {m.load_ms:.0f} ms" if m.load_ms is not None and math.isfinite(m.load_ms) else ""
    return f"{Path(m.artifact).name} on {m.where}: p50 {s.p50:.2f} ms, p90 {s.p90:.2f} ms{load}{memory}"
