"""The latency model and its calibration on the published figures (`published.toml`), with leave-one-out errors.

The model, for a cost on a unit with peak P (GOP/s) and memory bandwidth B (GB/s):

    t = dense / (P e_k d) + a_r attn / (P e_k d) + bytes / (B e_m) + (o + o_op ops) / d

- e_k: the efficiency of class k = unit kind / precision / runtime ("npu/fp16/tflite", "npu/w8a8/qnn", ...);
- d: the correction of one calibration SoC's unit (its real speed against its published peak); where no peak is
  published (Qualcomm's phone NPUs) the unit stands at a nominal peak and d is its fitted speed. e_k d <= 1 where the
  peak is published (a soft wall: no class runs a unit faster than its maker's peak);
- a_r: how much slower attention matmuls (QK^T, AV) run than dense ones under runtime r (the AI Hub tables show
  long-token attention far from the dense rate: reference/edge.md 5.1, observation 2);
- bytes = weights + activations at the precision; e_m, the share of the bandwidth, comes out above 1: not every
  counted activation byte reaches DRAM (fused, or kept on chip), so this term is the price of activation traffic as
  much as of DRAM. A sum, not max(compute, memory): the sum calibrates better on these figures (leave-one-out
  median 25 % against 37 % with the max, measured without the per-operator term);
- o, o_op: a fixed overhead per inference and per operator (launches, small ops, layout changes), smaller on faster
  units.

The parameters are fitted in log space (the error of a figure is a ratio) by Levenberg-Marquardt with an analytic
Jacobian: deterministic, numpy only. Weak priors keep them where the data say little: e_k ~ 0.2, a_r ~ 3, e_m ~ 0.3,
o ~ 0.1 ms, o_op ~ 2 us (each within a factor e^1-e^2), and d ~ 1 within a factor e^0.7 where the peak is
published. A figure's log error is assumed to spread by 0.3. The objective has local minima: a fit starts from the
priors' means (and from a given earlier fit) and keeps the better end. `leave_one_out` refits without each figure in
turn and predicts it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vjepa_edge.profile.published import COSTS_FILE, DATA_FILE, Figure, Published, load_published

log = logging.getLogger(__name__)

NOMINAL_GOPS = 10_000.0  # stands in for an unpublished peak: the unit's correction d then is its speed against it
WALL = 0.01  # how hard the e_k d <= 1 wall pushes back (in units of NOISE)
NOISE = 0.3  # spread of a figure's log error, weighing the data against the priors
# (mean, sigma) in log space
PRIOR_EFFICIENCY = (math.log(0.2), 1.0)
PRIOR_CORRECTION = (0.0, 0.7)
PRIOR_ATTENTION = (math.log(3.0), 1.5)
PRIOR_MEMORY = (math.log(0.3), 2.0)
PRIOR_OVERHEAD_MS = (math.log(0.1), 2.0)
PRIOR_OP_MS = (math.log(0.002), 2.0)


def peak_order(unit_kind: str, precision: str) -> tuple[str, ...]:
    """The peaks a class's efficiency is relative to, in order of preference. fp16 on an NPU falls back to the int8
    figure, the only one Qualcomm (and Apple from the A17 Pro) quotes; CPUs and GPUs use the work's own precision."""
    if unit_kind == "npu":
        return ("fp16", "int8") if precision == "fp16" else ("int8",)
    if unit_kind == "gpu":
        return ("fp16", "fp32") if precision == "fp16" else ("fp32",)
    return ("int8",) if precision in ("w8a8", "w8a16") else ("fp32",)


@dataclass(frozen=True, kw_only=True, slots=True)
class Point:
    """One figure as the model sees it."""

    dense: float
    attn: float
    bytes: float
    ops: int
    peak_gops: float
    bandwidth_gbs: float
    klass: str
    runtime: str
    device_unit: str  # "s24/npu": whose correction d applies
    published_peak: bool  # False: peak_gops is NOMINAL_GOPS, d is free
    ms: float = math.nan


