"""Measuring artifacts on this machine: latency statistics against numpy, a tiny .pte (XNNPACK, LayerNorm outside
the delegate) and a tiny .onnx measured with every sample and an operator breakdown from the runtime's own trace,
and artifacts this machine cannot run (an .mlpackage, a Core ML .pte, a target its export report says runs
elsewhere) refused with the error the profile command turns into an estimate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.profile.tiny_artifacts import coreml_pte, tiny_onnx, tiny_pte
from vjepa_edge.errors import CannotRunError, ConfigError
from vjepa_edge.profile.measure import measure_host
from vjepa_edge.profile.stats import LatencyStats


@pytest.mark.parametrize("n", [1, 2, 9, 10, 37, 50])
def test_stats_match_numpy(n: int) -> None:
    x = np.random.default_rng(n).lognormal(2.0, 0.4, size=n)
    x[n // 2 :: 5] = x[0]  # ties
    s = LatencyStats.from_samples(list(x))
    k = int(0.1 * n)
    assert s.n == n
    assert s.min == pytest.approx(x.min())
    assert s.p50 == pytest.approx(np.percentile(x, 50))
    assert s.p90 == pytest.approx(np.percentile(x, 90))
    assert s.mean == pytest.approx(x.mean())
    assert s.trimmed_mean == pytest.approx(np.sort(x)[k : n - k].mean())
    assert s.std == pytest.approx(np.std(x, ddof=1) if n > 1 else 0.0)
    assert set(s.to_dict()) == {"n", "min", "p50", "p90", "mean", "trimmed_mean", "std"}


def test_stats_of_known_samples() -> None:
    s = LatencyStats.from_samples([10, 1, 9, 2, 8, 3, 7, 4, 6, 5])
    assert (s.min, s.p50, s.p90, s.mean) == (1.0, 5.5, 9.1, 5.5)
    assert s.trimmed_mean == 5.5  # 2..9: the lowest and highest 10 % dropped
    s = LatencyStats.from_samples([1.0] * 9 + [100.0])
    assert s.trimmed_mean == 1.0 and s.mean == pytest.approx(10.9)


@pytest.mark.parametrize("bad", [[], [1.0, -2.0], [float("nan")], [float("inf")]])
def test_stats_refuse_bad_samples(bad: list[float]) -> None:
    with pytest.raises(ConfigError, match="latency samples"):
        LatencyStats.from_samples(bad)


@pytest.mark.filterwarnings("ignore:Output Buffer not found")
def test_pte_measured_with_an_operator_breakdown(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    from executorch.devtools import Inspector

    pte = tiny_pte(tmp_path_factory)
    m = measure_host(pte, warmup=2, iterations=6, profile_iterations=3, out=tmp_path / "traces")
    assert (m.runtime, m.where, m.warmup, m.iterations) == ("executorch", "host", 2, 6)
    assert len(m.samples_ms) == 6 and all(t > 0 for t in m.samples_ms)
    assert m.stats.n == 6 and 0 < m.stats.min <= m.stats.p50 <= m.stats.p90
    assert m.load_ms > 0 and m.threads >= 1
    assert m.peak_memory_mb is not None and m.peak_memory_mb >= 0

    b = m.breakdown
    assert b is not None and b.source == "etdump" and b.iterations == 3  # the warm-up call is not counted
    assert m.etdump == b.trace and Path(b.trace).parent == tmp_path / "traces"
    assert len(Inspector(etdump_path=b.trace).event_blocks) >= 1  # the user can open it
    inside = [r for r in m.operators if r["delegated"]]
    outside = [r for r in m.operators if not r["delegated"]]
    assert inside and {r["backend"] for r in inside} == {"XnnpackBackend"}
    assert any(r["name"].startswith("Fully Connected") for r in inside)
    assert not any("#" in r["name"] for r in inside)  # instances grouped by kind
    assert any(r["name"] == "native_layer_norm.out" and r["calls"] == 5 for r in outside)  # 2 blocks x 2 + final
    slack = 1e-3  # XNNPACK times its operators in microseconds
    assert sum(r["total_ms"] for r in inside) <= b.delegate_ms + slack
    assert b.delegate_ms + b.outside_ms <= b.execute_ms + slack
    assert sum(r["share"] for r in m.operators) <= 1 + slack
    assert [r["total_ms"] for r in m.operators] == sorted((r["total_ms"] for r in m.operators), reverse=True)
    json.dumps(m.to_dict())


def test_onnx_measured_with_an_operator_breakdown(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    onnx = tiny_onnx(tmp_path_factory)
    m = measure_host(onnx, warmup=1, iterations=4, threads=1, profile_iterations=2, out=tmp_path)
    assert (m.runtime, m.threads, m.iterations, len(m.samples_ms)) == ("onnxruntime", 1, 4, 4)
    assert m.stats.p50 > 0 and m.load_ms > 0
    b = m.breakdown
    assert b is not None and b.source == "onnxruntime" and b.iterations == 2 and m.etdump is None
    assert json.loads(Path(b.trace).read_text())  # the Chrome trace, kept
    names = {r["name"] for r in m.operators}
    assert {"MatMul", "Softmax"} <= names or {"Gemm", "Softmax"} <= names, names
    assert {r["backend"] for r in m.operators} == {"CPUExecutionProvider"}
    assert not any(r["delegated"] for r in m.operators)
    assert sum(r["total_ms"] for r in m.operators) <= b.execute_ms
    json.dumps(m.to_dict())


def test_no_breakdown_when_not_asked(tmp_path_factory: pytest.TempPathFactory) -> None:
    m = measure_host(tiny_onnx(tmp_path_factory), warmup=0, iterations=2, profile_iterations=0)
    assert m.breakdown is None and m.operators == [] and m.trace is None


def test_mlpackage_refused(tmp_path: Path) -> None:
    package = tmp_path / "mlpackage-fp16.mlpackage"
    (package / "Data").mkdir(parents=True)
    with pytest.raises(CannotRunError, match="cannot run here; an estimate is given instead"):
        measure_host(package)


@pytest.mark.slow  # lowers a Core ML program (9 s); the .mlpackage refusal above covers the same path
def test_coreml_pte_refused(tmp_path_factory: pytest.TempPathFactory) -> None:
    with pytest.raises(CannotRunError, match="CoreMLBackend, which cannot run here.*an estimate is given instead"):
        measure_host(coreml_pte(tmp_path_factory))


def test_target_of_the_export_report_refused(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    """The report beside an artifact names its target; one that does not run here is refused before loading."""
    pte = shutil.copy(tiny_pte(tmp_path_factory), tmp_path / "vulkan-fp32.pte")
    report = {"vulkan-fp32": {"target": "vulkan-fp32", "artifact": "/elsewhere/export/vulkan-fp32.pte"}}
    (tmp_path / "export_report.json").write_text(json.dumps(report))
    with pytest.raises(CannotRunError, match="vulkan-fp32 artifact .* cannot run it; an estimate is given instead"):
        measure_host(pte)


def test_bad_options_and_files_refused_before_loading(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="iterations=0"):
        measure_host(tmp_path / "x.pte", iterations=0)
    with pytest.raises(ConfigError, match="no such artifact"):
        measure_host(tmp_path / "missing.onnx")
    with pytest.raises(ConfigError, match="suffix '.tflite'"):
        measure_host(tmp_path / "model.tflite")
    (tmp_path / "junk.pte").write_bytes(b"not a program")
    with pytest.raises(ConfigError, match="not an ExecuTorch program"):
        measure_host(tmp_path / "junk.pte")
