"""Peak memory of this process while a block runs: how far its resident set (RSS) rose above where it started.

On Linux the kernel's high-water mark (VmHWM in /proc/self/status) is reset to the current RSS by writing "5" to
/proc/self/clear_refs, so the peak is that of the block alone. Elsewhere, or where the reset is refused, the
process's lifetime peak (`resource.getrusage(...).ru_maxrss`) is read before and after: its growth is a lower
bound when an earlier part of the process peaked higher.
"""

from __future__ import annotations

import sys
from pathlib import Path

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kb(key: str) -> int | None:
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])  # "VmHWM:   213908 kB"
    except (OSError, ValueError, IndexError):
        return None
    return None


def _maxrss_kb() -> int:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB on Linux


class PeakMemory:
    """`with PeakMemory() as mem: ...`, then `mem.peak_mb`: the RSS growth of the block in MiB (None: unknown)."""

    def __init__(self) -> None:
        self.method = "none"
        self._start_kb: int | None = None
        self.peak_mb: float | None = None

    def __enter__(self) -> PeakMemory:
        try:
            CLEAR_REFS.write_text("5")  # VmHWM := VmRSS
            self._start_kb = _status_kb("VmRSS")
            self.method = "VmHWM" if self._start_kb is not None else "none"
        except OSError:
            self._start_kb = None
        if self._start_kb is None:
            try:
                self._start_kb, self.method = _maxrss_kb(), "ru_maxrss"
            except (ImportError, OSError):
                self.method = "none"
        return self

    def __exit__(self, *exc: object) -> None:
        end = _status_kb("VmHWM") if self.method == "VmHWM" else _maxrss_kb() if self.method == "ru_maxrss" else None
        if end is not None and self._start_kb is not None:
            self.peak_mb = max(0, end - self._start_kb) / 1024
