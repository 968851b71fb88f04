"""A tiny teacher file and recipe for fast CPU distillation runs: a random ViT 48x2 teacher on 4-frame 32 px
physics clips, and a vit_tiny student at patch 8 (32 tokens)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from vjepa_edge.distill.recipe import Recipe, recipe_from_dict
from vjepa_edge.models.arch import EncoderArch, VJEPAArch
from vjepa_edge.models.checkpoint import save_vjepa
from vjepa_edge.models.vjepa import VJEPA

TEACHER_ARCH = EncoderArch(
    embed_dim=48, depth=2, num_heads=3, mlp_hidden=192, patch_size=8, tubelet_size=2, num_frames=4, img_size=32
)


def make_teacher(path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    save_vjepa(VJEPA(VJEPAArch(version="vjepa2", encoder=TEACHER_ARCH, target_encoder=True)), path)
    return path


def tiny_recipe_dict(teacher: Path, cache_dir: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "tiny",
        "student": {"name": "vit_tiny", "frames": 4, "size": 32, "patch_size": 8},
        "teacher": {"path": str(teacher)},
        "data": {"source": "physics", "clips": 24, "batch_size": 4, "num_workers": 0},
        "optim": {"steps": 8, "warmup_steps": 2, "lr": 1e-3, "start_lr": 1e-4},
        "cache": {"dir": str(cache_dir)},
        "eval": {"train_clips": 32, "test_clips": 16, "cosine_clips": 8, "epochs": 2},
        "run": {"checkpoint_every": 4, "log_every": 1, "precision": "fp32"},
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    return data


def tiny_recipe(teacher: Path, cache_dir: Path, **sections: dict[str, Any]) -> Recipe:
    return recipe_from_dict(tiny_recipe_dict(teacher, cache_dir, **sections))


def write_toml(path: Path, data: dict[str, Any]) -> Path:
    """A minimal TOML writer for the recipe tables used here (strings, numbers, booleans, flat lists)."""
    lines = []
    for key, value in data.items():
        if not isinstance(value, dict):
            lines.append(f"{key} = {json.dumps(value)}")
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"[{key}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in value.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def teacher_file(tmp_path: Path) -> Path:
    return make_teacher(tmp_path / "teacher.safetensors")
