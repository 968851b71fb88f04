"""`vjepa-edge distill|validate|list`: bad recipes are one error listing every problem, exit code 1, no
traceback; the bundled recipes validate; a tiny distillation runs end to end through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.data.videos import encode_video
from tests.distill.conftest import make_teacher, tiny_recipe_dict, write_toml
from vjepa_edge.distill.recipe import bundled_recipes, load_recipe
from vjepa_edge.models.checkpoint import load_vjepa
from vjepa_edge.models.students import list_students


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vjepa_edge", *args], capture_output=True, text=True, timeout=300)


def _clean_failure(r: subprocess.CompletedProcess[str]) -> None:
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    assert r.stderr.count("error:") == 1


def test_a_bad_recipe_lists_every_problem_at_once(tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'name = "bad"\n'
        "[student]\n"
        'name = "vit_smal"\n'
        "framez = 8\n"
        "[teacher]\n"
        f'path = "{tmp_path / "missing.pt"}"\n'
        "[optim]\n"
        'steps = "many"\n'
        "lr = -1.0\n"
        "[loss]\n"
        'distance = "l3"\n'
    )
    for command in (("validate", str(bad)), ("distill", "--recipe", str(bad), "--out", str(tmp_path / "run"))):
        r = _run(*command)
        _clean_failure(r)
        for needle in (
            "framez",
            "did you mean 'frames'",
            "optim.steps",
            "lr=-1.0",
            "loss.distance",
            "missing.pt",
            "no such file",
            "vit_smal",
            "vit_small",
        ):
            assert needle in r.stderr, (needle, r.stderr)
        assert not (tmp_path / "run").exists()


def test_missing_teacher_file_and_data_are_clear_errors(tmp_path) -> None:
    r = _run("distill", "--recipe", "vit_s", "--teacher", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "r"))
    _clean_failure(r)
    assert "nope.pt" in r.stderr and "no such file" in r.stderr
    r = _run("validate", "vit_s", "--data", str(tmp_path / "videos"), "--json")
    _clean_failure(r)
    assert "no such data source" in json.loads(r.stdout.strip().splitlines()[-1])["error"]
    r = _run("distill", "--recipe", "vit_z")
    _clean_failure(r)
    assert "vit_s" in r.stderr  # the closest recipe names are suggested


@pytest.mark.parametrize("path", bundled_recipes(), ids=lambda p: p.stem)
def test_every_bundled_recipe_is_well_formed(path) -> None:
    recipe = load_recipe(path, check=False)
    assert recipe.name == path.stem
    assert recipe.student.name in list_students()
    if recipe.teacher.embedded:
        assert load_recipe(path).name == path.stem  # nothing outside the file is missing either


def test_vit_b_says_how_to_pass_a_released_teacher(tmp_path) -> None:
    r = _run("validate", "vit_b")
    _clean_failure(r)
    assert "--teacher" in r.stderr and "vjepa2" in r.stderr
    teacher = make_teacher(tmp_path / "t.safetensors")
    videos = tmp_path / "videos"
    videos.mkdir()
    clip = encode_video(videos / "clip0.mp4")
    for i in range(1, 8):  # one batch of vit_b's 8 readable videos
        (videos / f"clip{i}.mp4").symlink_to(clip)
    r = _run("validate", "vit_b", "--teacher", str(teacher), "--data", str(videos), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["resolved"]["teacher"]["path"] == str(teacher)


def test_list_recipes_and_students() -> None:
    from typer.testing import CliRunner

    from vjepa_edge.cli import app

    def listed(what: str) -> list[str]:
        r = CliRunner().invoke(app, ["list", what, "--json"])
        assert r.exit_code == 0, r.output
        return [row["name"] for row in json.loads(r.stdout.strip().splitlines()[-1])[what]]

    assert {"vit_t", "vit_s", "vit_b"} <= set(listed("recipes"))
    assert listed("students") == list_students()
    _clean_failure(_run("list", "studnets"))


def test_tiny_distillation_end_to_end(tmp_path) -> None:
    teacher = make_teacher(tmp_path / "t.safetensors")
    recipe = write_toml(tmp_path / "tiny.toml", tiny_recipe_dict(teacher, tmp_path / "cache"))
    r = _run("distill", "--recipe", str(recipe), "--out", str(tmp_path / "run"), "--no-deploy", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert 0.0 <= out["student_probe_acc"] <= 1.0 and out["student_params"] > 0
    assert "deploy" not in out and not (tmp_path / "run" / "quant").exists()  # --no-deploy stops after the student
    assert load_vjepa(out["student_path"]).encoder.embed_dim == 192
    r = _run("distill", "--recipe", str(recipe), "--out", str(tmp_path / "run"))
    _clean_failure(r)
    assert "already holds a run" in r.stderr and "--resume" in r.stderr
