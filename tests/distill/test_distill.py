"""The distillation loop: a short run learns, writes a loadable student and a report; resume is exact;
every registered student takes a distillation step and its checkpoint round-trips; two processes agree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.distill.conftest import tiny_recipe
from tests.torchrun import run_two_processes
from vjepa_edge.distill.losses import DistillHead, DistillModel, distill_loss, teacher_targets
from vjepa_edge.distill.train import distill
from vjepa_edge.errors import TrainingError
from vjepa_edge.models.checkpoint import load_vjepa, save_vjepa
from vjepa_edge.models.students import create_student, list_students
from vjepa_edge.models.vjepa import student_model

ROOT = Path(__file__).resolve().parents[2]
REPORT_KEYS = {
    "teacher_probe_acc",
    "student_probe_acc",
    "random_student_probe_acc",
    "retention",
    "feature_cosine",
    "student_params",
    "teacher_params",
}


def _rows(run: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines() if ln.strip()]


def test_short_run_learns_and_writes_a_loadable_student(tmp_path, teacher_file):
    recipe = tiny_recipe(teacher_file, tmp_path / "cache", optim={"steps": 24}, run={"checkpoint_every": 12})
    result = distill(recipe, tmp_path / "run", progress=False)
    rows = _rows(result.run_dir)
    first, last = rows[0], rows[-1]
    assert last["step"] == 24
    assert sum(r["loss"] for r in rows[-4:]) / 4 < 0.8 * first["loss"]  # the student learns the teacher's tokens
    assert last["cosine"] > first["cosine"]
    report = json.loads((result.run_dir / "report.json").read_text())
    assert REPORT_KEYS <= report.keys()
    assert report["retention"] == pytest.approx(report["student_probe_acc"] / report["teacher_probe_acc"])
    assert report["cache"]["enabled"] and report["cache"]["bytes"] > 0 and not report["cache"]["reused"]
    stages = report["stages"]
    assert set(stages) == {"teacher_pretraining", "data_rendering", "feature_cache", "training", "evaluation"}
    assert all(stages[k] > 0 for k in ("data_rendering", "feature_cache", "training", "evaluation")), stages
    # The student file is this project's format: load_vjepa(...).encoder is the trained student.
    loaded = load_vjepa(result.student).encoder
    clip = torch.randn(2, 3, 4, 32, 32)
    assert loaded.arch == create_student("vit_tiny", frames=4, size=32, patch_size=8).arch
    assert report["student_params"] == sum(p.numel() for p in loaded.parameters())
    for name in ("recipe.json", "env.json"):
        assert (result.run_dir / name).is_file()
    # A second run of the same recipe reuses the teacher-feature cache instead of running the teacher again.
    again = distill(recipe.replace(optim={"steps": 2, "warmup_steps": 1}), tmp_path / "run2", progress=False)
    assert again.report["cache"]["reused"]
    assert torch.isfinite(loaded(clip)).all()


def test_resume_ends_with_the_weights_of_an_uninterrupted_run(tmp_path, teacher_file):
    recipe = tiny_recipe(teacher_file, tmp_path / "cache")
    whole = distill(recipe, tmp_path / "whole", progress=False)
    part = distill(recipe, tmp_path / "part", progress=False, stop_after=4)
    assert part.steps == 4 and not part.student.exists()
    resumed = distill(recipe, tmp_path / "part", progress=False, resume=True)
    a, b = load_file(str(whole.student)), load_file(str(resumed.student))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    steps = [r["step"] for r in _rows(tmp_path / "part")]
    assert steps == sorted(set(steps))  # no step logged twice


def test_run_folder_guards(tmp_path, teacher_file):
    recipe = tiny_recipe(teacher_file, tmp_path / "cache", optim={"steps": 2, "warmup_steps": 1})
    distill(recipe, tmp_path / "run", progress=False, stop_after=1)
    with pytest.raises(TrainingError, match="already holds a run"):
        distill(recipe, tmp_path / "run", progress=False)
    with pytest.raises(TrainingError, match="another recipe"):
        distill(recipe.replace(optim={"lr": 5e-4}), tmp_path / "run", progress=False, resume=True)


def test_masked_distillation_and_online_teacher(tmp_path, teacher_file):
    recipe = tiny_recipe(
        teacher_file,
        tmp_path / "cache",
        loss={"kind": "masked", "mask_ratio": 0.5, "pred_dim": 24, "pred_depth": 1, "pred_heads": 2},
        cache={"enabled": False},
        optim={"steps": 12},
    )
    result = distill(recipe, tmp_path / "run", progress=False)
    rows = _rows(result.run_dir)
    assert rows[-1]["loss"] < rows[0]["loss"]
    assert result.report["cache"] == {"enabled": False}
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("name", list_students())
def test_every_student_takes_a_distillation_step_and_round_trips(tmp_path, name):
    torch.manual_seed(0)
    frames, size = 4, 64
    student = create_student(name, frames=frames, size=size)
    teacher_grid, teacher_dim = (2, 4, 4), 48
    model = DistillModel(student, DistillHead(student.embed_dim, teacher_dim, tuple(student.grid)))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    clip = torch.randn(2, 3, frames, size, size)
    features = torch.randn(2, 32, teacher_dim)
    targets = teacher_targets(features, teacher_grid, tuple(student.grid), normalize=True)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    pred, index = model(clip)
    loss = distill_loss(pred, index, targets, "l1")
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(before[k], v) for k, v in student.state_dict().items())
    student.eval()
    path = save_vjepa(student_model(student), tmp_path / "student.safetensors")
    loaded = load_vjepa(path).encoder
    assert loaded.arch == student.arch
    with torch.no_grad():
        assert torch.equal(loaded(clip), student(clip))


def test_the_student_sees_the_teachers_clip_through_its_own_input_spec():
    """What a distillation step feeds the student: every (T/frames)-th frame of the teacher's clip, resized."""
    clip = torch.arange(8.0).view(1, 1, 8, 1, 1).expand(2, 3, 8, 16, 16)
    out = create_student("vit_tiny", frames=4, size=8, patch_size=4).input_spec.adapt(clip)
    assert out.shape == (2, 3, 4, 8, 8)
    assert out[0, 0, :, 0, 0].tolist() == [0.0, 2.0, 4.0, 6.0]
    assert torch.equal(create_student("vit_tiny", frames=8, size=16, patch_size=8).input_spec.adapt(clip), clip)


