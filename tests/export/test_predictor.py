"""`vjepa-edge export --part predictor`: a tiny masked distill run's predictor + projector exports to xnnpack-fp32
and onnx-fp32 and matches the eager predictor (as it trained, token sorting on), also at index values other than
the export's (the .pte); runs without a predictor, bare files, int8 and unsupported targets are refused before any
compute."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from tests.distill.conftest import make_teacher, tiny_recipe
from tests.export.conftest import make_masked_layout
from vjepa_edge.cli import app
from vjepa_edge.errors import ConfigError
from vjepa_edge.export import run as export_run
from vjepa_edge.export.run import REPORT, ExportOptions, export
from vjepa_edge.runs import RunDir

runner = CliRunner()
CLIPS = 2
PRED = {"kind": "masked", "mask_ratio": 0.5, "pred_dim": 24, "pred_depth": 2, "pred_heads": 2}


@pytest.fixture(scope="module")
def masked_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A masked run's layout with random weights (`masked_run` is the real one, in the slow tests)."""
    return make_masked_layout(tmp_path_factory.mktemp("layout"), PRED)


@pytest.fixture(scope="module")
def masked_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vjepa_edge.distill.train import distill

    root = tmp_path_factory.mktemp("predictor")
    recipe = tiny_recipe(
        make_teacher(root / "teacher.safetensors"),
        root / "cache",
        loss=PRED,
        cache={"enabled": False},
        optim={"steps": 4, "warmup_steps": 1},
        run={"checkpoint_every": 4},
        eval={"train_clips": 8, "test_clips": 4, "cosine_clips": 2, "epochs": 1},  # the run's own eval: small
    )
    return distill(recipe, root / "run", progress=False).run_dir


def _export(run: Path, target: str, **kw) -> export_run.ExportResult:
    options = ExportOptions(**{"target": target, "verify_clips": CLIPS, "part": "predictor", **kw.pop("options", {})})
    return export(run, options, progress=False, **kw)


def _eager(run: Path):
    from vjepa_edge.distill.head import load_head
    from vjepa_edge.export.parts import PredictorModule
    from vjepa_edge.models.checkpoint import load_vjepa

    encoder = load_vjepa(RunDir(run).student).encoder.eval()
    head = load_head(RunDir(run), encoder)
    return encoder, PredictorModule(head.predictor, head.projector).eval()


@pytest.mark.parametrize(
    "target",
    [pytest.param("xnnpack-fp32", marks=pytest.mark.slow), "onnx-fp32"],  # lowering: ~25 s on 2 cores
)
def test_predictor_of_the_layout_matches_eager(masked_layout: Path, target: str) -> None:
    """Grid 2 x 4 x 4 (conftest's student), first half = 16 context tokens, 48 wide; a 40-wide teacher."""
    r = _export(masked_layout, target).report
    assert r["inputs"] == {"tokens": [1, 16, 48], "context_idx": [1, 16], "target_idx": [1, 16]}
    assert r["predictor"]["output_shape"] == [1, 16, 40]
    v = r["verification"]["vs_same_precision"]
    assert r["verification"]["verified"] and v["max_rel_error"] <= 1e-4 and v["cosine"] >= 0.99999
    if target == "xnnpack-fp32":
        _check_other_positions(masked_layout, Path(r["artifact"]))


@pytest.mark.slow
@pytest.mark.parametrize("target", ["xnnpack-fp32", "onnx-fp32"])
def test_predictor_exports_and_matches_eager(masked_run: Path, target: str) -> None:
    result = _export(masked_run, target)
    r = result.report
    suffix = ".pte" if target.startswith("xnnpack") else ".onnx"
    assert result.path == RunDir(masked_run).export / f"predictor-{target}{suffix}" and result.path.is_file()
    # student grid 2 x 4 x 4 (4 frames, tubelet 2, 32 px at patch 8): first half = 16 context, 16 targets
    assert r["part"] == "predictor"
    assert r["inputs"] == {"tokens": [1, 16, 192], "context_idx": [1, 16], "target_idx": [1, 16]}
    p = r["predictor"]
    assert (p["context"], p["context_tokens"], p["target_tokens"]) == ("first-half", 16, 16)
    assert p["output_shape"] == [1, 16, 48] and p["target_idx"] == list(range(16, 32))  # teacher width 48
    v = r["verification"]
    assert v["verified"] and v["clips"] == CLIPS and v["reference"] == "fp32 predictor"
    assert v["vs_same_precision"]["max_rel_error"] <= 1e-4 and v["vs_same_precision"]["cosine"] >= 0.99999
    stored = json.loads((result.path.parent / REPORT).read_text())
    assert stored[f"predictor-{target}"]["artifact"] == str(result.path)
    if target == "xnnpack-fp32":
        d = r["delegation"]
        assert d["partitions"] >= 1 and d["flops_share_inside"] == 1.0
        # every eager FLOP is attributed (the export form's LayerNorm means are small matmuls: a few more)
        assert d["eager_flops"] <= d["flops_inside"] + d["flops_outside"] <= 1.02 * d["eager_flops"]
        assert not any("sort" in op for op in d["outside"])  # the sort the runtime has no kernel for is gone
        _check_other_positions(masked_run, result.path)


