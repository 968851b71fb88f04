"""`vjepa-edge profile ARTIFACT_OR_RUN --device NAME|all`: does the student fit the device's frame budget?

Everything refusable is refused first: the devices (`devices/*.toml`, strictly), the options, the artifacts
(`vjepa_edge.export.artifacts`). Then, per device:

- **measured** where the artifact can run: on `host` (this machine: `vjepa_edge.profile.measure`, every raw sample
  kept, the per-operator breakdown from ExecuTorch's ETDump read by its Inspector or onnxruntime's profiler), or
  through the device's transport when it is attached (`vjepa_edge.profile.transports`: adb or ssh);
- **estimated** otherwise, from the artifact's FLOPs and bytes and the device profile
  (`vjepa_edge.profile.estimate`: a roofline calibrated on published measurements; each estimate says its
  leave-one-out calibration error);
- a **verdict** against the device's budget and, when over, the configurations that would fit
  (`vjepa_edge.profile.verdict`).

The device's `targets` say which artifacts it runs: the run's artifacts of those targets are profiled; when the
run has none of them, the device's first target is estimated from the student (marked "not exported"). Results go
to `RUN/profile/` (or beside the artifact): `profile.json` (every row, raw samples included), `profile.png`, and
the ETDump files of measured ExecuTorch runs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vjepa_edge.config import check_count
from vjepa_edge.errors import ConfigError, VjepaEdgeError
from vjepa_edge.export.artifacts import Artifact, find_artifacts
from vjepa_edge.profile.devices import DeviceProfile, get_device, list_devices
from vjepa_edge.runinfo import write_json

log = logging.getLogger(__name__)

REPORT = "profile.json"
PLOT = "profile.png"


@dataclass(frozen=True, kw_only=True, slots=True)
class ProfileOptions:
    devices: tuple[str, ...] = ("host",)  # names, paths to device files, or ("all",)
    iterations: int = 50
    warmup: int = 10
    threads: int | None = None  # host measurements: None = every usable core

    def problems(self) -> list[str]:
        p: list[str] = []
        check_count("iterations", self.iterations, p, minimum=3, maximum=100_000)
        check_count("warmup", self.warmup, p, minimum=0, maximum=10_000)
        if self.threads is not None:
            check_count("threads", self.threads, p, maximum=1024)
        if not self.devices:
            p.append("devices: name at least one device (or all)")
        return p


@dataclass(frozen=True, slots=True)
class ProfileResult:
    results: list[dict[str, Any]]
    folder: Path
    report: dict[str, Any]


def resolve_devices(names: tuple[str, ...]) -> list[DeviceProfile]:
    """Every named device profile loaded strictly (all of them for `all`); one error listing every bad name."""
    wanted = list_devices() if "all" in names else list(dict.fromkeys(names))
    profiles, problems = [], []
    for name in wanted:
        try:
            profiles.append(get_device(name))
        except ConfigError as e:
            problems.append(e.message if not e.hint else f"{e.message} ({e.hint})")
    if problems:
        raise ConfigError.of(problems, title="unknown or invalid devices", hint="vjepa-edge list devices")
    return profiles


def _out_folder(artifacts: list[Artifact], out: str | Path | None) -> Path:
    if out is not None:
        return Path(out).expanduser()
    a = artifacts[0]
    return a.run.profile if a.run is not None else a.path.parent / "profile"


class _Costs:
    """The FLOPs and bytes of each artifact's student at its precision, counted once per (student, precision)."""

    def __init__(self) -> None:
        self._arch: dict[Path, Any] = {}
        self._cost: dict[tuple[Path, str], Any] = {}

    def arch(self, student: Path) -> Any:
        if student not in self._arch:
            from vjepa_edge.models.checkpoint import read_arch

            self._arch[student] = read_arch(student).encoder
        return self._arch[student]

    def cost(self, a: Artifact, precision: str | None = None) -> Any | None:
        if a.student is None or not a.student.is_file():
            return None
        key = (a.student, precision or a.precision)
        if key not in self._cost:
            from vjepa_edge.profile.verdict import arch_cost

            self._cost[key] = arch_cost(self.arch(a.student), key[1])
        return self._cost[key]


def _estimate_row(
    device: DeviceProfile, a: Artifact, target: str, cost: Any, *, exported: bool, host: Any
) -> dict[str, Any]:
    from vjepa_edge.profile.estimate import estimate

    est = estimate(cost, device, target, host=host)
    return {
        "device": device.name,
        "artifact": str(a.path) if exported else None,
        "target": target,
        "measured": False,
        "where": "estimate",
        "p50_ms": est.ms,
        "p90_ms": None,
        "estimate": est.to_dict(),
        "calibration_error": est.calibration_error,
        "flops": cost.flops,
        "bytes": cost.bytes,
        "cost": cost.to_dict(),
        "note": None if exported else f"not exported: estimated for {target} from the student",
    }


