"""The distillation's feature cosine read from the probe's tokens equals the one that encodes its clips again."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from vjepa_edge.data.config import ClipSpec
from vjepa_edge.distill.evaluate import feature_cosine, probe_cosine
from vjepa_edge.eval.physics import probe_clips
from vjepa_edge.eval.probe import Adapted, Features, extract_features
from vjepa_edge.models.arch import EncoderArch
from vjepa_edge.models.students import create_student
from vjepa_edge.models.vit import VisionTransformer

SPEC = ClipSpec(frames=4, size=32, fps=8.0, frame_step=None)


def test_cosine_from_probe_tokens_matches_encoding_the_test_clips_again():
    torch.manual_seed(0)
    teacher = VisionTransformer(
        EncoderArch(embed_dim=48, depth=1, num_heads=3, mlp_hidden=96, num_frames=4, img_size=32, patch_size=8)
    ).eval()
    student = create_student("vit_tiny", frames=4, size=32, patch_size=8, tubelet_size=2).eval()
    projector = nn.Linear(student.arch.embed_dim, teacher.arch.embed_dim)
    recipe = SimpleNamespace(
        eval=SimpleNamespace(cosine_clips=6), data=SimpleNamespace(source="physics"), run=SimpleNamespace(seed=0)
    )
    d = SimpleNamespace(
        recipe=recipe,
        spec=SPEC,
        device=torch.device("cpu"),
        amp=None,
        teacher=teacher,
        student=student,
        model=SimpleNamespace(head=SimpleNamespace(projector=projector)),
        teacher_grid=teacher.grid,
        student_grid=student.grid,
        encode=teacher,
    )
    _, test_clips = probe_clips(SPEC, train_clips=4, test_clips=8, seed=0)
    t = extract_features(teacher, test_clips)
    s = extract_features(Adapted(student, student.input_spec, student.grid), test_clips)
    from_probe = probe_cosine(d, t, s, recipe.eval.cosine_clips)
    encoded_again = feature_cosine(d, progress=False)
    assert from_probe == pytest.approx(encoded_again, abs=2e-3)  # tokens kept in float16 by the probe
    # Other clips give another cosine: the two really compare the same clips.
    shifted = Features(tokens=torch.roll(t.tokens, 1, dims=0), grid=t.grid)
    assert abs(probe_cosine(d, shifted, s, 6) - encoded_again) > 1e-3
