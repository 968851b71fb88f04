"""What makes a run folder self-describing (environment record, atomic JSON writes) and the precision to run at."""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def file_mode() -> int:
    """The mode a plain `open` gives a new file under the user's umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def temp_beside(path: Path) -> tuple[int, str]:
    """An open temp file in `path`'s folder (to be renamed onto `path`), with the mode a plain `open` would
    give under the user's umask (mkstemp's own 0600 would leave reports unreadable to the user's group)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, file_mode())
    return fd, tmp


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """An open file that becomes `path` when the block ends (temp file beside it, then rename; removed on error),
    so a reader never sees half a file. The parent folder is created."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_beside(p)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_safetensors(tensors: dict[str, Any], path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write tensors as safetensors atomically (temp file + rename) under the user's umask (safetensors' own
    writer leaves 0600)."""
    from safetensors.torch import save_file

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_beside(p)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.chmod(tmp, file_mode())
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return p


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, read in chunks (cache shards and rendered clips are hundreds of MB)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
    return h.hexdigest()


def finite_json(obj: Any) -> Any:
    """`obj` with every NaN and infinity replaced by None: JSON has no such numbers, and the `NaN` / `Infinity`
    tokens Python's json module would write make the file unreadable to every other JSON reader."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite_json(v) for v in obj]
    return obj


def json_line(obj: Any) -> str:
    """One line of strict JSON (a `metrics.jsonl` row): non-finite numbers are written as null."""
    return json.dumps(finite_json(obj), allow_nan=False)


def write_json(path: str | Path, obj: Any) -> Path:
    """Write strict JSON atomically (temp file in the same folder, then rename): a reader never sees half a file;
    non-finite numbers are written as null."""
    with atomic_open(path, "w") as f:
        json.dump(finite_json(obj), f, indent=2, sort_keys=False, allow_nan=False)
        f.write("\n")
    return Path(path)


def git_sha() -> str | None:
    """The commit of the vjepa-edge checkout (None outside a git checkout), with `+dirty` for local changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("+dirty" if dirty else "")


def environment() -> dict[str, Any]:
    """Versions, git SHA, platform and hardware of this process."""
    import torch

    from vjepa_edge import __version__

    env: dict[str, Any] = {
        "vjepa_edge": __version__,
        "git_sha": git_sha(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu": cpu_info(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if torch.cuda.is_available()
        else [],
    }
    for name in ("numpy", "av", "timm", "torchao", "executorch"):
        try:
            from importlib.metadata import version

            env[name] = version(name)
        except Exception:  # not installed (the GPU machine carries only what training needs)
            env[name] = None
    return env


# The flags that decide which CPU kernels torch, XNNPACK and ONNX Runtime can use, as /proc/cpuinfo spells them.
CPU_FLAGS = (
    "avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "avx_vnni", "amx_tile", "amx_bf16",
    "amx_int8", "asimd", "asimddp", "asimdhp", "i8mm", "bf16", "sve", "sve2",
)  # fmt: skip
# macOS names (sysctl hw.optional.*) of the same features, mapped to the Linux spelling.
_MAC_FLAGS = {
    "hw.optional.avx2_0": "avx2",
    "hw.optional.fma": "fma",
    "hw.optional.avx512f": "avx512f",
    "hw.optional.avx512vnni": "avx512_vnni",
    "hw.optional.neon": "asimd",
    "hw.optional.arm.FEAT_DotProd": "asimddp",
    "hw.optional.arm.FEAT_FP16": "asimdhp",
    "hw.optional.arm.FEAT_I8MM": "i8mm",
    "hw.optional.arm.FEAT_BF16": "bf16",
}


def cpu_model_and_flags() -> tuple[str, tuple[str, ...]]:
    """The CPU's model name and which of CPU_FLAGS it has: /proc/cpuinfo on Linux, sysctl on macOS."""
    if platform.system() == "Darwin":
        return _mac_cpu()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), ()
    return parse_cpuinfo(text)


