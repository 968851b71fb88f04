"""The published latency figures the estimator is calibrated on, as data (`published.toml`, `published_costs.toml`).

`load_published()` reads both files strictly (`vjepa_edge.config.build`): every figure names a model, a calibration
SoC, the unit and runtime it ran on, its precision, its time and its source; every model has a cost counted by
bench/estimator_calibration.py; every SoC lists the peaks its maker publishes (or a derivation from published
clocks), and none where nothing is published. A figure's `klass` (unit/precision/runtime, e.g. "npu/fp16/tflite")
is the group that shares one efficiency factor in the calibration.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vjepa_edge.config import build, load_toml
from vjepa_edge.errors import ConfigError
from vjepa_edge.profile.cost import Cost
from vjepa_edge.profile.devices import PeakPrecision, UnitKind

DATA_FILE = Path(__file__).with_name("published.toml")
COSTS_FILE = Path(__file__).with_name("published_costs.toml")

Runtime = Literal["tflite", "qnn", "onnx", "coreml"]
FigurePrecision = Literal["fp16", "w8a16", "w8a8"]
# vendor: the chip maker's figure; derived: arithmetic on published clocks and core configurations (the source shows it)
Basis = Literal["vendor", "derived"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Source:
    key: str
    text: str


@dataclass(frozen=True, kw_only=True, slots=True)
class SocPeak:
    """A peak of one unit of a calibration SoC, with where it comes from."""

    unit: UnitKind
    precision: PeakPrecision
    gops: float
    basis: Basis
    source: str

    def __post_init__(self) -> None:
        if self.gops <= 0 or not self.source.strip():
            raise ConfigError("invalid peak", problems=[f"gops={self.gops!r} must be positive and the source named"])


@dataclass(frozen=True, kw_only=True, slots=True)
class Soc:
    """A SoC a published figure was measured on."""

    key: str
    label: str  # the column heading of the leave-one-out table: "S24", "XR2 Gen 2 proxy"
    soc: str
    matches: tuple[str, ...]  # substrings of a device profile's `soc` that mean this SoC (case-insensitive)
    memory_bandwidth_gbs: float
    memory_bandwidth_source: str
    notes: str = ""
    peaks: tuple[SocPeak, ...] = ()

    def peak(self, unit: str, precision: str) -> SocPeak | None:
        return next((p for p in self.peaks if p.unit == unit and p.precision == precision), None)

    def matches_soc(self, soc: str) -> bool:
        return any(m.lower() in soc.lower() for m in self.matches)


@dataclass(frozen=True, kw_only=True, slots=True)
class PublishedModel:
    key: str
    name: str
    input: str
    built_from: str  # how bench/estimator_calibration.py builds it, with every approximation named


@dataclass(frozen=True, kw_only=True, slots=True)
class Figure:
    """One published latency: a model on a SoC's unit, through a runtime at a precision."""

    model: str
    device: str
    unit: UnitKind
    runtime: Runtime
    precision: FigurePrecision
    ms: float
    source: str
    note: str = ""

    def __post_init__(self) -> None:
        if not self.ms > 0:
            raise ConfigError(f"invalid figure {self.model}/{self.device}", problems=[f"ms={self.ms!r}: need > 0"])

    @property
    def klass(self) -> str:
        return f"{self.unit}/{self.precision}/{self.runtime}"


@dataclass(frozen=True, kw_only=True, slots=True)
class Skipped:
    what: str
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Published:
    """published.toml, cross-checked; `costs` (from published_costs.toml) is joined by `load_published`."""

    sources: tuple[Source, ...]
    devices: tuple[Soc, ...]
    models: tuple[PublishedModel, ...]
    figures: tuple[Figure, ...]
    skipped: tuple[Skipped, ...] = ()
    costs: dict[str, Cost] | None = None

    def __post_init__(self) -> None:
        p: list[str] = []
        for name in ("sources", "devices", "models"):
            keys = [x.key for x in getattr(self, name)]
            p += [f"{name}: key {k!r} given twice" for k in sorted({k for k in keys if keys.count(k) > 1})]
        srcs, socs, models = ({x.key for x in xs} for xs in (self.sources, self.devices, self.models))
        seen: set[tuple[str, ...]] = set()
        for i, f in enumerate(self.figures):
            where = f"figures[{i}] ({f.model} on {f.device})"
            p += [f"{where}: unknown model {f.model!r}"] if f.model not in models else []
            p += [f"{where}: unknown device {f.device!r}"] if f.device not in socs else []
            p += (
                [f"{where}: unknown source {f.source!r}; known: {', '.join(sorted(srcs))}"]
                if f.source not in srcs
                else []
            )
            key = (f.model, f.device, f.klass)
            p += [f"{where}: the same model, device and class twice"] if key in seen else []
            seen.add(key)
        if self.costs is not None:
            used = {f.model for f in self.figures}
            p += [
                f"model {m!r}: no cost in {COSTS_FILE.name} (run bench/estimator_calibration.py)"
                for m in sorted(used - set(self.costs))
            ]
        if p:
            raise ConfigError("invalid published figures", problems=p)

    def device(self, key: str) -> Soc:
        return next(d for d in self.devices if d.key == key)

    def cost(self, figure: Figure) -> Cost:
        """The figure's model cost at the figure's precision."""
        assert self.costs is not None
        return self.costs[figure.model].at(figure.precision)


def load_costs(path: Path = COSTS_FILE) -> dict[str, Cost]:
    table = load_toml(path, what="published costs") if path.is_file() else {}
    return {key: build(Cost, value, where=f"{path.name}: {key}") for key, value in table.items()}


def load_figures(path: Path = DATA_FILE) -> Published:
    """published.toml alone (no costs joined): what bench/estimator_calibration.py needs to count the models."""
    table = load_toml(path, what="published figures")
    return build(Published, {**table, "costs": None}, where=path.name)


@functools.cache
def load_published(path: Path = DATA_FILE, costs_path: Path = COSTS_FILE) -> Published:
    """The published figures with their models' costs; one ConfigError lists every problem of the files."""
    data = load_figures(path)
    return Published(
        sources=data.sources,
        devices=data.devices,
        models=data.models,
        figures=data.figures,
        skipped=data.skipped,
        costs=load_costs(costs_path),
    )
