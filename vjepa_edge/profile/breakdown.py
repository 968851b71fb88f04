"""Per-operator time of one profiled run of an artifact, read from the runtime's own trace: an ETDump (ExecuTorch,
read with `executorch.devtools.Inspector`) or an onnxruntime profile (Chrome-trace JSON).

ETDump rows (edge-api 2.4): operators inside a delegate are named by the backend, one event per instance
("Fully Connected (NC, F32) GEMM #12"): grouped by kind with the "#N" dropped. Operators outside any delegate are
`native_call_<op>` events (each followed by an `OPERATOR_CALL` event that adds the framework's dispatch; left out
of the rows). `DELEGATE_CALL` is a whole delegate call, `Method::execute` a whole inference; `Program::load_method`
(in the "Default" block) the load. onnxruntime rows: `cat == "Node"` events (`dur` in microseconds,
`args.op_name`, `args.provider`), grouped by op type; `model_run` is a whole inference.

Every execution after a program is loaded is in its trace, warm-up ones too: `skip` leaves the first ones out.
Rows give time per inference (averaged over the kept ones), calls per inference, and the share of the inference's
end-to-end time; they are sorted by time, longest first.
"""

from __future__ import annotations

import bisect
import json
import math
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from vjepa_edge.config import to_dict
from vjepa_edge.errors import ConfigError

KERNELS = "ExecuTorch kernels"  # the backend named for operators that run outside any delegate
_INSTANCE = re.compile(r"\s*#\d+$")  # "Softmax (NC, F32) #3" -> "Softmax (NC, F32)"


@dataclass(frozen=True, kw_only=True, slots=True)
class OperatorTime:
    """One operator kind of a profiled inference."""

    name: str  # "Fully Connected (NC, QS8, QC8W) GEMM", "native_layer_norm.out", "MatMulInteger"
    delegated: bool  # runs inside a delegate (ExecuTorch) or an execution provider other than the CPU one (ORT)
    backend: str  # "XnnpackBackend", KERNELS, "CPUExecutionProvider"
    calls: int  # calls per inference
    total_ms: float  # time per inference, all its calls together
    share: float  # of the inference's end-to-end time


@dataclass(frozen=True, kw_only=True, slots=True)
class Breakdown:
    """Where the time of an inference goes, from one trace."""

    source: Literal["etdump", "onnxruntime"]
    trace: str  # the trace file (open an ETDump with `Inspector(etdump_path=...)`; an ORT profile in Perfetto)
    execute_samples_ms: tuple[float, ...]  # each kept inference end to end (Method::execute / model_run)
    operators: tuple[OperatorTime, ...]  # longest first
    delegate_ms: float | None = None  # ExecuTorch: delegate calls per inference (DELEGATE_CALL)
    outside_ms: float | None = None  # ExecuTorch: operators outside any delegate per inference (native_call_*)
    load_ms: float | None = None  # the load as the trace recorded it (Program::load_method; ORT: load + init)

    def __post_init__(self) -> None:
        if not self.execute_samples_ms:
            raise ConfigError(f"{self.trace}: the trace holds no inference to break down (none kept after warm-up)")

    @property
    def iterations(self) -> int:
        return len(self.execute_samples_ms)

    @property
    def execute_ms(self) -> float:
        """Mean end-to-end time of the kept inferences."""
        return math.fsum(self.execute_samples_ms) / self.iterations

    def to_dict(self) -> dict[str, Any]:
        return {**to_dict(self), "iterations": self.iterations, "execute_ms": self.execute_ms}