def parse_cpuinfo(text: str) -> tuple[str, tuple[str, ...]]:
    """(model, flags) of /proc/cpuinfo's first processor. A virtual machine's x86 model name is often generic
    ("Intel(R) Xeon(R) Processor"), so its CPUID family and model numbers are appended: they tell two such apart."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), value.strip())
    # x86: "model name"; Arm Linux: "Hardware" or "Model" where the kernel names the SoC, else the core part number.
    model = fields.get("model name") or fields.get("hardware") or fields.get("model") or ""
    if fields.get("model name") and fields.get("cpu family") and fields.get("model"):
        model += f" (family {fields['cpu family']} model {fields['model']})"
    if not model and "cpu part" in fields:
        model = f"Arm CPU part {fields['cpu part']} (implementer {fields.get('cpu implementer', '?')})"
    present = set((fields.get("flags") or fields.get("features") or "").split())
    return (model or platform.machine()), tuple(f for f in CPU_FLAGS if f in present)


def _mac_cpu() -> tuple[str, tuple[str, ...]]:
    def sysctl(name: str) -> str:
        try:
            return subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    model = sysctl("machdep.cpu.brand_string") or platform.machine()
    flags = {flag for name, flag in _MAC_FLAGS.items() if sysctl(name) == "1"}
    return model, tuple(f for f in CPU_FLAGS if f in flags)


def available_cores() -> int:
    """The logical CPUs this process may run on (a container's or taskset's limit, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS has no affinity masks
        return os.cpu_count() or 1


def cpu_info() -> dict[str, Any]:
    """The CPU a figure was measured on: model, usable cores and the vector extensions that decide speed."""
    model, flags = cpu_model_and_flags()
    return {
        "model": model,
        "cores": available_cores(),
        "flags": list(flags),
        "bf16": "native" if cpu_has_fast_bf16(flags) else "emulated (runs stay in fp32)",
    }


def machine_line(device: torch.device | None = None) -> str:
    """One line naming what a figure was measured on: CPU model, cores, flags, torch threads, bf16, GPU."""
    import torch

    cpu = cpu_info()
    text = (
        f"CPU {cpu['model']}, {cpu['cores']} cores ({' '.join(cpu['flags']) or 'no AVX2'}), "
        f"{torch.get_num_threads()} torch threads, bf16 {cpu['bf16']}"
    )
    if device is not None and device.type == "cuda":
        text += f"; GPU {torch.cuda.get_device_name(device)}"
    return text


def warn_if_threads_idle(logger: Any) -> None:
    """Say so when torch computes on fewer threads than the cores this process may use (a stray
    OMP_NUM_THREADS=1, say): on a 2-core machine that halves every CPU stage."""
    import torch

    cores = available_cores()
    if torch.get_num_threads() < cores:
        logger.warning(
            "torch computes on %d thread(s) but this process may use %d cores; unset OMP_NUM_THREADS or call "
            "torch.set_num_threads(%d) to use them all",
            torch.get_num_threads(),
            cores,
            cores,
        )


def cpu_has_fast_bf16(flags: Sequence[str] | None = None) -> bool:
    """AVX512-BF16 or AMX, and not capped below AVX-512 by `ONEDNN_MAX_CPU_ISA`: bf16 matmuls then run several
    times faster than fp32. Elsewhere (an AVX2 part, or an AVX-512 part run as one) they are emulated and
    about 100x slower than fp32, so a run on such a CPU stays in fp32. `flags`: the CPU's, when the caller has
    read them already (`cpu_model_and_flags`)."""
    if flags is None:
        flags = cpu_model_and_flags()[1]
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper()
    capped = isa not in ("ALL", "DEFAULT") and not isa.startswith(("AVX512_CORE_BF16", "AVX512_CORE_AMX", "AVX10"))
    return ("avx512_bf16" in flags or "amx_bf16" in flags) and not capped


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a run's `precision` ("auto" | "fp32" | "bf16") on `device`; None means fp32."""
    import torch

    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if cpu_has_fast_bf16() else None


def cache_root() -> Path:
    """The user cache: `$VJEPA_EDGE_CACHE`, else `$XDG_CACHE_HOME/vjepa-edge`, else `~/.cache/vjepa-edge`."""
    if os.environ.get("VJEPA_EDGE_CACHE"):
        return Path(os.environ["VJEPA_EDGE_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(xdg).expanduser() / "vjepa-edge"


def cache_file(folder: str, key: dict[str, Any], suffix: str = ".safetensors") -> Path:
    """The user-cache file `folder/DIGEST{suffix}` of `key` (what determines the cached content, JSON-able)."""
    from vjepa_edge.config import digest

    return cache_root() / folder / f"{digest(key, 24)}{suffix}"