def _error_row(device: DeviceProfile, a: Artifact, target: str, error: str) -> dict[str, Any]:
    return {
        "device": device.name,
        "artifact": str(a.path),
        "target": target,
        "measured": False,
        "p50_ms": None,
        "p90_ms": None,
        "flops": None,
        "bytes": None,
        "error": error,
    }


def _try_estimate(
    device: DeviceProfile, a: Artifact, target: str, cost: Any, *, exported: bool, host: Any, not_measured: str | None
) -> dict[str, Any]:
    """An estimate row, or an error row saying why the device profile cannot estimate this target."""
    try:
        row = _estimate_row(device, a, target, cost, exported=exported, host=host)
    except ConfigError as e:
        return _error_row(device, a, target, f"cannot estimate: {e.message}" + (f" ({e.hint})" if e.hint else ""))
    row["not_measured"] = not_measured
    return row


def _measured_row(device: DeviceProfile, a: Artifact, m: Any, cost: Any | None) -> dict[str, Any]:
    s = m.stats
    return {
        "device": device.name,
        "artifact": str(a.path),
        "target": a.name,
        "measured": True,
        "where": m.where,
        "p50_ms": s.p50,
        "p90_ms": s.p90,
        "min_ms": s.min,
        "mean_ms": s.mean,
        "trimmed_mean_ms": s.trimmed_mean,
        "load_ms": m.load_ms,
        "peak_memory_mb": m.peak_memory_mb,
        "threads": m.threads,
        "iterations": m.iterations,
        "warmup": m.warmup,
        "samples_ms": list(m.samples_ms),
        "operators": [dict(o) for o in m.operators],
        "etdump": str(m.etdump) if getattr(m, "etdump", None) else None,
        "flops": cost.flops if cost is not None else None,
        "bytes": cost.bytes if cost is not None else None,
        "cost": cost.to_dict() if cost is not None else None,
    }


def _measure(device: DeviceProfile, a: Artifact, options: ProfileOptions, folder: Path) -> Any | None:
    """A Measurement through the device's transport, or why it cannot run there (then it is estimated)."""
    from vjepa_edge.profile.transports import get_transport

    transport = get_transport(device.transport.kind)
    reason = transport.unavailable(device, a.path)
    if reason:
        log.debug("%s on %s: not measured (%s); estimating", a.name, device.name, reason)
        return reason
    return transport.measure(
        device, a.path, warmup=options.warmup, iterations=options.iterations, threads=options.threads, out=folder
    )


def _device_rows(
    device: DeviceProfile,
    artifacts: list[Artifact],
    options: ProfileOptions,
    folder: Path,
    costs: _Costs,
    host: Any,
) -> list[dict[str, Any]]:
    ours = [a for a in artifacts if a.target is not None and a.target.name in device.targets]
    if device.transport.kind == "host":  # host measures whatever runs here, in its target order
        order = {t: i for i, t in enumerate(device.targets)}
        ours.sort(key=lambda a: order.get(a.name, len(order)))
    rows: list[dict[str, Any]] = []
    for a in ours:
        cost = costs.cost(a)
        m = _measure(device, a, options, folder) if device.transport.kind != "none" else "no transport: estimates only"
        if not isinstance(m, str):
            rows.append(_measured_row(device, a, m, cost))
        elif cost is not None:
            rows.append(_try_estimate(device, a, a.name, cost, exported=True, host=host, not_measured=m))
        else:
            rows.append(_error_row(device, a, a.name, f"not measured ({m}) and no export report to estimate from"))
    first = device.targets[0]
    if device.transport.kind != "host" and first not in {r["target"] for r in rows}:
        # the device's preferred target was not exported (the QNN SDK, a Mac): estimate it from the student too
        a = next((x for x in artifacts if x.student is not None), None)
        if a is not None:
            from vjepa_edge.export.targets import get_target

            cost = costs.cost(a, get_target(first).precision)
            rows.insert(0, _try_estimate(device, a, first, cost, exported=False, host=host, not_measured=None))
    if not rows:  # none of the run's artifacts is for this device: estimate its first target from the student
        a = next((x for x in artifacts if x.student is not None), None)
        if a is None:
            raise VjepaEdgeError(
                f"cannot profile on {device.name}: none of the artifacts is for its targets "
                f"({', '.join(device.targets)}) and none has an export report to estimate from",
                hint=f"export one: vjepa-edge export RUN --target {device.targets[0]}",
            )
        target = device.targets[0]
        from vjepa_edge.export.targets import get_target

        cost = costs.cost(a, get_target(target).precision)
        rows.append(_try_estimate(device, a, target, cost, exported=False, host=host, not_measured=None))
    return rows


