"""The main job ends deployed: `vjepa-edge distill` runs the recipe's [deploy] stages (quantize, export + verify,
profile, eval, report) on a tiny masked run (`--no-deploy`: tests/cli/test_distill_cli.py); a failing stage says
so, skips the rest and leaves the student and the stages before it in place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.distill.conftest import tiny_recipe_dict, write_toml
from tests.eval.test_eval_run import make_world_model_teacher, world_model_recipe_dict
from vjepa_edge.cli import app

runner = CliRunner()


def _recipe(root: Path) -> Path:
    deploy = {"scheme": "xnnpack-int8", "target": "xnnpack-int8", "devices": ["quest3", "iphone15pro"]}
    return write_toml(root / "tiny.toml", world_model_recipe_dict(root, deploy=deploy))


def _distill(*args: str) -> tuple[int, dict, str]:
    result = runner.invoke(app, ["distill", *args, "--no-progress", "--json"])
    return result.exit_code, json.loads(result.stdout.strip().splitlines()[-1]), result.output


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("deploy")
    code, out, text = _distill("--recipe", str(_recipe(root)), "--out", str(root / "run"))
    assert code == 0, text
    return root / "run", out


@pytest.mark.slow
def test_distill_ends_with_a_verified_int8_artifact_verdicts_and_the_report(deployed: tuple[Path, dict]) -> None:
    run, out = deployed
    deploy = out["deploy"]
    assert {n: s["status"] for n, s in deploy["stages"].items()} == dict.fromkeys(
        ("quantize", "export", "profile", "eval", "report"), "ok"
    )
    artifact = Path(deploy["artifact"])
    assert artifact == run / "export" / "xnnpack-int8.pte" and artifact.stat().st_size > 0
    exported = json.loads((run / "export" / "export_report.json").read_text())
    assert exported["xnnpack-int8"]["verification"]  # verified against eager before it was published
    assert "predictor-xnnpack-fp32" in exported  # the world model a device computes surprise with
    assert set(deploy["verdicts"]) == {"host", "quest3", "iphone15pro"}
    assert deploy["verdicts"]["host"]["measured"] and deploy["verdicts"]["host"]["p50_ms"] > 0
    assert all(isinstance(v["fits"], bool) for v in deploy["verdicts"].values())
    evaluated = json.loads((run / "eval" / "eval.json").read_text())
    assert {"teacher", "random_teacher", "student", "random_student", "artifact:xnnpack-int8"} == set(
        evaluated["voe_pairwise_acc"]
    )  # the int8 program is evaluated as the artifact that runs it (PT2E in PyTorch is 40x slower)
    assert 0.9 < evaluated["stages"]["artifact:xnnpack-int8"]["cosine_to_student"] <= 1.0
    assert Path(deploy["report_html"]) == run / "report.html" and (run / "report.md").is_file()
    assert json.loads((run / "report.json").read_text())["deploy"] == deploy  # recorded with the run


@pytest.mark.slow
def test_the_int8_program_itself_when_asked_for(deployed: tuple[Path, dict], tmp_path: Path) -> None:
    from vjepa_edge.eval.run import EvalOptions, evaluate_run

    run, _ = deployed
    out = evaluate_run(run, EvalOptions(stages=("student", "int8"), voe_pairs=6), out=tmp_path, progress=False).report
    row = out["stages"]["int8"]
    assert row["source"] == str(run / "quant" / "xnnpack-int8") and 0.9 < row["cosine_to_student"] <= 1.0
    assert 0.0 <= row["voe_pairwise_acc"] <= 1.0 and row["voe"]["overall"]["pairs"] == 6


@pytest.mark.slow
def test_a_failing_stage_says_so_and_keeps_what_came_before(deployed: tuple[Path, dict], monkeypatch) -> None:
    run, _ = deployed
    import vjepa_edge.distill.deploy as deploy_module
    from vjepa_edge.errors import ConfigError

    def broken(*args, **kwargs) -> None:
        raise ConfigError("no device answers", hint="plug it in")

    monkeypatch.setattr(deploy_module, "_profile", broken)
    student = (run / "student.safetensors").read_bytes()
    recipe = run.parent / "tiny.toml"
    code, out, text = _distill("--recipe", str(recipe), "--out", str(run), "--resume")
    assert code == 1
    assert "deploy stage profile failed: no device answers" in out["error"] and "vjepa-edge profile" in out["hint"]
    stages = json.loads((run / "report.json").read_text())["deploy"]["stages"]
    assert [stages[n]["status"] for n in ("quantize", "export", "profile", "eval", "report")] == [
        "ok",
        "ok",
        "failed",
        "skipped",
        "skipped",
    ]
    assert (run / "student.safetensors").read_bytes() == student
    assert (run / "export" / "xnnpack-int8.pte").is_file()


def test_a_deploy_the_machine_cannot_do_is_refused_before_any_compute(tmp_path: Path) -> None:
    data = tiny_recipe_dict(
        make_world_model_teacher(tmp_path / "t.safetensors"),
        tmp_path / "cache",
        deploy={"scheme": "onnx-int8", "target": "xnnpack-int8", "devices": ["quest3"]},
    )
    result = runner.invoke(app, ["distill", "--recipe", str(write_toml(tmp_path / "r.toml", data))])
    assert result.exit_code == 1
    assert "does not take scheme 'onnx-int8'" in result.output
    assert not (tmp_path / "cache").exists()