def figure_point(published: Published, figure: Figure) -> Point:
    cost = published.cost(figure)
    soc = published.device(figure.device)
    peak = next((p for q in peak_order(figure.unit, figure.precision) if (p := soc.peak(figure.unit, q))), None)
    return Point(
        dense=cost.dense_flops,
        attn=cost.attn_flops,
        bytes=cost.weight_bytes + cost.activation_bytes,
        ops=cost.ops,
        peak_gops=peak.gops if peak else NOMINAL_GOPS,
        bandwidth_gbs=soc.memory_bandwidth_gbs,
        klass=figure.klass,
        runtime=figure.runtime,
        device_unit=f"{figure.device}/{figure.unit}",
        published_peak=peak is not None,
        ms=figure.ms,
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class Terms:
    """The parts of one prediction, in ms."""

    dense_ms: float
    attention_ms: float
    memory_ms: float
    overhead_ms: float  # per inference and per operator

    @property
    def ms(self) -> float:
        return self.dense_ms + self.attention_ms + self.memory_ms + self.overhead_ms


@dataclass(frozen=True, kw_only=True, slots=True)
class Calibration:
    """Fitted factors (in log space where noted) and what they were fitted on."""

    efficiency: dict[str, float]  # class -> e_k
    correction: dict[str, float]  # "soc/unit" -> d
    attention: dict[str, float]  # runtime -> a_r
    memory_efficiency: float
    overhead_ms: float  # per inference
    op_ms: float  # per operator
    counts: dict[str, int]  # class -> figures fitted
    n_figures: int

    def terms(
        self,
        *,
        dense: float,
        attn: float,
        bytes: float,
        ops: int,
        peak_gops: float,
        bandwidth_gbs: float,
        efficiency: float,
        attention: float,
        correction: float = 1.0,
    ) -> Terms:
        rate = peak_gops * 1e9 * efficiency * correction / 1e3  # FLOP per ms
        return Terms(
            dense_ms=dense / rate,
            attention_ms=attention * attn / rate,
            memory_ms=bytes / (bandwidth_gbs * 1e9 * self.memory_efficiency / 1e3),
            overhead_ms=(self.overhead_ms + self.op_ms * ops) / correction,
        )

    def point_terms(self, p: Point) -> Terms:
        return self.terms(
            dense=p.dense,
            attn=p.attn,
            bytes=p.bytes,
            ops=p.ops,
            peak_gops=p.peak_gops,
            bandwidth_gbs=p.bandwidth_gbs,
            efficiency=self.efficiency[p.klass],
            attention=self.attention.get(p.runtime, math.exp(PRIOR_ATTENTION[0])),
            correction=self.correction.get(p.device_unit, 1.0),
        )


def _exp(x: np.ndarray) -> np.ndarray:
    """exp of `x` clipped to [-60, 60], so that a far start cannot overflow (np.clip's own wrapper costs more than
    the exp on these small arrays)."""
    return np.exp(np.minimum(np.maximum(x, -60.0), 60.0))


class _Problem:
    """The parameter layout and the log-space residuals with their Jacobian, for a set of points."""

    def __init__(self, points: Sequence[Point]) -> None:
        self.classes = sorted({p.klass for p in points})
        self.units = sorted({p.device_unit for p in points})
        self.runtimes = sorted({p.runtime for p in points})
        nc, nu, nr = len(self.classes), len(self.units), len(self.runtimes)
        self.slices = {"e": slice(0, nc), "d": slice(nc, nc + nu), "a": slice(nc + nu, nc + nu + nr)}
        self.m, self.o, self.op = nc + nu + nr, nc + nu + nr + 1, nc + nu + nr + 2
        self.n = nc + nu + nr + 3
        self.ci = np.array([self.classes.index(p.klass) for p in points])
        self.ui = np.array([self.units.index(p.device_unit) for p in points]) + nc
        self.ri = np.array([self.runtimes.index(p.runtime) for p in points]) + nc + nu
        self.dense = np.array([p.dense for p in points]) / 1e6  # FLOP per (GOP/s x ms)
        self.attn = np.array([p.attn for p in points]) / 1e6
        self.bytes = np.array([p.bytes for p in points]) / 1e6
        self.ops = np.array([p.ops for p in points], dtype=float)
        self.peak = np.array([p.peak_gops for p in points])
        self.bw = np.array([p.bandwidth_gbs for p in points])
        self.y = np.log(np.array([p.ms for p in points]))
        published = {p.device_unit: p.published_peak for p in points}
        prior = [(i, *PRIOR_EFFICIENCY) for i in range(nc)]
        prior += [(nc + j, *PRIOR_CORRECTION) for j, u in enumerate(self.units) if published[u]]
        prior += [(nc + nu + k, *PRIOR_ATTENTION) for k in range(nr)]
        prior += [(self.m, *PRIOR_MEMORY), (self.o, *PRIOR_OVERHEAD_MS), (self.op, *PRIOR_OP_MS)]
        # e_k d <= 1 wherever the peak is published: no class runs a unit faster than its peak (a soft wall)
        pairs = sorted({(c, u) for c, u, p in zip(self.ci, self.ui, points, strict=True) if p.published_peak})
        self.wall = np.array(pairs, dtype=int).reshape(-1, 2)
        self.pi = np.array([p[0] for p in prior])
        self.pm = np.array([p[1] for p in prior])
        self.ps = np.array([p[2] for p in prior]) / NOISE
        self.rows = np.arange(len(points))
        self.diagonal = (np.arange(self.n), np.arange(self.n))

    def start(self) -> np.ndarray:
        theta = np.zeros(self.n)
        theta[self.pi] = self.pm
        return theta

    def residuals(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e, d, a = theta[self.ci], theta[self.ui], theta[self.ri]
        inv = _exp(-(e + d)) / self.peak
        dense, att = self.dense * inv, _exp(a) * self.attn * inv
        mem = self.bytes / self.bw * _exp(-theta[self.m])
        ovh = _exp(theta[self.o] - d)
        per_op = self.ops * _exp(theta[self.op] - d)
        total = dense + att + mem + ovh + per_op
        over = np.maximum(theta[self.wall[:, 0]] + theta[self.wall[:, 1]], 0.0)
        r = np.concatenate([np.log(total) - self.y, (theta[self.pi] - self.pm) / self.ps, over / WALL])
        rows = self.rows
        jac = np.zeros((len(r), self.n))
        w = len(total) + len(self.pi) + np.arange(len(self.wall))
        jac[w, self.wall[:, 0]] = (over > 0) / WALL
        jac[w, self.wall[:, 1]] = (over > 0) / WALL
        # Each point's row has one class, one unit and one runtime column, in disjoint ranges: plain assignment.
        jac[rows, self.ci] = -(dense + att) / total
        jac[rows, self.ui] = -(dense + att + ovh + per_op) / total
        jac[rows, self.ri] = att / total
        jac[rows, self.m] = -mem / total
        jac[rows, self.o] = ovh / total
        jac[rows, self.op] = per_op / total
        jac[len(total) + np.arange(len(self.pi)), self.pi] = 1 / self.ps
        return r, jac

    def solve(self, theta: np.ndarray | None = None, iters: int = 200) -> tuple[np.ndarray, float]:
        """Levenberg-Marquardt from `theta` (the priors' means by default): the parameters and the objective."""
        theta = self.start() if theta is None else theta.copy()
        r, jac = self.residuals(theta)
        cost, lam = float(r @ r), 1e-3
        for _ in range(iters):
            a, g = jac.T @ jac, jac.T @ r
            diagonal = np.diag(a) + 1e-12
            while True:
                damped = a.copy()
                damped[self.diagonal] += lam * diagonal
                step = np.linalg.solve(damped, -g)
                r2, jac2 = self.residuals(theta + step)
                cost2 = float(r2 @ r2)
                if cost2 < cost:
                    break
                lam *= 10
                if lam > 1e10:
                    return theta, cost
            theta, r, jac, lam = theta + step, r2, jac2, max(lam / 10, 1e-12)
            if cost - cost2 < 1e-12 * max(cost, 1.0):
                return theta, cost2
            cost = cost2
        return theta, cost

    def calibration(self, theta: np.ndarray, points: Sequence[Point]) -> Calibration:
        ex = np.exp(theta)
        return Calibration(
            efficiency=dict(zip(self.classes, ex[self.slices["e"]].tolist(), strict=True)),
            correction=dict(zip(self.units, ex[self.slices["d"]].tolist(), strict=True)),
            attention=dict(zip(self.runtimes, ex[self.slices["a"]].tolist(), strict=True)),
            memory_efficiency=float(ex[self.m]),
            overhead_ms=float(ex[self.o]),
            op_ms=float(ex[self.op]),
            counts={k: sum(p.klass == k for p in points) for k in self.classes},
            n_figures=len(points),
        )


def fit(points: Sequence[Point], start: Calibration | None = None) -> Calibration:
    """Fit the model's factors to `points` (each with its published `ms`). The objective has local minima: the fit
    starts from the priors' means and, when given, also from `start` (another fit), and keeps the better end."""
    problem = _Problem(points)
    best = problem.solve()
    if start is not None:  # warm start from another fit's values for the same names
        theta = problem.start()
        for names, table, sl in (
            (problem.classes, start.efficiency, problem.slices["e"]),
            (problem.units, start.correction, problem.slices["d"]),
            (problem.runtimes, start.attention, problem.slices["a"]),
        ):
            for i, name in enumerate(names):
                if name in table:
                    theta[sl.start + i] = math.log(table[name])
        theta[problem.m], theta[problem.o] = math.log(start.memory_efficiency), math.log(start.overhead_ms)
        theta[problem.op] = math.log(start.op_ms)
        warm = problem.solve(theta)
        best = warm if warm[1] < best[1] else best
    return problem.calibration(best[0], points)


@functools.cache
def published_calibration() -> Calibration:
    """The factors fitted on every published figure (cached: the fit takes milliseconds, the files are fixed)."""
    published = load_published()
    return fit([figure_point(published, f) for f in published.figures])


@dataclass(frozen=True, kw_only=True, slots=True)
class LooRow:
    """One published figure predicted by a calibration fitted without it."""

    model: str
    device: str  # the calibration SoC's label
    klass: str
    published_ms: float
    predicted_ms: float | None  # None where nothing left in the fit can predict it (`reason` says why)
    reason: str = ""

    @property
    def error(self) -> float | None:
        """Signed relative error: +0.25 predicts 25 % slower than published."""
        return None if self.predicted_ms is None else self.predicted_ms / self.published_ms - 1.0


def _unpredictable(point: Point, others: Sequence[Point]) -> str:
    if not any(o.klass == point.klass for o in others):
        return f"the only figure of class {point.klass}"
    if not point.published_peak and not any(o.device_unit == point.device_unit for o in others):
        return f"the only figure of {point.device_unit}, whose peak is not published"
    return ""


@functools.cache
def leave_one_out() -> tuple[LooRow, ...]:
    """Each published figure predicted by the model refitted without it, in the file's order.

    The refits take seconds (two Levenberg-Marquardt solves per figure: about 10 s on 2 CPU cores, in every
    `profile` that estimates a device), so the rows are kept in the user cache, keyed by the published files and
    this module's source: computed once per machine, and again whenever the figures or the fit change."""
    from vjepa_edge.runinfo import cache_file, write_json

    files = (DATA_FILE, COSTS_FILE, Path(__file__))
    key = {"leave_one_out": [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]}
    path = cache_file("calibration", key, suffix=".json")
    try:
        return tuple(LooRow(**row) for row in json.loads(path.read_text()))
    except FileNotFoundError:
        pass
    except (OSError, ValueError, TypeError) as e:  # a damaged file (or cache) is refitted, never trusted
        log.warning("leave-one-out cache %s is unreadable (%s); refitting", path, e)
    rows = _leave_one_out()
    try:
        write_json(path, [dataclasses.asdict(row) for row in rows])
    except OSError as e:  # a read-only or full cache costs the next run the refits, never this one its estimate
        log.warning("could not keep the leave-one-out rows in %s (%s)", path, e)
    return rows


def _leave_one_out() -> tuple[LooRow, ...]:
    published = load_published()
    points = [figure_point(published, f) for f in published.figures]
    full = published_calibration()
    rows = []
    for i, (figure, point) in enumerate(zip(published.figures, points, strict=True)):
        others = points[:i] + points[i + 1 :]
        reason = _unpredictable(point, others)
        predicted = None if reason else fit(others, start=full).point_terms(point).ms
        rows.append(
            LooRow(
                model=figure.model,
                device=published.device(figure.device).label,
                klass=figure.klass,
                published_ms=figure.ms,
                predicted_ms=predicted,
                reason=reason,
            )
        )
    return tuple(rows)


def median_abs_error(rows: Sequence[LooRow], klass: str | None = None) -> float | None:
    errs = [abs(r.error) for r in rows if r.error is not None and (klass is None or r.klass == klass)]
    return float(np.median(errs)) if errs else None


@functools.cache
def class_errors() -> dict[str, float | None]:
    """The leave-one-out median absolute error of each class, and of all figures under "all"."""
    rows = leave_one_out()
    return {"all": median_abs_error(rows), **{k: median_abs_error(rows, k) for k in sorted({r.klass for r in rows})}}
