"""Latency estimates for a device that is not attached: the artifact's cost on the device profile's unit, through the
latency model calibrated on published figures (`vjepa_edge.profile.calibrate`), each estimate with its error.

`estimate(cost, device, target)` resolves the export target (or a calibration class such as "npu/fp16/tflite") to a
unit of the device and a calibration class:

    qnn-int8                     -> NPU, npu/w8a8/qnn (ExecuTorch's QNN delegate compiles QNN graphs for the HTP)
    coreml-fp16, mlpackage-fp16  -> Neural Engine, npu/fp16/coreml
    coreml-int8, mlpackage-int8  -> Neural Engine, npu/w8a8/coreml (2 figures: the least calibrated class)
    onnx-int8                    -> CPU, cpu/w8a8/onnx (ONNX Runtime on phone CPUs)
    xnnpack-*, onnx-fp32         -> CPU, cpu/host: calibrated on the host's own measurements when the caller passes
                                    them (`calibrate_host`), else an assumed efficiency (said so, no error claimed)
    vulkan-*                     -> GPU, uncalibrated: no published GPU figure (said so, no error claimed)

A device whose SoC is one of the calibration SoCs (its profile's `soc` names it: "XR2 Gen 2", "8 Gen 3", "A17 Pro")
is estimated with that SoC's fitted speed; any other device with the class factors on its profile's own peak and
bandwidth. `calibration_error` is the class's leave-one-out median absolute error (0.25 = 25 %).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vjepa_edge.errors import ConfigError
from vjepa_edge.profile.calibrate import (
    NOMINAL_GOPS,
    PRIOR_ATTENTION,
    Calibration,
    Terms,
    class_errors,
    peak_order,
    published_calibration,
)
from vjepa_edge.profile.cost import Cost
from vjepa_edge.profile.devices import ComputeUnit, DeviceProfile
from vjepa_edge.profile.published import Soc, load_published

# Efficiency of a CPU against its peak when the host gave no measurements: an assumption, not a calibration (XNNPACK
# GEMMs reach well over half of an Arm core's FMA peak, whole ViTs with attention, norms and activations much less).
DEFAULT_CPU_EFFICIENCY = {"fp32": 0.25, "w8a8": 0.10}
# A GPU with no published figure to calibrate on: assumed, and said so.
DEFAULT_GPU_EFFICIENCY = 0.2
_TARGET_PRECISION = {"fp32": "fp32", "fp16": "fp16", "int8": "w8a8"}


@dataclass(frozen=True, kw_only=True, slots=True)
class HostCalibration:
    """The CPU efficiency measured on this machine: per precision, and its leave-one-out median error."""

    efficiency: dict[str, float]  # cost precision -> efficiency against the host CPU's peak
    error: dict[str, float | None]  # leave-one-out median absolute error (None with a single measurement)
    counts: dict[str, int]


@dataclass(frozen=True, kw_only=True, slots=True)
class Estimate:
    """An estimated latency and everything it rests on."""

    ms: float
    device: str
    target: str
    unit: str  # the compute unit's name in the profile
    unit_kind: str
    precision: str  # the cost's precision: fp32, fp16, w8a8
    klass: str  # the calibration class: "npu/w8a8/qnn", "cpu/host", "gpu/uncalibrated"
    basis: str  # "roofline calibrated on N published figures (...)"
    calibration_error: float | None  # leave-one-out median absolute error of the class; None: not calibrated
    calibrated_soc: str | None  # the calibration SoC whose own fitted speed was used
    peak_gops: float
    peak_source: str
    dense_ms: float
    attention_ms: float
    memory_ms: float
    overhead_ms: float

    @property
    def compute_ms(self) -> float:
        return self.dense_ms + self.attention_ms

    @property
    def bound(self) -> str:
        """Which term dominates: "compute" (dense + attention) or "memory" (weights + activations)."""
        return "compute" if self.compute_ms >= self.memory_ms else "memory"

    def to_dict(self) -> dict[str, Any]:
        out = {f: getattr(self, f) for f in self.__dataclass_fields__}
        return {**out, "compute_ms": self.compute_ms, "bound": self.bound}


_UNIT_KIND = {"qnn": "npu", "coreml": "npu", "xnnpack": "cpu", "onnx": "cpu", "vulkan": "gpu"}
_RUNTIME_BACKEND = {"tflite": "qnn", "qnn": "qnn", "coreml": "coreml", "onnx": "onnx"}


def _class_for(backend: str, precision: str) -> str:
    """The calibration class of a backend at a precision (float work on an NPU runs in fp16)."""
    if backend in ("qnn", "coreml"):
        return f"npu/{'w8a8' if precision == 'w8a8' else 'fp16'}/{backend}"
    if backend == "onnx" and precision == "w8a8":
        return "cpu/w8a8/onnx"
    return "gpu/uncalibrated" if backend == "vulkan" else "cpu/host"


def _resolve(target: str) -> tuple[str, str, str]:
    """(backend, cost precision, class) of an export target name ("qnn-int8"), a backend-precision pair that is not
    a registered target ("qnn-fp16") or a calibration class ("npu/fp16/tflite")."""
    from vjepa_edge.export.targets import TARGETS

    if target.count("/") == 2:
        known = set(published_calibration().efficiency)
        if target not in known:
            raise ConfigError(f"unknown calibration class {target!r}", hint=f"classes: {', '.join(sorted(known))}")
        _, precision, runtime = target.split("/")
        return _RUNTIME_BACKEND[runtime], precision, target
    if target in TARGETS:
        t = TARGETS.get(target)
        backend, precision = t.backend, _TARGET_PRECISION[t.precision]
    else:
        backend, _, p = target.rpartition("-")
        if backend not in _UNIT_KIND or p not in _TARGET_PRECISION:
            raise ConfigError(
                f"unknown target {target!r}",
                hint=f"an export target ({', '.join(TARGETS.names())}), a backend-precision pair "
                f"({'|'.join(_UNIT_KIND)}-{'|'.join(_TARGET_PRECISION)}) or a calibration class "
                f"({', '.join(sorted(published_calibration().efficiency))})",
            )
        precision = _TARGET_PRECISION[p]
    return backend, precision, _class_for(backend, precision)


def _unit(device: DeviceProfile, backend: str, kind: str, *, any_of_kind: bool = False) -> ComputeUnit:
    """The unit that runs `backend` (of `kind`); with `any_of_kind` (a calibration class, not a target) any unit of the
    kind will do."""
    unit = device.unit_for(backend)
    if unit is not None and unit.kind != kind:
        unit = next((u for u in device.units if u.kind == kind and backend in u.backends), None)
    if unit is None and any_of_kind:
        unit = next((u for u in device.units if u.kind == kind), None)
    if unit is None:
        units = ", ".join(f"{u.name} ({'/'.join(u.backends)})" for u in device.units)
        raise ConfigError(
            f"device {device.name!r} has no unit that runs backend {backend!r}",
            hint=f"its units: {units}; add the backend to a unit in devices/{device.name}.toml or pick another target",
        )
    return unit


def _peak(device: DeviceProfile, unit: ComputeUnit, order: Sequence[str], precision: str) -> tuple[float, str]:
    for q in order:
        if (p := unit.peak(q)) is not None:
            return p.gops, f"{q} peak of {unit.name}: {p.source}"
    have = ", ".join(p.precision for p in unit.peaks) or "none"
    raise ConfigError(
        f"device {device.name!r}: unit {unit.name!r} has no {' or '.join(order)} peak to estimate {precision} work on",
        hint=f"its peaks: {have}; add a units.peaks table with precision = {order[0]!r} to devices/{device.name}.toml",
    )


def calibration_soc(device: DeviceProfile) -> Soc | None:
    """The calibration SoC a device profile's `soc` names (the longest match wins), if any."""
    hits = []
    for soc in load_published().devices:
        lengths = [len(m) for m in soc.matches if m.lower() in device.soc.lower()]
        if lengths:
            hits.append((max(lengths), soc))
    return max(hits, key=lambda h: h[0])[1] if hits else None


