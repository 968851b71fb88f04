"""`vjepa-edge teacher pretrain|probe`: bad input is one error and exit code 1; a tiny run end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.teacher.conftest import tiny_config
from vjepa_edge.cli.teacher import _probe_config
from vjepa_edge.errors import ConfigError
from vjepa_edge.models.checkpoint import save_vjepa
from vjepa_edge.models.vjepa import VJEPA


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vjepa_edge", "teacher", *args], capture_output=True, text=True, timeout=300
    )


def test_a_bad_config_lists_every_problem_without_a_traceback(tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[model]\nsize = "vit_smal"\npatchsize = 16\n[optim]\nsteps = -3\n[data]\nbatch_size = "8"\n')
    r = _run("pretrain", "--config", str(bad), "--out", str(tmp_path / "run"))
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert "error:" in r.stderr
    for needle in ("vit_smal", "patchsize", "did you mean 'patch_size'", "steps=-3", "data.batch_size"):
        assert needle in r.stderr, needle
    assert not (tmp_path / "run").exists()


def test_missing_data_and_nothing_to_resume_are_clear_errors(tmp_path) -> None:
    r = _run("pretrain", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "a"), "--json")
    assert r.returncode == 1 and "no such data source" in r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["error"]
    r = _run("pretrain", "--out", str(tmp_path / "empty"), "--resume")
    assert r.returncode == 1 and "nothing to resume" in r.stderr and "Traceback" not in r.stderr


def test_probe_compares_a_teacher_with_a_random_init_encoder(tmp_path) -> None:
    model = VJEPA(tiny_config().arch())
    path = save_vjepa(model, tmp_path / "t.safetensors")
    r = _run("probe", str(path), "--train-clips", "32", "--test-clips", "16", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(out["results"]) == {"teacher", "random init"}
    for per in out["results"].values():
        assert set(per) == {"event", "direction"}
        assert all(0.0 <= v["accuracy"] <= 1.0 and v["num_test"] == 16 for v in per.values())


def test_probe_training_options_are_checked_before_the_checkpoint_is_read(tmp_path) -> None:
    r = _run("probe", str(tmp_path / "nope.safetensors"), "--lrs", "fast")  # never opened: the options fail first
    assert r.returncode == 1 and "--lrs 'fast'" in r.stderr and "Traceback" not in r.stderr
    with pytest.raises(ConfigError) as e:
        _probe_config("grid", 0, 0, "1e-3,1e-3")
    assert "epochs=0" in str(e.value.problems) and "distinct" in str(e.value.problems)
