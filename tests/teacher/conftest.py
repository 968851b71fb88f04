"""A tiny teacher config for fast CPU runs: ViT 48x2 on 4-frame 32 px physics clips (32 tokens)."""

from __future__ import annotations

import pytest

from teacher.config import TeacherConfig, config_from_dict

TINY = {
    "name": "tiny",
    "model": {
        "embed_dim": 48,
        "depth": 2,
        "num_heads": 3,
        "patch_size": 8,
        "pos": "rope",
        "pred_dim": 24,
        "pred_depth": 1,
        "pred_heads": 2,
    },
    "data": {
        "source": "physics",
        "batch_size": 4,
        "num_workers": 0,
        "physics_clips": 64,
        "clip": {"frames": 4, "size": 32, "fps": 8.0},
    },
    "optim": {"steps": 12, "warmup_steps": 2, "lr": 1e-3, "start_lr": 1e-4, "ema": [0.99, 1.0]},
    "run": {"checkpoint_every": 4, "log_every": 1, "precision": "fp32"},
}


def tiny_config(**sections) -> TeacherConfig:
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in TINY.items()}
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    return config_from_dict(data)


@pytest.fixture
def tiny() -> TeacherConfig:
    return tiny_config()