def _bandwidth(device: DeviceProfile) -> float:
    if device.memory_bandwidth_gbs is None:
        raise ConfigError(
            f"device {device.name!r} has no memory bandwidth",
            hint="a measured profile (host) needs its figures first: vjepa_edge.profile.hostspec.resolve_device",
        )
    return float(device.memory_bandwidth_gbs)


def estimate(cost: Cost, device: DeviceProfile, target: str, *, host: HostCalibration | None = None) -> Estimate:
    """The estimated latency of `cost` on `device` through export target `target` (or a calibration class)."""
    backend, precision, klass = _resolve(target)
    cost = cost.at(precision)
    cal = published_calibration()
    unit = _unit(device, backend, _UNIT_KIND[backend], any_of_kind=target == klass)
    order = peak_order(unit.kind, precision)
    soc = calibration_soc(device) if klass in cal.efficiency else None
    fitted = f"{soc.key}/{unit.kind}" if soc is not None else None
    if fitted is not None and fitted in cal.correction:
        # The SoC's fitted speed: the peak the fit used (published, or nominal when none is) times its correction.
        sp = next((p for q in order if (p := soc.peak(unit.kind, q))), None)
        peak, source = (sp.gops, sp.source) if sp else (NOMINAL_GOPS, "none published: fitted speed at a nominal peak")
        bandwidth, correction = soc.memory_bandwidth_gbs, cal.correction[fitted]
    else:
        soc, correction = None, 1.0
        peak, source = _peak(device, unit, order, precision)
        bandwidth = _bandwidth(device)
    efficiency, error, basis = _efficiency(klass, precision, cal, host)
    runtime = klass.split("/")[2] if klass.count("/") == 2 else backend
    terms = _cost_terms(
        cal,
        cost,
        peak_gops=peak,
        bandwidth_gbs=bandwidth,
        efficiency=efficiency,
        # no attention penalty on a CPU without published figures; an uncalibrated GPU gets the prior's
        attention=cal.attention.get(runtime, 1.0 if unit.kind == "cpu" else math.exp(PRIOR_ATTENTION[0])),
        correction=correction,
    )
    if soc is not None:
        basis += f"; {soc.label}'s own fitted speed"
    return _make(terms, device, target, unit, precision, klass, basis, error, soc, peak, source)


