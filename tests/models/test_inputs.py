"""InputSpec: validation, dict round-trip, example inputs, clip adaptation, and the spec every model exposes."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from tests.conftest import V1
from vjepa_edge import InputSpec, load_vjepa
from vjepa_edge.errors import ConfigError
from vjepa_edge.models import create_student


def _reference_adapt(clip: Tensor, frames: int, size: int) -> Tensor:
    """The distill loop's original `adapt_clip`, kept here so that `InputSpec.adapt` stays bit-identical to it."""
    B, C, T, H, W = clip.shape
    x = clip[:, :, :: T // frames]
    if (H, W) != (size, size):
        x = x.transpose(1, 2).reshape(B * frames, C, H, W)
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        x = x.reshape(B, frames, C, size, size).transpose(1, 2)
    return x.contiguous()


def test_shape_grid_and_tokens() -> None:
    spec = InputSpec(frames=8, size=64, tubelet=2, patch=16)
    assert spec.shape() == (1, 3, 8, 64, 64) and spec.shape(4) == (4, 3, 8, 64, 64)
    assert spec.grid == (4, 4, 4) and spec.num_tokens == 64
    assert spec.layout == "BCTHW" and spec.channels == 3


def test_example_inputs_are_deterministic_float32() -> None:
    spec = InputSpec(frames=4, size=32, tubelet=2, patch=16)
    (a,), (b,), (c,) = spec.example_inputs(2), spec.example_inputs(2), spec.example_inputs(2, seed=1)
    assert a.shape == (2, 3, 4, 32, 32) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.randn(3)  # the global generator is neither used nor disturbed
    assert torch.equal(spec.example_inputs(2)[0], a)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"frames": 0}, "frames must be a positive integer"),
        ({"size": 40}, "size 40 is not a multiple of patch 16"),
        ({"frames": 5}, "frames 5 is not a multiple of tubelet 2"),
        ({"mean": (0.5,)}, "mean and std need 3 values"),
        ({"std": (1.0, 0.0, 1.0)}, "std values must be positive"),
        ({"layout": "BTCHW"}, "layout must be one of 'BCTHW'"),
        ({"feature_grid": (2,)}, "feature_grid must be two positive integers"),
    ],
)
def test_invalid_specs_name_the_problem(kwargs: dict, needle: str) -> None:
    base = dict(frames=4, size=32, tubelet=2, patch=16)
    with pytest.raises(ConfigError, match="invalid input spec") as info:
        InputSpec(**(base | kwargs))
    assert any(needle in p for p in info.value.problems), info.value.problems


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        InputSpec(frames=5, size=40, tubelet=2, patch=16, mean=(0.5,))
    assert len(info.value.problems) == 3


def test_feature_grid_sets_the_grid_of_a_backbone_without_patches() -> None:
    spec = InputSpec(frames=4, size=48, tubelet=2, patch=32, feature_grid=(2, 2))  # 48 px, stride 32: ceil -> 2
    assert spec.grid == (2, 2, 2) and spec.num_tokens == 8


def test_dict_round_trip_is_strict() -> None:
    spec = InputSpec(frames=4, size=48, tubelet=2, patch=32, feature_grid=(2, 2), mean=(0.5, 0.5, 0.5))
    data = json.loads(json.dumps(spec.to_dict()))
    assert InputSpec.from_dict(data) == spec
    with pytest.raises(ConfigError, match="did you mean 'frames'"):
        InputSpec.from_dict(data | {"frame": 4})


@pytest.mark.parametrize(
    ("T", "H", "frames", "size"), [(16, 64, 4, 32), (16, 64, 16, 64), (8, 48, 4, 48), (6, 32, 2, 16)]
)
def test_adapt_is_bit_identical_to_the_distill_loop(T: int, H: int, frames: int, size: int) -> None:
    clip = torch.randn(2, 3, T, H, H)
    spec = InputSpec(frames=frames, size=size, tubelet=2, patch=16)
    out = spec.adapt(clip)
    assert out.shape == spec.shape(2) and out.is_contiguous()
    assert torch.equal(out, _reference_adapt(clip, frames, size))


def test_adapt_takes_every_nth_frame() -> None:
    clip = torch.arange(8.0).reshape(1, 1, 8, 1, 1).expand(1, 3, 8, 16, 16)
    out = InputSpec(frames=4, size=16, tubelet=2, patch=16).adapt(clip)
    assert out[0, 0, :, 0, 0].tolist() == [0.0, 2.0, 4.0, 6.0]


def test_adapt_refuses_frames_that_do_not_divide() -> None:
    with pytest.raises(ConfigError, match="takes 4 frames, which do not divide the clip's 6") as info:
        InputSpec(frames=4, size=32, tubelet=2, patch=16).adapt(torch.randn(1, 3, 6, 32, 32))
    assert "multiple of 4 frames" in info.value.hint and "1, 2, 3, 6" in info.value.hint


def test_vit_student_exposes_its_spec() -> None:
    enc = create_student("vit_tiny", frames=4, size=32, depth=1)
    spec = enc.input_spec
    assert (spec.frames, spec.size, spec.tubelet, spec.patch, spec.channels) == (4, 32, 2, 16, 3)
    assert (spec.mean, spec.std) == (enc.arch.mean, enc.arch.std)
    assert spec.grid == enc.grid and spec.num_tokens == enc.arch.num_patches
    (x,) = enc.example_inputs(2)
    assert torch.equal(x, spec.example_inputs(2)[0])
    with torch.no_grad():
        assert enc(x).shape == (2, spec.num_tokens, enc.embed_dim)


def test_timm_student_spec_uses_stride_and_feature_grid() -> None:
    enc = create_student("resnet18", frames=4, size=64)
    spec = enc.input_spec
    assert spec.patch == enc.arch.stride == 32
    assert spec.grid == enc.grid == enc.arch.grid
    (x,) = enc.example_inputs(1)
    assert torch.equal(x, spec.example_inputs(1)[0])
    with torch.no_grad():
        assert enc(x).shape[1] == spec.num_tokens


def test_loaded_model_exposes_its_encoder_spec() -> None:
    model = load_vjepa(V1)
    assert model.input_spec == model.encoder.input_spec
    assert (model.input_spec.frames, model.input_spec.size, model.input_spec.grid) == (4, 48, (2, 3, 3))
