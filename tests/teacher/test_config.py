"""Teacher configs load strictly, every bundled file is valid, and the schedules follow V-JEPA's formulas."""

from __future__ import annotations

import math

import pytest

from teacher.config import bundled_configs, config_from_dict, load_config
from teacher.schedules import Schedule
from tests.teacher.conftest import TINY, tiny_config
from vjepa_edge.errors import ConfigError


@pytest.mark.parametrize("path", bundled_configs(), ids=lambda p: p.stem)
def test_bundled_configs_load(path):
    cfg = load_config(path)
    assert cfg.name == path.stem
    arch = cfg.arch()
    assert arch.target_encoder and arch.predictor is not None
    assert arch.predictor.num_mask_tokens == len(cfg.masks)


def test_physics_teacher_is_larger_than_the_default_students():
    from vjepa_edge.models.students import create_student
    from vjepa_edge.models.vit import VisionTransformer

    cfg = load_config("physics")
    clip = cfg.data.clip
    teacher = sum(p.numel() for p in VisionTransformer(cfg.arch().encoder).parameters())
    for name in ("vit_tiny", "vit_small"):
        student = create_student(name, frames=clip.frames, size=clip.size)
        assert teacher > sum(p.numel() for p in student.parameters()), name
    assert cfg.arch().encoder.embed_dim > student.embed_dim


def test_every_problem_reported_at_once(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'name = "bad"\n[model]\nembed_dim = 64\ndepth = 2\nnum_heads = 4\nlayers = 3\n'
        '[optim]\nsteps = "ten"\nlrr = 0.1\n[run]\nprecision = "fp8"\n'
    )
    with pytest.raises(ConfigError) as e:
        load_config(bad)
    text = e.value.message
    assert "model.layers: unknown key" in text
    assert "optim.steps: expected an integer" in text
    assert "optim.lrr: unknown key (did you mean 'lr'?)" in text
    assert "run.precision: 'fp8' is not one of" in text
    assert len(e.value.problems) == 4


def test_values_checked_by_the_dataclasses_are_reported_with_their_section():
    with pytest.raises(ConfigError) as e:
        config_from_dict({**TINY, "optim": {"steps": 10, "warmup_steps": 20, "ema": [1.0, 0.9]}})
    assert any(p.startswith("optim: warmup_steps=20") for p in e.value.problems)
    assert any("ema=" in p for p in e.value.problems)


def test_unknown_config_name_lists_the_bundled_ones():
    with pytest.raises(ConfigError) as e:
        load_config("phyiscs")
    assert "physics" in e.value.hint


def test_with_steps_keeps_the_warmup_share():
    cfg = load_config("physics")
    short = cfg.with_steps(cfg.optim.steps // 10)
    assert short.optim.steps == cfg.optim.steps // 10
    assert short.optim.warmup_steps == round(cfg.optim.warmup_steps / 10)
    assert short.digest() != cfg.digest()


def test_vjepa1_schedules():
    cfg = tiny_config(optim={"steps": 1000, "warmup_steps": 100, "start_lr": 2e-4, "lr": 6.25e-4, "final_lr": 1e-6})
    s = Schedule(cfg.optim)
    assert s.lr(0) == pytest.approx(2e-4)
    assert s.lr(50) == pytest.approx((2e-4 + 6.25e-4) / 2)
    assert s.lr(100) == pytest.approx(6.25e-4)
    # cosine over steps * ipe_scale = 1250: at the run's end 3/4 of the way through the decay
    progress = (1000 - 100) / (1250 - 100)
    assert s.lr(1000) == pytest.approx(1e-6 + (6.25e-4 - 1e-6) * 0.5 * (1 + math.cos(math.pi * progress)))
    assert s.lr(1250) == pytest.approx(1e-6)
    lrs = [s.lr(i) for i in range(100, 1001)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))
    assert s.weight_decay(0) == pytest.approx(0.04)
    assert s.weight_decay(1250) == pytest.approx(0.4)
    assert 0.04 < s.weight_decay(500) < 0.4
    assert s.momentum(0) == pytest.approx(0.99)
    assert s.momentum(1250) == pytest.approx(1.0)
    assert s.momentum(625) == pytest.approx(0.995)
    assert s.clip_grad(99) is None and s.clip_grad(100) == 10.0


def test_vjepa2_schedule_constant_then_cooldown():
    cfg = tiny_config(
        optim={
            "schedule": "vjepa2",
            "steps": 1000,
            "warmup_steps": 100,
            "cooldown_steps": 200,
            "start_lr": 1e-4,
            "lr": 5.25e-4,
            "final_lr": 1e-6,
            "ema": [0.99925, 0.99925],
            "final_weight_decay": 0.04,
            "clip_grad": 0.0,
        }
    )
    s = Schedule(cfg.optim)
    assert s.lr(100) == s.lr(799) == pytest.approx(5.25e-4)
    assert s.lr(900) == pytest.approx((5.25e-4 + 1e-6) / 2)
    assert s.lr(1000) == pytest.approx(1e-6)
    assert s.momentum(0) == s.momentum(999) == 0.99925
    assert s.weight_decay(0) == s.weight_decay(999) == 0.04
    assert s.clip_grad(500) is None