def _verdict(
    device: DeviceProfile, rows: list[dict[str, Any]], artifacts: list[Artifact], costs: _Costs, host: Any
) -> dict[str, Any]:
    """The device's summary: its best row (measured preferred over estimated, then fastest) against the budget."""
    usable = [r for r in rows if r["p50_ms"] is not None]
    if not usable:
        errors = "; ".join(f"{r['target']}: {r['error']}" for r in rows)
        raise VjepaEdgeError(f"nothing could be profiled on {device.name}: {errors}", hint="vjepa-edge list devices")
    best = min(usable, key=lambda r: (not r["measured"], r["p50_ms"]))
    fits = best["p50_ms"] <= device.budget_ms
    summary = {
        "device": device.name,
        "soc": device.soc,
        "budget_ms": device.budget_ms,
        "budget_use": device.budget_use,
        "measured": best["measured"],
        "p50_ms": best["p50_ms"],
        "p90_ms": best["p90_ms"],
        "fits": fits,
        "flops": best["flops"],
        "bytes": best["bytes"],
        "target": best["target"],
        "artifact": best["artifact"],
        "calibration_error": best.get("calibration_error"),
        "operators": best.get("operators"),
        "rows": rows,
        "alternatives": [],
    }
    a = next((x for x in artifacts if x.student is not None and x.student.is_file()), None)
    if not fits and a is not None:
        from vjepa_edge.profile.estimate import estimate
        from vjepa_edge.profile.verdict import alternatives

        def estimate_fn(cost: Any, dev: DeviceProfile, target: str) -> Any:
            return estimate(cost, dev, target, host=host)

        summary["alternatives"] = alternatives(costs.arch(a.student), device, best["target"], estimate_fn=estimate_fn)
    how = "measured p50" if best["measured"] else "estimated"
    verdict = f"{'fits' if fits else 'over budget'}: {how} {best['p50_ms']:.1f} ms vs {device.budget_ms:.1f} ms"
    summary["verdict"] = verdict + f" ({device.budget_use})"
    return summary


def _host_calibration(host: DeviceProfile, rows: list[dict[str, Any]]) -> Any | None:
    """The host CPU's efficiency from this run's measured XNNPACK / ONNX rows (their cost at their precision)."""
    from vjepa_edge.profile.cost import Cost
    from vjepa_edge.profile.estimate import calibrate_host

    pairs = [(Cost(**r["cost"]), r["p50_ms"]) for r in rows if r["measured"] and r.get("cost")]
    return calibrate_host(host, pairs) if pairs else None


def _previous_host_calibration(folder: Path, costs: _Costs, artifacts: list[Artifact]) -> Any | None:
    """Host measurements of an earlier `profile` of the same folder, so `--device quest3` alone still gets CPU
    estimates calibrated on this machine rather than an assumed efficiency."""
    import json

    from vjepa_edge.profile.devices import get_device
    from vjepa_edge.profile.hostspec import resolve_device

    f = folder / REPORT
    try:
        old = json.loads(f.read_text()) if f.is_file() else {}
        rows = [r for d in old.get("devices", []) if d.get("device") == "host" for r in d.get("rows", [])]
        return _host_calibration(resolve_device(get_device("host")), rows) if rows else None
    except (OSError, ValueError, KeyError, TypeError, VjepaEdgeError) as e:
        log.info("earlier host measurements in %s not used: %s", f, e)
        return None


def profile(
    arg: str | Path, options: ProfileOptions, *, out: str | Path | None = None, progress: bool = True
) -> ProfileResult:
    """Profile the artifacts named by `arg` (ARTIFACT_OR_RUN) on every device of `options`; see the module doc."""
    from vjepa_edge.paths import ensure, out_dir_problems

    p = options.problems()
    if p:
        raise ConfigError.of(p, title="invalid profile options", hint="see `vjepa-edge profile --help`")
    devices = resolve_devices(options.devices)
    artifacts = find_artifacts(arg)
    folder = _out_folder(artifacts, out)
    ensure(out_dir_problems(folder), hint="pass --out DIR, somewhere this user can write")
    from vjepa_edge.profile.hostspec import resolve_device

    devices = [resolve_device(d) for d in devices]
    devices.sort(key=lambda d: d.transport.kind != "host")  # host first: its measurements calibrate CPU estimates
    costs = _Costs()
    t0 = time.perf_counter()
    results, host = [], _previous_host_calibration(folder, costs, artifacts)
    for device in devices:
        rows = _device_rows(device, artifacts, options, folder, costs, host)
        if device.transport.kind == "host":
            host = _host_calibration(device, rows) or host
        results.append(_verdict(device, rows, artifacts, costs, host))
    from vjepa_edge.profile.plot import plot_profile

    name = artifacts[0].run.root.name if artifacts[0].run is not None else artifacts[0].path.name
    plot = plot_profile(results, folder / PLOT, title=f"{name}: latency per device against its budget")
    report = {
        "source": str(Path(arg).expanduser()),
        "artifacts": [str(a.path) for a in artifacts],
        "devices": results,
        "plot": str(plot),
        "seconds": time.perf_counter() - t0,
    }
    write_json(folder / REPORT, report)
    return ProfileResult(results=results, folder=folder, report=report)