def _cost_terms(cal: Calibration, cost: Cost, **device: Any) -> Terms:
    """The model's terms for `cost` on a unit described by `device` (peak, bandwidth, efficiency, ...)."""
    return cal.terms(
        dense=cost.dense_flops,
        attn=cost.attn_flops,
        bytes=cost.weight_bytes + cost.activation_bytes,
        ops=cost.ops,
        **device,
    )


def _efficiency(
    klass: str, precision: str, cal: Calibration, host: HostCalibration | None
) -> tuple[float, float | None, str]:
    if klass in cal.efficiency:
        n = cal.counts[klass]
        return (
            cal.efficiency[klass],
            class_errors()[klass],
            f"roofline calibrated on {cal.n_figures} published figures ({n} of class {klass}); "
            "error = leave-one-out median",
        )
    if klass == "cpu/host":
        key = _host_key(precision)
        if host is not None and key in host.efficiency:
            basis = f"roofline calibrated on {host.counts[key]} host measurements"
            return host.efficiency[key], host.error[key], basis
        e = DEFAULT_CPU_EFFICIENCY[key]
        return e, None, f"uncalibrated roofline: assumed CPU efficiency {e} (pass host measurements to calibrate)"
    e = DEFAULT_GPU_EFFICIENCY
    return e, None, f"uncalibrated roofline: no published GPU figure; assumed efficiency {e}"


def _host_key(precision: str) -> str:
    return "w8a8" if precision in ("w8a8", "w8a16") else "fp32"


def _make(
    terms: Terms,
    device: DeviceProfile,
    target: str,
    unit: ComputeUnit,
    precision: str,
    klass: str,
    basis: str,
    error: float | None,
    soc: Soc | None,
    peak: float,
    source: str,
) -> Estimate:
    return Estimate(
        ms=terms.ms,
        device=device.name,
        target=target,
        unit=unit.name,
        unit_kind=unit.kind,
        precision=precision,
        klass=klass,
        basis=basis,
        calibration_error=error,
        calibrated_soc=soc.key if soc is not None else None,
        peak_gops=peak,
        peak_source=source,
        dense_ms=terms.dense_ms,
        attention_ms=terms.attention_ms,
        memory_ms=terms.memory_ms,
        overhead_ms=terms.overhead_ms,
    )


def calibrate_host(host: DeviceProfile, measurements: Sequence[tuple[Cost, float]]) -> HostCalibration:
    """The host CPU's efficiency per precision from measured latencies (cost at the precision it ran, ms), with the
    leave-one-out median error where there are two or more. `host` must carry its measured peaks and bandwidth."""
    cal = published_calibration()
    unit = _unit(host, "xnnpack", "cpu")
    bandwidth = _bandwidth(host)
    seen: dict[str, list[tuple[float, float, float]]] = {}  # precision -> (compute at efficiency 1, rest, ms)
    for cost, ms in measurements:
        if not (isinstance(ms, int | float) and math.isfinite(ms) and ms > 0):
            raise ConfigError(f"host measurement {ms!r} ms: need a positive time")
        peak, _ = _peak(host, unit, peak_order("cpu", cost.precision), cost.precision)
        t = _cost_terms(cal, cost, peak_gops=peak, bandwidth_gbs=bandwidth, efficiency=1.0, attention=1.0)
        row = (t.dense_ms + t.attention_ms, t.memory_ms + t.overhead_ms, float(ms))
        seen.setdefault(_host_key(cost.precision), []).append(row)
    efficiency, error = {}, {}
    for key, xs in seen.items():
        efficiency[key] = _host_efficiency(xs)
        errs = []
        for i, (compute, rest, ms) in enumerate(xs):
            others = xs[:i] + xs[i + 1 :]
            if others:
                errs.append(abs((rest + compute / _host_efficiency(others)) / ms - 1))
        error[key] = float(np.median(errs)) if errs else None
    return HostCalibration(efficiency=efficiency, error=error, counts={k: len(v) for k, v in seen.items()})


def _host_efficiency(xs: Sequence[tuple[float, float, float]]) -> float:
    """The median efficiency that explains each measurement's time left after memory and overhead (a measurement the
    model puts wholly in memory and overhead counts at the lowest, 1 %: slower than the model can say)."""
    return float(np.median([compute / (ms - rest) if ms > rest else 0.01 for compute, rest, ms in xs]))
