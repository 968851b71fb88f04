"""`vjepa-edge eval`: every stage of a tiny masked distill run (teacher with a predictor, 8 frames at 32 px), probed on
the same clips and scored on violation-of-expectation pairs; and the refusals that come before any work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import pico_predictor_arch
from tests.distill.conftest import tiny_recipe_dict
from vjepa_edge.distill.recipe import recipe_from_dict
from vjepa_edge.distill.train import distill
from vjepa_edge.errors import ConfigError
from vjepa_edge.eval.run import EVAL_JSON, EXAMPLES, EvalOptions, evaluate_run
from vjepa_edge.models.arch import EncoderArch, VJEPAArch
from vjepa_edge.models.checkpoint import save_vjepa
from vjepa_edge.models.vjepa import VJEPA

ENCODER = EncoderArch(
    embed_dim=48, depth=2, num_heads=3, mlp_hidden=192, patch_size=8, tubelet_size=2, num_frames=8, img_size=32
)
PAIRS = 12  # two per violation kind


def make_world_model_teacher(path: Path) -> Path:
    torch.manual_seed(0)
    arch = VJEPAArch(version="vjepa2", encoder=ENCODER, target_encoder=True, predictor=pico_predictor_arch("rope"))
    save_vjepa(VJEPA(arch), path)
    return path


def world_model_recipe_dict(root: Path, **sections: dict) -> dict:
    """A tiny masked recipe of that teacher (written to `root`): 8 frames, so VoE pairs fit, 4 steps."""
    return tiny_recipe_dict(
        make_world_model_teacher(root / "teacher.safetensors"),
        root / "cache",
        student={"frames": 8, "size": 32, "patch_size": 8},
        loss={"kind": "masked", "pred_dim": 48, "pred_depth": 1, "pred_heads": 3},
        optim={"steps": 4},
        **sections,
    )


@pytest.fixture(scope="module")
def masked_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("eval")
    distill(recipe_from_dict(world_model_recipe_dict(root)), root / "run", progress=False)
    return root / "run"


@pytest.fixture(scope="module")
def evaluated(masked_run: Path) -> dict:
    return evaluate_run(masked_run, EvalOptions(voe_pairs=PAIRS), progress=False).report


def test_every_stage_is_probed_on_the_same_clips(masked_run: Path, evaluated: dict) -> None:
    assert list(evaluated["stages"]) == ["teacher", "random_teacher", "student", "random_student"]
    report = json.loads((masked_run / "report.json").read_text())
    # the accuracies report.json measured with the same protocol are taken from it, the others are measured here
    assert evaluated["probe_acc"]["student"] == pytest.approx(report["student_probe_acc"])
    assert evaluated["probe_acc"]["teacher"] == pytest.approx(report["teacher_probe_acc"])
    assert evaluated["protocol"]["reused_from_report"] == ["random_student", "student", "teacher"]
    assert evaluated["protocol"]["epochs"] == {"grid": 2}  # the recipe's eval.epochs, for the recipe's probe
    # in a distill run the random teacher is the surprise baseline; the random student is the probe baseline
    assert evaluated["stages"]["random_teacher"]["probe_acc"] is None
    for name in ("teacher", "student", "random_student"):
        row = evaluated["stages"][name]
        assert 0.0 <= row["probe_acc"] <= 1.0, name
        assert row["retention"] == pytest.approx(row["probe_acc"] / evaluated["probe_acc"]["teacher"])
    assert (masked_run / "eval" / EVAL_JSON).is_file()


def test_surprise_of_teacher_student_and_baselines(masked_run: Path, evaluated: dict) -> None:
    voe = evaluated["voe_pairwise_acc"]
    assert set(voe) == {"teacher", "random_teacher", "student", "random_student"}
    for name, acc in voe.items():
        row = evaluated["stages"][name]["voe"]
        assert row["overall"]["pairs"] == PAIRS and 0.0 <= acc <= 1.0
        assert sum(k["pairs"] for k in row["kinds"].values()) == PAIRS
    assert evaluated["protocol"]["voe"]["diverge_after"] == 4  # the pairs share their first half
    examples = evaluated["examples"]["pairs"]
    assert len({e["kind"] for e in examples}) == len(examples) == 6
    frames = np.load(masked_run / "eval" / EXAMPLES, allow_pickle=False)
    assert frames["possible"].shape == frames["impossible"].shape == (6, 8, 32, 32, 3)
    for e, possible, impossible in zip(examples, frames["possible"], frames["impossible"], strict=True):
        d = e["diverge_frame"]
        assert d >= 4 and (possible[:d] == impossible[:d]).all() and not (possible[d] == impossible[d]).all()
        assert set(e["surprise"]) == set(voe)


@pytest.mark.slow
def test_recompute_probes_every_stage_again(masked_run: Path, evaluated: dict, tmp_path: Path) -> None:
    again = evaluate_run(
        masked_run, EvalOptions(recompute=True, voe=False, stages=("student",)), out=tmp_path, progress=False
    ).report
    assert again["protocol"]["reused_from_report"] == []
    # the same features and the same seeded probe: the distillation's own number, measured again
    assert again["probe_acc"]["student"] == pytest.approx(evaluated["probe_acc"]["student"], abs=1e-6)
    assert again["voe_pairwise_acc"] == {}


def test_the_recipes_epochs_are_for_its_probe_and_other_kinds_take_their_own() -> None:
    from vjepa_edge.eval.probe import SCHEDULES
    from vjepa_edge.eval.run import Protocol

    protocol = Protocol(probes=("grid", "attentive", "linear"), epochs={"grid": 2})
    assert protocol.to_dict()["epochs"] == {"grid": 2, "attentive": SCHEDULES["attentive"][0], "linear": 20}


def test_bad_options_and_stages_are_refused_before_any_work(masked_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        evaluate_run(masked_run, EvalOptions(probes=("gird",), voe_pairs=1, train_clips=1), out=tmp_path)
    text = str(e.value)
    assert "gird" in text and "--voe-pairs" in text and "--train-clips" in text
    with pytest.raises(ConfigError, match="int8"):
        evaluate_run(masked_run, EvalOptions(stages=("int8",)), out=tmp_path)
    assert not any(tmp_path.iterdir())


def test_teacher_and_baseline_surprise_come_from_the_cache(
    masked_run: Path, evaluated: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # every student of a teacher scores the same teacher and random teacher on the same pairs, and every run of a recipe
    # the same random student: the second time their surprise curves are read from the cache
    import vjepa_edge.eval.physics as physics_module
    import vjepa_edge.eval.surprise as surprise_module
    from vjepa_edge.runinfo import cache_root

    kept = sorted((cache_root() / "surprise").glob("*.safetensors"))
    assert len(kept) == 3  # the teacher, the random teacher and the random student; not the trained student

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("computed again instead of read from the cache")

    monkeypatch.setattr(surprise_module, "voe_pairwise", no_work)
    monkeypatch.setattr(physics_module, "extract_features", no_work)
    cached = ("teacher", "random_teacher", "random_student")
    options = EvalOptions(voe_pairs=PAIRS, stages=cached)
    again = evaluate_run(masked_run, options, out=tmp_path / "a", progress=False).report
    for name in cached:
        assert again["voe_pairwise_acc"][name] == evaluated["voe_pairwise_acc"][name]
        first, second = (r["examples"]["pairs"][0]["surprise"][name] for r in (evaluated, again))
        assert first == second
    monkeypatch.undo()

    # a damaged cache file is computed again, never trusted
    for path in kept:
        path.write_bytes(b"not a safetensors file")
    again = evaluate_run(masked_run, options, out=tmp_path / "b", progress=False).report
    assert again["voe_pairwise_acc"] == {k: evaluated["voe_pairwise_acc"][k] for k in cached}
