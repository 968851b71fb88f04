"""`vjepa-edge quantize --qat`: a short fine-tune on the run's teacher-feature cache (no teacher forward), then
the scheme's own convert; refused with a message when the run folder cannot provide the cache or the head."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from tests.distill.conftest import make_teacher, tiny_recipe
from vjepa_edge.cli import app
from vjepa_edge.distill.train import distill
from vjepa_edge.models.checkpoint import load_vjepa
from vjepa_edge.quant.qat import QatOptions, qat_finetune, qat_sources
from vjepa_edge.quant.run import QuantizeOptions, quantize
from vjepa_edge.quant.schemes import get_scheme
from vjepa_edge.runs import RunDir

runner = CliRunner()
SMALL = dict(calib_clips=8, eval_train_clips=24, eval_test_clips=8, batch_size=4)


@pytest.fixture(scope="module")
def distilled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny distill run (masked loss) with its teacher-feature cache, shared by the module's tests
    (they write only under quant/ subfolders of their own)."""
    tmp = tmp_path_factory.mktemp("qat")
    recipe = tiny_recipe(make_teacher(tmp / "teacher.safetensors"), tmp / "cache", loss={"kind": "masked"})
    return distill(recipe, tmp / "run", progress=False).run_dir


# Both slow (39 s for xnnpack-int8 on 2 cores): the default suite keeps PT2E QAT prepare / train / convert in
# tests/quant/test_pt2e.py and the refusals below; `uv run pytest -m slow` runs the fine-tune on the cache.
@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["xnnpack-int8", "torchao-int8-dyn"])
def test_qat_fine_tunes_on_the_cache_and_converts(distilled: Path, scheme: str, monkeypatch) -> None:
    from vjepa_edge.distill import train

    # The teacher must not run: its features come from the cache.
    monkeypatch.setattr(train, "load_teacher", lambda *a, **k: pytest.fail("QAT loaded the teacher"))
    options = QuantizeOptions(scheme=scheme, qat=True, qat_steps=6, qat_lr=1e-4, **SMALL)
    result = quantize(distilled, options, out=distilled / "quant" / f"qat-{scheme}", progress=False)
    r = result.report
    q = r["qat_finetune"]
    assert q["steps"] == 6 and len(q["history"]) == 6
    assert Path(q["cache"]).parent == Path(json.loads(RunDir(distilled).report.read_text())["cache"]["path"]).parent
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in q["history"])
    assert 0.9 < r["feature_cosine"] < 1.0  # a fine-tuned int8 student: close to fp32, not fp32 itself
    # The fine-tune trained the weights: the same steps at learning rate 0 (same batches, same observer updates)
    # give another program.
    (x,) = result.program.input_spec.example_inputs()
    student = load_vjepa(RunDir(distilled).student).encoder.eval()
    impl = get_scheme(scheme).load()
    frozen, _ = qat_finetune(impl, student, qat_sources(RunDir(distilled), student), QatOptions(steps=6, lr=0.0))
    assert not torch.allclose(result.program(x), frozen(x))
    loaded = get_scheme(scheme).load().load(result.folder)
    torch.testing.assert_close(loaded(x), result.program(x))


def test_qat_refuses_runs_without_cache_or_head(distilled: Path, tmp_path: Path) -> None:
    run = RunDir(distilled)
    alone = tmp_path / "alone" / "student.safetensors"  # a student file outside any run folder
    alone.parent.mkdir()
    shutil.copy(run.student, alone)
    bare = runner.invoke(app, ["quantize", str(alone), "--qat"])
    assert bare.exit_code == 1 and "distill run folder" in bare.output and "hint:" in bare.output, bare.output
    moved = RunDir(tmp_path / "moved")  # a copy of the run whose cache is gone
    shutil.copytree(distilled, moved.root, ignore=shutil.ignore_patterns("quant"))
    report = json.loads(moved.report.read_text())
    report["cache"]["path"] = str(tmp_path / "deleted-cache" / "0123456789abcdef")
    moved.report.write_text(json.dumps(report))
    gone = runner.invoke(app, ["quantize", str(moved.root), "--qat"])
    assert gone.exit_code == 1 and "teacher-feature cache" in gone.output, gone.output
    assert not moved.quant.exists()
    bad = runner.invoke(app, ["quantize", str(moved.root), "--qat", "--qat-steps", "0"])
    assert bad.exit_code == 1 and "--qat-steps" in bad.output, bad.output
