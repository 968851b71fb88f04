"""The machine at hand, measured: the figures that `devices/host.toml` leaves out (`measured = true`).

`host_spec()` reads the CPU model, the cores this process may use and the instruction-set flags that decide which
kernels run (AVX2, AVX-512, VNNI, BF16, AMX; on Arm the dot product, I8MM, BF16), then measures with torch on all
those cores: the best fp32 matmul throughput of a few 1024 and 2048 square products (about a second) and the memory
bandwidth of a large tensor copy. A measurement is cached as JSON under the user cache
(`$VJEPA_EDGE_CACHE/hostspec/`), keyed by CPU model, core count and torch version, so a repeat call reads the
file and imports nothing heavy. `resolve_device(profile)` fills a measured profile's CPU peak and bandwidth from it
and returns every other profile unchanged.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import logging
import platform
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vjepa_edge.profile.devices import DeviceProfile, Peak
from vjepa_edge.runinfo import available_cores, cpu_model_and_flags, write_json

log = logging.getLogger(__name__)

MATMUL_SIZES = (1024, 2048)
MATMUL_REPEATS = 3  # per size; the best one counts (the least disturbed by other processes)
COPY_BYTES = 256 * 2**20  # well beyond the last-level cache of a desktop or laptop CPU
COPY_REPEATS = 5


@dataclass(frozen=True, kw_only=True, slots=True)
class HostSpec:
    """What this machine is and what it measured. The key (model, cores, torch) names its cache file."""

    cpu_model: str
    cores: int  # logical CPUs this process may run on (the affinity mask, not the machine's total)
    flags: tuple[str, ...]  # of runinfo.CPU_FLAGS, the ones this CPU has
    machine: str  # platform.machine(): x86_64, arm64, aarch64
    torch_version: str
    fp32_gflops: float  # best fp32 matmul throughput, torch on `cores` threads
    int8_gops: float = 0.0  # best int8 x int8 -> int32 matmul throughput (torch._int_mm); 0: not measured
    bandwidth_gbs: float  # large tensor copy, read + written bytes per second
    date: str  # of the measurement, ISO

    @property
    def source(self) -> str:
        return f"measured on {self.cpu_model}, {self.cores} cores, {self.date}"

    @property
    def peak_source(self) -> str:
        sizes = " and ".join(f"{n}x{n}" for n in MATMUL_SIZES)
        return f"{self.source} (torch {self.torch_version}: fp32 matmul {sizes}, best of {MATMUL_REPEATS} each)"

    @property
    def int8_source(self) -> str:
        sizes = " and ".join(f"{n}x{n}" for n in MATMUL_SIZES)
        return f"{self.source} (torch {self.torch_version}: int8 torch._int_mm {sizes}, best of {MATMUL_REPEATS} each)"

    @property
    def bandwidth_source(self) -> str:
        return f"{self.source} (torch {self.torch_version}: {COPY_BYTES >> 20} MiB tensor copy, read + write bytes)"

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "flags": list(self.flags)}


def host_spec(*, refresh: bool = False) -> HostSpec:
    """This machine's spec: from the cache when this CPU, core count and torch version were measured before, else
    measured now (a second or two) and cached. `refresh` measures again."""
    model, flags = cpu_model_and_flags()
    cores = available_cores()
    version = _torch_version()
    path = cache_path(model, cores, version)
    if not refresh:
        cached = _read_cache(path, model, cores, version)
        if cached is not None:
            return cached
    spec = measure_host(cpu_model=model, cores=cores, flags=flags, torch_version=version)
    write_json(path, spec.to_dict())
    log.info("host spec measured and cached in %s", path)
    return spec


def resolve_device(profile: DeviceProfile) -> DeviceProfile:
    """A measured profile (host) with its CPU units' fp32 peak, its SoC and its bandwidth filled in from
    `host_spec()`; any other profile as it is."""
    if not profile.measured:
        return profile
    spec = host_spec()
    peaks = (Peak(precision="fp32", gops=spec.fp32_gflops, source=spec.peak_source, basis="measured"),)
    if spec.int8_gops > 0:
        peaks += (Peak(precision="int8", gops=spec.int8_gops, source=spec.int8_source, basis="measured"),)
    units = tuple(
        dataclasses.replace(u, name=f"{spec.cpu_model} ({spec.cores} cores)", peaks=peaks) if u.kind == "cpu" else u
        for u in profile.units
    )
    return dataclasses.replace(
        profile,
        soc=spec.cpu_model,
        units=units,
        memory_bandwidth_gbs=spec.bandwidth_gbs,
        memory_bandwidth_source=spec.bandwidth_source,
    )


def measure_host(*, cpu_model: str, cores: int, flags: tuple[str, ...], torch_version: str) -> HostSpec:
    """Measure this machine now with torch on `cores` threads (the thread count is restored afterwards)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(cores)
    try:
        gflops = _matmul_gflops(torch)
        gops = _int8_gops(torch)
        gbs = _copy_gbs(torch)
    finally:
        torch.set_num_threads(before)
    return HostSpec(
        cpu_model=cpu_model,
        cores=cores,
        flags=flags,
        machine=platform.machine(),
        torch_version=torch_version,
        fp32_gflops=round(gflops, 1),
        int8_gops=round(gops, 1),
        bandwidth_gbs=round(gbs, 2),
        date=datetime.date.today().isoformat(),
    )


