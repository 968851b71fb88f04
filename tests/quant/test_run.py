"""`vjepa-edge quantize` on a run folder: the report's figures, the sensitivity table, layers kept in float, the
program round-trips through its folder, and schemes that cannot serve are refused before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from tests.distill.conftest import tiny_recipe
from vjepa_edge.cli import app
from vjepa_edge.models.checkpoint import save_vjepa
from vjepa_edge.models.students import create_student
from vjepa_edge.models.vjepa import student_model
from vjepa_edge.quant.run import QuantizeOptions, quantize
from vjepa_edge.quant.schemes import get_scheme, list_schemes
from vjepa_edge.runinfo import write_json
from vjepa_edge.runs import RunDir

runner = CliRunner()
SMALL = dict(calib_clips=8, eval_train_clips=24, eval_test_clips=8, batch_size=4)


@pytest.fixture
def run_folder(tmp_path: Path) -> Path:
    """A finished distill run of a tiny ViT student (random weights: quantization does not care)."""
    run = RunDir(tmp_path / "run")
    torch.manual_seed(0)
    student = create_student("vit_tiny", frames=4, size=32, patch_size=8)
    save_vjepa(student_model(student), run.student)
    write_json(run.recipe, tiny_recipe(tmp_path / "teacher.safetensors", tmp_path / "cache").to_dict())
    return run.root


def test_quantize_a_run_writes_program_and_report(run_folder: Path) -> None:
    result = quantize(run_folder, QuantizeOptions(scheme="xnnpack-int8", keep_float=1, **SMALL), progress=False)
    r = result.report
    assert result.folder == RunDir(run_folder).quant / "xnnpack-int8"
    assert json.loads((result.folder / "quant_report.json").read_text())["scheme"] == "xnnpack-int8"
    assert 0.95 < r["feature_cosine"] < 1.0  # close to fp32, and not fp32 itself
    assert 0.0 <= r["probe_acc_int8"] <= 1.0 and 0.0 <= r["probe_acc_fp32"] <= 1.0
    assert r["size_int8_bytes"] < 0.5 * r["size_fp32_bytes"]
    sqnr = [row["sqnr_db"] for row in r["sensitivity"]]
    assert sqnr == sorted(sqnr) and len(sqnr) >= 12 * 4  # every Linear of 12 blocks, most sensitive first
    assert r["kept_float"] == [r["sensitivity"][0]["name"]]
    # The program round-trips: what the folder holds computes what the quantizer returned.
    loaded = get_scheme("xnnpack-int8").load().load(result.folder)
    (x,) = create_student("vit_tiny", frames=4, size=32, patch_size=8).input_spec.example_inputs()
    torch.testing.assert_close(loaded(x), result.program(x))


def test_incompatible_schemes_are_refused_before_work(run_folder: Path) -> None:
    for args, needle in (
        (["--scheme", "xnnpack-int9"], "xnnpack-int8"),
        (["--scheme", "coreml-int8-wo", "--qat"], "--qat works with"),
        (["--keep-float", "blocks.99.mlp.fc2"], "no layer named"),
        (["--calib-clips", "0"], "--calib-clips=0"),
    ):
        result = runner.invoke(app, ["quantize", str(run_folder), *args])
        assert result.exit_code == 1, result.output
        assert needle in result.output and "hint:" in result.output, result.output
    assert not RunDir(run_folder).quant.exists()


def test_list_schemes() -> None:
    result = runner.invoke(app, ["list", "schemes", "--json"])
    assert result.exit_code == 0
    rows = json.loads(result.output.strip().splitlines()[-1])["schemes"]
    assert [row["name"] for row in rows] == list_schemes()
    assert {
        "xnnpack-int8",
        "xnnpack-int8-dyn",
        "coreml-int8",
        "coreml-int8-wo",
        "torchao-int8-dyn",
        "torchao-int8-wo",
        "onnx-int8",
    } == set(list_schemes())
