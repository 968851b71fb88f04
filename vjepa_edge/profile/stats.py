"""Summary statistics of latency samples, as ExecuTorch's benchmark apps and MLPerf Mobile report them: count, min,
median (p50), p90, mean, trimmed mean (the middle 80 %) and standard deviation, in milliseconds.

Percentiles interpolate linearly between the closest ranks (numpy's default); the trimmed mean drops
`int(0.1 * n)` samples from each end (scipy's `trim_mean(x, 0.1)`); the standard deviation is the sample one
(ddof=1, 0 for one sample). The raw samples stay with the caller (`Measurement.samples_ms`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from vjepa_edge.errors import ConfigError

TRIM = 0.1  # the share dropped at each end for the trimmed mean


def percentile(ordered: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of sorted values, linear between the closest ranks."""
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass(frozen=True, kw_only=True, slots=True)
class LatencyStats:
    """Latency of `n` calls in milliseconds."""

    n: int
    min: float
    p50: float
    p90: float
    mean: float
    trimmed_mean: float  # mean of the middle 80 % (int(0.1 n) dropped at each end)
    std: float

    def __post_init__(self) -> None:
        if not (isinstance(self.n, int) and self.n >= 1):
            raise ConfigError(f"latency statistics of n={self.n!r} samples: need at least one")
        values = (self.min, self.p50, self.p90, self.mean, self.trimmed_mean, self.std)
        if not all(math.isfinite(v) and v >= 0 for v in values):
            raise ConfigError(f"latency statistics must be finite and non-negative, got {self.to_dict()}")

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float]) -> LatencyStats:
        """The statistics of raw latencies in milliseconds (at least one, each finite and non-negative)."""
        xs = sorted(float(x) for x in samples_ms)
        bad = [x for x in xs if not (math.isfinite(x) and x >= 0)]
        if not xs or bad:
            raise ConfigError(
                f"latency samples: need at least one finite, non-negative time in ms, got {len(xs)} samples"
                + (f" with bad values {bad[:3]}" if bad else "")
            )
        n = len(xs)
        mean = math.fsum(xs) / n
        cut = int(TRIM * n)
        middle = xs[cut : n - cut]
        std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else 0.0
        return cls(
            n=n,
            min=xs[0],
            p50=percentile(xs, 50),
            p90=percentile(xs, 90),
            mean=mean,
            trimmed_mean=math.fsum(middle) / len(middle),
            std=std,
        )

    def to_dict(self) -> dict[str, float]:
        return asdict(self)