class _Totals:
    """Calls and time per operator kind, summed over the kept inferences."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, bool, str], list[float]] = {}

    def add(self, name: str, delegated: bool, backend: str, times_ms: Iterable[float]) -> None:
        row = self.rows.setdefault((name, delegated, backend), [0, 0.0])
        for t in times_ms:
            row[0] += 1
            row[1] += t

    def operators(self, iterations: int, execute_ms: float) -> tuple[OperatorTime, ...]:
        out = [
            OperatorTime(
                name=name,
                delegated=delegated,
                backend=backend,
                calls=round(calls / iterations),
                total_ms=total / iterations,
                share=total / iterations / execute_ms if execute_ms > 0 else 0.0,
            )
            for (name, delegated, backend), (calls, total) in self.rows.items()
        ]
        return tuple(sorted(out, key=lambda r: (-r.total_ms, r.name)))


def etdump_breakdown(path: str | Path, *, skip: int = 0, backend: str = "delegate") -> Breakdown:
    """The breakdown of an ETDump whose first `skip` executions were warm-up. `backend` names the delegate of
    delegated operators when the trace does not (without an ETRecord it does not: pass the .pte's delegate id)."""
    from executorch.devtools import Inspector

    try:
        with warnings.catch_warnings():  # no debug buffer was recorded: timings only, as asked
            warnings.filterwarnings("ignore", message="Output Buffer not found")
            inspector = Inspector(etdump_path=str(path))
    except Exception as e:  # a truncated or foreign file; the parser raises many kinds
        raise ConfigError(f"{path} is not a readable ETDump: {type(e).__name__}: {e}") from None
    totals, samples = _Totals(), []
    delegate = outside = 0.0
    load_ms = None
    to_skip = skip
    for block in inspector.event_blocks:
        events = [e for e in block.events if e.perf_data is not None]
        runs = next((len(e.perf_data.raw) for e in events if e.name == "Method::execute"), 0)
        if runs == 0:  # the load block: Method::init, Program::load_method
            load_ms = next((e.perf_data.raw[0] for e in events if e.name == "Program::load_method"), load_ms)
            continue
        drop, to_skip = min(runs, to_skip), to_skip - min(runs, to_skip)
        for e in events:
            raw = list(e.perf_data.raw)
            kept = raw[drop:] if len(raw) == runs else raw  # an event of every run, else (unaligned) all of it
            if e.name == "Method::execute":
                samples += kept
            elif e.name == "DELEGATE_CALL":
                delegate += math.fsum(kept)
            elif e.name.startswith("native_call_"):
                outside += math.fsum(kept)
                totals.add(e.name.removeprefix("native_call_"), False, KERNELS, kept)
            elif e.is_delegated_op:
                totals.add(_INSTANCE.sub("", e.name), True, e.delegate_backend_name or backend, kept)
            # OPERATOR_CALL wraps the native_call before it (op + dispatch): counted once, as the native call
    n = max(len(samples), 1)
    execute_ms = math.fsum(samples) / n
    return Breakdown(
        source="etdump",
        trace=str(path),
        execute_samples_ms=tuple(samples),
        operators=totals.operators(n, execute_ms),
        delegate_ms=delegate / n,
        outside_ms=outside / n,
        load_ms=load_ms,
    )


def ort_breakdown(path: str | Path, *, skip: int = 0) -> Breakdown:
    """The breakdown of an onnxruntime profile (`SessionOptions.enable_profiling`, `end_profiling()`) whose first
    `skip` runs were warm-up."""
    try:
        events = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path} is not a readable onnxruntime profile: {e}") from None
    session = [e for e in events if e.get("cat") == "Session"]
    runs = sorted((e["ts"], e["dur"]) for e in session if e.get("name") == "model_run")
    starts = [ts for ts, _ in runs]
    totals = _Totals()
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue  # fences and other bookkeeping events
        run = bisect.bisect_right(starts, e["ts"]) - 1
        if run < skip:
            continue
        args = e.get("args", {})
        provider = args.get("provider", "CPUExecutionProvider")
        totals.add(args.get("op_name", e["name"]), provider != "CPUExecutionProvider", provider, [e["dur"] / 1e3])
    samples = tuple(dur / 1e3 for _, dur in runs[skip:])
    load = [e["dur"] / 1e3 for e in session if e.get("name") in ("model_loading_uri", "session_initialization")]
    n = max(len(samples), 1)
    return Breakdown(
        source="onnxruntime",
        trace=str(path),
        execute_samples_ms=samples,
        operators=totals.operators(n, math.fsum(samples) / n),
        load_ms=math.fsum(load) if load else None,
    )
