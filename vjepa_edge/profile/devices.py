"""Device profiles: one TOML file per device in `devices/` (a wheel carries them as vjepa_edge/devices).

A profile says what the device is (its SoC and compute units with their published peak figures, each with its
source), how fast its memory is, which export targets to try on it in order, the latency budget of its use (a
90 Hz headset has 11.1 ms a frame) and how to reach it (`host`: this machine; `adb`; `ssh`; `none`: estimate
only). Every peak says where it comes from (`source`) and how it was obtained (`basis`): a vendor's figure, a
derivation from published facts (cores x GHz x FLOPs/cycle), a third-party figure, an assumption where nothing is
published, or a measurement. The `host` profile (`measured = true`) types no figures: its peaks and bandwidth are
measured on the machine at hand (`vjepa_edge.profile.hostspec.resolve_device`). Files are loaded strictly
(`vjepa_edge.config.build`): every problem of a file is reported in one `ConfigError`.
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
# vendor: the chip maker's own figure; derived: arithmetic on published facts (the derivation is the source);
# third-party: a reviewer's or database's figure; assumed: nothing is published, the source says what is assumed;
# achieved: the throughput a published benchmark reached on a real model (a lower bound of the peak, already net of
# the efficiency an estimate would otherwise assume; used where a vendor publishes no peak);
# measured: filled in on this machine by hostspec (never typed in a file).
PeakBasis = Literal["vendor", "derived", "third-party", "assumed", "achieved", "measured"]
# What a measured profile's file is told when it types the figures that hostspec measures.
_MEASURED_PEAKS = (
    "measured = true, so its peaks are measured on the machine (vjepa_edge.profile.hostspec); "
    "remove the typed units.peaks tables"
)
_MEASURED_BANDWIDTH = "memory_bandwidth_gbs: measured = true, so the bandwidth is measured on the machine; remove it"


@dataclass(frozen=True, kw_only=True, slots=True)
class Peak:
    """A peak throughput of a compute unit at one precision, in GFLOP/s (GOP/s for int8), and where it comes from."""

    precision: PeakPrecision
    gops: float
    source: str  # where the figure comes from: a URL or a document, or the derivation with its inputs' sources
    basis: PeakBasis = "vendor"

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
    # True for the machine at hand: the file types no peaks and no bandwidth, `hostspec.resolve_device` measures them.
    measured: bool = False

    def __post_init__(self) -> None:
        p: list[str] = []
        from vjepa_edge.export.targets import TARGETS

        for name in ("description", "soc"):
            if not getattr(self, name).strip():
                p.append(f"{name}: required, not empty")
        if not self.units:
            p.append("units: describe at least one valid compute unit (a units table)")
        p += self._measured_problems() if self.measured else self._typed_problems()
        if self.budget_ms is None:
            p.append("budget_ms: required key is missing (the latency budget of the device's use, in ms)")
        elif not (isinstance(self.budget_ms, int | float) and math.isfinite(self.budget_ms) and self.budget_ms > 0):
            p.append(f"budget_ms={self.budget_ms!r}: need a positive budget in milliseconds")
        if not self.budget_use.strip():
            p.append('budget_use: say what the budget is for ("90 Hz headset frame")')
        if not self.targets:
            p.append("targets: name at least one export target to try")
        for t in self.targets:
            if t not in TARGETS:
                p.append(f"targets: unknown export target {t!r}; known: {', '.join(TARGETS.names())}")
        if p:
            raise ConfigError(f"invalid device profile {self.name!r}", problems=p)

    def _typed_problems(self) -> list[str]:
        """A profile of a device we cannot measure states its figures, each with a source."""
        p: list[str] = []
        bw = self.memory_bandwidth_gbs
        if bw is None:
            p.append("memory_bandwidth_gbs: required key is missing (GB/s, published or derived from the memory type)")
        elif not (isinstance(bw, int | float) and math.isfinite(bw) and bw > 0):
            p.append(f"memory_bandwidth_gbs={bw!r}: need a positive bandwidth")
        if not self.memory_bandwidth_source.strip():
            p.append("memory_bandwidth_source: required, not empty (a URL, or the derivation from the memory type)")
        for u in self.units:
            if not u.peaks:
                p.append(f"units {u.name!r}: no peaks; give at least one figure (a units.peaks table) with its source")
            if any(x.basis == "measured" for x in u.peaks):
                p.append(f"units {u.name!r}: basis 'measured' is for profiles with measured = true only")
        return p

    def _measured_problems(self) -> list[str]:
        """A measured profile (host) leaves its figures to `hostspec`; once resolved they are all measured."""
        p: list[str] = []
        for u in self.units:
            if any(x.basis != "measured" for x in u.peaks):
                p.append(f"units {u.name!r}: {_MEASURED_PEAKS}")
        if self.memory_bandwidth_gbs is not None and not self.memory_bandwidth_source.startswith("measured"):
            p.append(_MEASURED_BANDWIDTH)
        return p

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
    typed = _typed_figures(table)
    try:
        profile = build(DeviceProfile, table, where=path.name)
    except ConfigError as e:
        typed += e.problems or [e.message]
    if typed:
        hint = "devices/host.toml is a valid measured profile" if table.get("measured") is True else None
        raise ConfigError(
            f"invalid device profile {path}", problems=typed, hint=hint or "devices/quest3.toml is a valid example"
        )
    return profile


def _typed_figures(table: dict) -> list[str]:
    """A measured profile's file types no figures (hostspec measures them): one problem per typed figure, removed
    from `table` so that the profile's own checks do not report them again."""
    if table.get("measured") is not True:
        return []
    p = []
    if "memory_bandwidth_gbs" in table:
        del table["memory_bandwidth_gbs"]
        table.pop("memory_bandwidth_source", None)
        p.append(_MEASURED_BANDWIDTH)
    units = table.get("units")
    for u in units if isinstance(units, list) else []:
        if isinstance(u, dict) and u.pop("peaks", None):
            p.append(f"units {u.get('name', '?')!r}: {_MEASURED_PEAKS}")
    return p


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