@pytest.mark.slow  # 25 s; torchrun + gloo stay in the default suite through the teacher's two-process test
def test_two_process_gloo_run_keeps_ranks_identical(tmp_path, teacher_file):
    done = run_two_processes(
        ROOT / "tests" / "distill" / "ddp_worker.py", str(tmp_path), str(teacher_file), port_base=29700
    )
    assert done.returncode == 0, done.stderr[-3000:]
    r0, r1 = load_file(str(tmp_path / "rank0.safetensors")), load_file(str(tmp_path / "rank1.safetensors"))
    assert r0.keys() == r1.keys()
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k
    saved = load_file(str(tmp_path / "run" / "student.safetensors"))
    assert all(torch.equal(saved[f"encoder.{k}"], r0[k]) for k in r0)
    torch.manual_seed(0)  # the run's seed: the weights both ranks started from
    init = create_student("vit_tiny", frames=4, size=32, patch_size=8).state_dict()
    assert any(not torch.equal(init[k], v) for k, v in r0.items())
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["world_size"] == 2


def test_distills_on_a_folder_of_real_videos_and_skips_a_corrupt_one(tmp_path, teacher_file):
    from tests.data.videos import encode_video, truncate

    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(7):
        encode_video(videos / f"clip{i}.mp4", frames=20, size=(48, 40), fps=10, content="noise")
    truncate(videos / "clip6.mp4", videos / "broken.mp4", fraction=0.2)  # 8 files: epoch 0 reads every one
    recipe = tiny_recipe(
        teacher_file,
        tmp_path / "cache",
        data={"source": str(videos), "fps": 5.0, "batch_size": 2, "max_bad_fraction": 0.5},
        optim={"steps": 6},
        eval={"train_clips": 16, "test_clips": 8, "cosine_clips": 4, "epochs": 1},
    )
    result = distill(recipe, tmp_path / "run", progress=False)
    report = result.report
    assert report["cache"]["items"] == 8 and report["feature_cosine"] > 0
    assert report["bad_videos"]["bad_files"] == 1, report["bad_videos"]
    assert load_vjepa(result.student).encoder.embed_dim == 192


@pytest.mark.parametrize("name", ["vjepa1_tiny.pth.tar", "vjepa2_tiny.pth.tar", "hf_vjepa2_tiny"])
def test_official_checkpoints_are_teachers(tmp_path, name):
    """V-JEPA 1 and 2 files and a Hugging Face directory distil as they are (48 px teacher, 32 px student)."""
    teacher = ROOT / "tests" / "fixtures" / name
    recipe = tiny_recipe(
        teacher,
        tmp_path / "cache",
        optim={"steps": 3, "warmup_steps": 1},
        eval={"train_clips": 16, "test_clips": 8, "cosine_clips": 4, "epochs": 1},
    )
    result = distill(recipe, tmp_path / "run", progress=False)
    report = result.report
    assert report["teacher"]["input"] == [4, 48] and report["teacher"]["grid"] == [2, 3, 3]
    assert report["student"]["grid"] == [2, 4, 4]  # the teacher's 3x3 map is resampled to the student's 4x4
    assert report["teacher_params"] == sum(p.numel() for p in load_vjepa(teacher).encoder.parameters())
    assert load_vjepa(result.student).encoder.embed_dim == 192
