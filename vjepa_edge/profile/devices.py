"""Device profiles: one TOML file per device in `devices/` (a wheel carries them as vjepa_edge/devices).

A profile says what the device is (its SoC and compute units with their published peak figures, each with its
source), how fast its memory is, which export targets to try on it in order, the latency budget of its use (a
90 Hz headset has 11.1 ms a frame) and how to reach it (`host`: this machine; `adb`; `ssh`; `none`: estimate
only). The `host` profile types no figures: its peaks are measured on the machine at hand
(`vjepa_edge.profile.hostspec`). Files are loaded strictly (`vjepa_edge.config.build`): every problem of a file
is reported in one `ConfigError`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from vjepa_edge.config import build, load_toml, to_dict
from vjepa_edge.errors import ConfigError, RegistryError

# Profiles ship in the repository's devices/ folder; a wheel carries them as vjepa_edge/devices.
DEVICE_DIRS = (Path(__file__).resolve().parents[2] / "devices", Path(__file__).resolve().parents[1] / "devices")

UnitKind = Literal["cpu", "gpu", "npu"]
PeakPrecision = Literal["fp32", "fp16", "int8"]
TransportKind = Literal["host", "adb", "ssh", "none"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Peak:
    """A published peak throughput of a compute unit at one precision, in GFLOP/s (GOP/s for int8)."""

    precision: PeakPrecision
    gops: float
    source: str  # where the figure comes from (a URL or a document and page); "measured" only in host.toml

    def __post_init__(self) -> None:
        p: list[str] = []
        if not (isinstance(self.gops, int | float) and math.isfinite(self.gops) and self.gops > 0):
            p.append(f"gops={self.gops!r}: need a positive peak")
        if not self.source.strip():
            p.append("source: name where the figure comes from")
        if p:
            raise ConfigError("invalid peak", problems=p)


@dataclass(frozen=True, kw_only=True, slots=True)
class ComputeUnit:
    """A CPU, GPU or NPU of the SoC, the export backends that run on it and its published peaks."""

    name: str  # "Kryo (1+4+3) CPU", "Hexagon NPU (HTP v69)", "16-core Neural Engine"
    kind: UnitKind
    backends: tuple[str, ...]  # export backends (`vjepa-edge list targets`, column backend) that run on it
    peaks: tuple[Peak, ...] = ()

    def __post_init__(self) -> None:
        p: list[str] = []
        from vjepa_edge.export.targets import TARGETS

        known = sorted({t.backend for _, t in TARGETS.items()})
        if not self.backends:
            p.append(f"backends: name at least one of {', '.join(known)}")
        for b in self.backends:
            if b not in known:
                p.append(f"backends: unknown backend {b!r}; known: {', '.join(known)}")
        precisions = [x.precision for x in self.peaks]
        if len(set(precisions)) != len(precisions):
            p.append("peaks: one peak per precision")
        if p:
            raise ConfigError(f"invalid compute unit {self.name!r}", problems=p)

    def peak(self, precision: str) -> Peak | None:
        return next((x for x in self.peaks if x.precision == precision), None)


@dataclass(frozen=True, kw_only=True, slots=True)
class Transport:
    """How to reach the device: `host` (run here), `adb` (Android: push, run ExecuTorch's runner, pull the
    ETDump), `ssh` (Linux boards), `none` (no way to run it: estimates only)."""

    kind: TransportKind = "none"
    serial: str = ""  # adb: the device serial (`adb devices`); empty = the only attached device
    address: str = ""  # ssh: user@host
    workdir: str = "/data/local/tmp/vjepa-edge"  # where artifacts and the runner go on the device
    runner: str = ""  # path of ExecuTorch's executor_runner built for the device, on this machine


@dataclass(frozen=True, kw_only=True, slots=True)
class DeviceProfile:
    """One `devices/*.toml` file. Fields default only so that one pass reports every problem of a file: each is
    required, and `__post_init__` says which are missing."""

    name: str
    description: str = ""
    soc: str = ""
    units: tuple[ComputeUnit, ...] = ()
    memory_bandwidth_gbs: float | None = None
    memory_bandwidth_source: str = ""
    targets: tuple[str, ...] = ()  # export targets to try on it, in order (`vjepa-edge list targets`)
    # The latency budget of its use, per inference. Required, checked in __post_init__ (not by a missing key), so a
    # file without it still gets every other problem reported in the same pass.
    budget_ms: float | None = None
    budget_use: str = ""  # what the budget is: "90 Hz headset frame", "30 Hz glasses perception"
    transport: Transport = field(default_factory=Transport)

    def __post_init__(self) -> None:
        p: list[str] = []
        from vjepa_edge.export.targets import TARGETS

        for name in ("description", "soc", "memory_bandwidth_source"):
            if not getattr(self, name).strip():
                p.append(f"{name}: required, not empty")
        if not self.units:
            p.append("units: describe at least one valid compute unit ([[units]])")
        bw = self.memory_bandwidth_gbs
        if bw is None:
            p.append("memory_bandwidth_gbs: required key is missing")
        elif not (isinstance(bw, int | float) and math.isfinite(bw) and bw > 0):
            p.append(f"memory_bandwidth_gbs={bw!r}: need a positive bandwidth")
        if self.budget_ms is None:
            p.append("budget_ms: required key is missing (the latency budget of the device's use, in ms)")
        elif not (isinstance(self.budget_ms, int | float) and math.isfinite(self.budget_ms) and self.budget_ms > 0):
            p.append(f"budget_ms={self.budget_ms!r}: need a positive budget in milliseconds")
        if not self.budget_use.strip():
            p.append("budget_use: say what the budget is for (\"90 Hz headset frame\")")
        if not self.targets:
            p.append("targets: name at least one export target to try")
        for t in self.targets:
            if t not in TARGETS:
                p.append(f"targets: unknown export target {t!r}; known: {', '.join(TARGETS.names())}")
        if p:
            raise ConfigError(f"invalid device profile {self.name!r}", problems=p)

    def unit_for(self, backend: str) -> ComputeUnit | None:
        """The compute unit that runs `backend`, the first listed when several do."""
        return next((u for u in self.units if backend in u.backends), None)

    def to_dict(self) -> dict:
        return to_dict(self)


def device_dirs() -> list[Path]:
    return [d for d in DEVICE_DIRS if d.is_dir()]


def device_files() -> list[Path]:
    """Every bundled device profile file, by name (the repository's folder wins over the wheel's)."""
    seen: dict[str, Path] = {}
    for d in device_dirs():
        for f in sorted(d.glob("*.toml")):
            seen.setdefault(f.stem, f)
    return [seen[k] for k in sorted(seen)]


def list_devices() -> list[str]:
    return [f.stem for f in device_files()]


def load_device_file(path: str | Path) -> DeviceProfile:
    """Load one device profile file strictly; every problem in one ConfigError naming the file."""
    path = Path(path)
    table = load_toml(path, what="device profile")
    if isinstance(table, dict) and "name" not in table:
        table = {"name": path.stem, **table}
    try:
        return build(DeviceProfile, table, where=path.name)
    except ConfigError as e:
        raise ConfigError(
            f"invalid device profile {path}",
            problems=e.problems or [e.message],
            hint="devices/quest3.toml is a valid example",
        ) from None


def get_device(name: str) -> DeviceProfile:
    """The bundled profile `name`, or a path to a profile file; an unknown name names the known ones."""
    if name.endswith(".toml") or "/" in name:
        return load_device_file(name)
    for f in device_files():
        if f.stem == name:
            return load_device_file(f)
    import difflib

    names = list_devices()
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.4)
    suggestion = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise RegistryError(f"unknown device {name!r}.{suggestion}", hint=f"devices: {', '.join(names)}")
