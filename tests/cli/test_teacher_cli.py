"""`vjepa-edge teacher pretrain|probe`: bad input is one error and exit code 1; a tiny run end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.teacher.conftest import tiny_config
from vjepa_edge.cli._common import console
from vjepa_edge.cli.teacher import _probe_config, _render_probe, _summary
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


def test_probe_repeats_report_the_mean_and_spread_over_seeds(tmp_path) -> None:
    model = VJEPA(tiny_config().arch())
    path = save_vjepa(model, tmp_path / "t.safetensors")
    args = ("probe", str(path), "--train-clips", "16", "--test-clips", "8", "--labels", "event", "--seed", "3")
    r = _run(*args, "--repeats", "2", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["seeds"] == [3, 4] and [x["seed"] for x in out["repeats"]] == [3, 4]
    assert out["results"] == out["repeats"][0]["results"]
    accs = {n: [x["results"][n]["event"]["accuracy"] for x in out["repeats"]] for n in ("teacher", "random init")}
    gaps = [a - b for a, b in zip(accs["teacher"], accs["random init"], strict=True)]
    summary = out["summary"]["event"]
    assert summary["teacher"]["mean"] == pytest.approx(sum(accs["teacher"]) / 2)
    assert summary["gap"]["mean"] == pytest.approx(sum(gaps) / 2)
    assert summary["gap"]["sd"] == pytest.approx(abs(gaps[0] - gaps[1]) / 2**0.5)
    with console.capture() as table:
        _render_probe(out)
    assert "over 2 probe seeds (3, 4)" in table.get() and "gap" in table.get()


def test_the_probe_summary_pairs_each_seed_s_teacher_with_its_random_init() -> None:
    def run(teacher: float, random: float) -> dict:
        per = {"teacher": teacher, "random init": random}
        return {"results": {name: {"event": {"accuracy": acc}} for name, acc in per.items()}}

    s = _summary([run(0.5, 0.4), run(0.7, 0.4), run(0.6, 0.5)])["event"]
    assert s["teacher"]["mean"] == pytest.approx(0.6) and s["teacher"]["sd"] == pytest.approx(0.1)
    assert s["random init"]["mean"] == pytest.approx(13 / 30)
    assert s["gap"]["mean"] == pytest.approx(1 / 6) and s["gap"]["sd"] == pytest.approx(0.115470054)


def test_repeats_must_be_a_positive_count(tmp_path) -> None:
    r = _run("probe", str(tmp_path / "nope.safetensors"), "--repeats", "0")
    assert r.returncode == 1 and "--repeats=0" in r.stderr and "Traceback" not in r.stderr
