"""`vjepa-edge profile` end to end on a tiny run's exported artifacts: measured on host, estimated elsewhere, a
verdict per device with alternatives when over budget, the plot and profile.json; bad input refused up front."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.export.conftest import make_run
from vjepa_edge.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def exported_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny distill run with its xnnpack-fp32 .pte and onnx-fp32 model, exported (and verified) by the CLI."""
    run = make_run(tmp_path_factory.mktemp("profile"))
    for target in ("xnnpack-fp32", "onnx-fp32"):
        result = runner.invoke(app, ["export", str(run), "--target", target, "--verify-clips", "2", "--json"])
        assert result.exit_code == 0, result.output
    return run


def _last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def test_host_measures_every_runnable_artifact(exported_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "prof"
    args = ["profile", str(exported_run), "--device", "host", "--iterations", "5", "--warmup", "1", "--out", str(out)]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    r = _last_json(result.output)
    for key in ("device", "measured", "p50_ms", "p90_ms", "budget_ms", "fits", "flops", "bytes"):
        assert key in r, key
    assert r["device"] == "host" and r["measured"] is True
    rows = r["devices"][0]["rows"]
    assert {row["target"] for row in rows} == {"xnnpack-fp32", "onnx-fp32"}
    for row in rows:
        assert row["measured"] and len(row["samples_ms"]) == 5
        assert row["p50_ms"] == pytest.approx(sorted(row["samples_ms"])[2])  # the median of the raw samples kept
        assert 0 < row["min_ms"] <= row["p50_ms"] <= row["p90_ms"]
        assert row["operators"], row["target"]
    pte = next(row for row in rows if row["target"] == "xnnpack-fp32")
    assert any(o["delegated"] for o in pte["operators"])
    assert Path(pte["etdump"]).is_file()
    # the FLOPs and bytes are there; tests/profile/test_estimate.py checks the count against FlopCounterMode
    assert r["flops"] > 0 and r["bytes"] > 0
    assert (out / "profile.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "profile.json").read_text())["devices"][0]["device"] == "host"


def test_all_devices_estimated_with_verdicts(exported_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "prof"
    result = runner.invoke(
        app, ["profile", str(exported_run), "--device", "all", "--iterations", "3", "--warmup", "0", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "profile.json").read_text())
    from vjepa_edge.profile.devices import list_devices

    assert {d["device"] for d in report["devices"]} == set(list_devices())
    for d in report["devices"]:
        assert d["fits"] == (d["p50_ms"] <= d["budget_ms"])
        if d["device"] != "host":
            assert d["measured"] is False and d["p90_ms"] is None
            assert all(r.get("error") or r["estimate"]["basis"] for r in d["rows"])
    quest3 = next(d for d in report["devices"] if d["device"] == "quest3")
    assert quest3["rows"][0]["target"] == "qnn-int8" and quest3["rows"][0]["artifact"] is None  # not exported
    assert "profile of" in runner.invoke(app, ["profile", str(exported_run), "--device", "quest3"]).output


def test_over_budget_gives_alternatives_that_are_faster(exported_run: Path, tmp_path: Path) -> None:
    tight = tmp_path / "tight.toml"
    text = (Path(__file__).parents[2] / "devices" / "rpi5.toml").read_text()
    tight.write_text(text.replace("budget_ms = 100.0", "budget_ms = 0.001"))
    result = runner.invoke(app, ["profile", str(exported_run), "--device", str(tight), "--json"])
    assert result.exit_code == 0, result.output
    r = _last_json(result.output)
    assert r["fits"] is False and r["alternatives"]
    assert all(a["estimate_ms"] < r["p50_ms"] * 1.5 for a in r["alternatives"])
    assert any("frames" in a["change"] for a in r["alternatives"])


def test_bad_input_is_refused_before_any_measurement(exported_run: Path, tmp_path: Path, monkeypatch) -> None:
    import vjepa_edge.profile.measure as measure

    monkeypatch.setattr(measure, "measure_host", lambda *a, **k: pytest.fail("measured despite bad input"))
    cases = [
        (["--device", "quest4"], "unknown device 'quest4'"),
        (["--iterations", "0"], "iterations"),
        (["--device", str(tmp_path / "nope.toml")], "no such device profile file"),
    ]
    for args, needle in cases:
        result = runner.invoke(app, ["profile", str(exported_run), *args])
        assert result.exit_code == 1 and needle in result.output, result.output
    empty = make_run(tmp_path)
    result = runner.invoke(app, ["profile", str(empty), "--device", "host"])
    assert result.exit_code == 1 and "vjepa-edge export" in result.output
    stray = tmp_path / "stray.pte"
    shutil.copy(next((exported_run / "export").glob("*.pte")), stray)
    result = runner.invoke(app, ["profile", str(tmp_path / "missing.pte")])
    assert result.exit_code == 1 and "no such artifact" in result.output


@pytest.mark.parametrize("target", ["xnnpack-fp32", "onnx-fp32"])
def test_artifact_encoder_tokens_match_the_eager_student(exported_run: Path, target: str) -> None:
    """The artifact as a frozen encoder (what the probes of the shipped model read): its runtime's tokens are the
    eager student's, with the student's token grid."""
    import torch

    from tests.export.conftest import tiny_student
    from vjepa_edge.export.encoder import ArtifactEncoder

    enc = ArtifactEncoder(next((exported_run / "export").glob(f"{target}.*")))
    student = tiny_student()
    clips = torch.randn(3, *student.input_spec.shape(1)[1:])
    with torch.inference_mode():
        ref = student(clips)
    out = enc(clips)
    assert out.shape == ref.shape
    assert (out - ref).abs().max() <= 1e-4 * ref.abs().max()
    assert enc.token_grid(clips) == student.input_spec.grid


def test_artifact_encoder_needs_the_export_report(exported_run: Path, tmp_path: Path) -> None:
    from vjepa_edge.errors import ConfigError
    from vjepa_edge.export.encoder import ArtifactEncoder

    stray = tmp_path / "stray.pte"
    shutil.copy(exported_run / "export" / "xnnpack-fp32.pte", stray)
    with pytest.raises(ConfigError, match="export_report.json"):
        ArtifactEncoder(stray)