def _check_other_positions(run: Path, pte: Path) -> None:
    """The indices are inputs: other context and target positions (same K, M, unsorted) give what the eager
    predictor gives."""
    from executorch.runtime import Runtime

    encoder, eager = _eager(run)
    g = torch.Generator().manual_seed(3)
    order = torch.randperm(32, generator=g)
    ctx, tgt = order[:16][None], order[16:][None]
    clip = torch.randn(1, 3, 4, 32, 32, generator=g)
    with torch.no_grad():
        tokens = encoder(clip, ctx)
        ref = eager(tokens, ctx, tgt)
    got = Runtime.get().load_program(pte).load_method("forward").execute([tokens, ctx, tgt])[0]
    assert got.shape == ref.shape and got.shape[:2] == (1, 16)
    assert float((got - ref).abs().max()) <= 1e-4 * float(ref.abs().max())


def test_all_but_last_context(masked_layout: Path, tmp_path: Path) -> None:
    r = _export(masked_layout, "onnx-fp32", out=tmp_path / "p.onnx", options={"context": "all-but-last"}).report
    assert r["inputs"]["tokens"] == [1, 16, 48] and r["predictor"]["target_idx"] == list(range(16, 32))
    assert r["verification"]["vs_same_precision"]["max_rel_error"] <= 1e-4


def test_refused_before_any_work(
    masked_layout: Path, run_folder: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch
) -> None:
    import shutil

    def no_work(*a, **k):
        raise AssertionError("compute started")

    bare = shutil.copy(RunDir(masked_layout).student, tmp_path_factory.mktemp("bare") / "student.safetensors")

    monkeypatch.setattr(export_run, "export_stage", no_work)
    monkeypatch.setattr("vjepa_edge.distill.head.load_head", no_work)
    # run_folder (tests/export/conftest.py) is a latent distill run: no predictor
    for run, target, opts, needle in (
        (run_folder, "xnnpack-fp32", {}, "loss kind 'latent', which has no predictor"),
        (bare, "xnnpack-fp32", {}, "needs a distill run folder"),
        (masked_layout, "xnnpack-int8", {}, "float precision only"),
        (masked_layout, "mlpackage-fp16", {}, "exports the encoder only"),
        (masked_layout, "onnx-fp32", {"context": "second-half"}, "first-half"),
        (masked_layout, "onnx-fp32", {"part": "decoder"}, "encoder, predictor"),
    ):
        with pytest.raises(ConfigError) as e:
            _export(run, target, out=tmp_path / f"x{export_run.get_target(target).suffix}", options=opts)
        assert needle in e.value.message, e.value.message
    assert list(tmp_path.iterdir()) == []
    result = runner.invoke(app, ["export", str(run_folder), "--target", "onnx-fp32", "--part", "predictor", "--json"])
    assert result.exit_code == 1
    last = json.loads(result.output.strip().splitlines()[-1])
    assert "no predictor" in last["error"] and "masked" in last["hint"]


def test_cli_json_last_line(masked_layout: Path, tmp_path: Path) -> None:
    out = tmp_path / "pred.onnx"
    args = ["export", str(masked_layout), "--target", "onnx-fp32", "--part", "predictor", "--out", str(out)]
    result = runner.invoke(app, [*args, "--verify-clips", "1", "--json"])
    assert result.exit_code == 0, result.output
    r = json.loads(result.output.strip().splitlines()[-1])
    assert r["artifact"] == str(out) and r["part"] == "predictor" and r["verification"]["verified"]
    result = runner.invoke(app, [*args, "--verify-clips", "1"])  # the table renders
    assert result.exit_code == 0 and "first-half: 16 context tokens -> 16 targets" in result.output