def _matmul_gflops(torch: Any) -> float:
    best = 0.0
    for n in MATMUL_SIZES:
        a, b = torch.randn(n, n), torch.randn(n, n)
        out = torch.empty(n, n)
        torch.mm(a, b, out=out)  # warm-up: thread pool, packing buffers, page faults
        for _ in range(MATMUL_REPEATS):
            t = time.perf_counter()
            torch.mm(a, b, out=out)
            best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best


def _int8_gops(torch: Any) -> float:
    """int8 GEMM throughput through torch._int_mm (0.0 where this torch build has no CPU kernel for it)."""
    best = 0.0
    try:
        for n in MATMUL_SIZES:
            a = torch.randint(-128, 127, (n, n), dtype=torch.int8)
            b = torch.randint(-128, 127, (n, n), dtype=torch.int8)
            torch._int_mm(a, b)  # warm-up
            for _ in range(MATMUL_REPEATS):
                t = time.perf_counter()
                torch._int_mm(a, b)
                best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    except (RuntimeError, NotImplementedError) as e:
        log.info("no int8 matmul on this CPU build (%s): the host gets no int8 peak", e)
        return 0.0
    return best


def _copy_gbs(torch: Any) -> float:
    src = torch.ones(COPY_BYTES // 4, dtype=torch.float32)
    dst = torch.empty_like(src)
    dst.copy_(src)  # warm-up: touches every page of dst
    best = float("inf")
    for _ in range(COPY_REPEATS):
        t = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - t)
    return 2 * COPY_BYTES / best / 1e9  # each byte is read once and written once


def _torch_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torch")
    except PackageNotFoundError:  # a source build of torch: ask it (imports torch)
        import torch

        return torch.__version__


def cache_path(model: str, cores: int, torch_version: str) -> Path:
    """The cache file of one (CPU model, cores, torch version): a readable slug and a hash of the exact key."""
    from vjepa_edge.runinfo import cache_root

    key = f"{model}|{cores}|{torch_version}"
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", f"{model}-{cores}c-torch{torch_version}").strip("-")[:80]
    return cache_root() / "hostspec" / f"{slug}-{hashlib.sha256(key.encode()).hexdigest()[:8]}.json"


def _read_cache(path: Path, model: str, cores: int, torch_version: str) -> HostSpec | None:
    """The cached spec, or None when there is none or it is unreadable, of another key or not positive (measured
    again then, with a warning for a bad file)."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        data["flags"] = tuple(data["flags"])
        spec = HostSpec(**data)
        positive = spec.fp32_gflops > 0 and spec.bandwidth_gbs > 0
    except (OSError, ValueError, TypeError, KeyError) as e:
        log.warning("ignoring the unreadable host spec cache %s (%s); measuring again", path, e)
        return None
    if (spec.cpu_model, spec.cores, spec.torch_version) != (model, cores, torch_version):
        log.warning("ignoring the host spec cache %s: it is of another CPU or torch; measuring again", path)
        return None
    if not positive:
        log.warning("ignoring the host spec cache %s: non-positive figures; measuring again", path)
        return None
    return spec
