"""Clip transforms: V-JEPA's random-resized crop and flip (one for the whole clip), eval centre crop, spec checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vjepa_edge.data.config import AugmentConfig, ClipSpec
from vjepa_edge.data.transforms import ClipTransform, sample_generator
from vjepa_edge.errors import ConfigError

H, W = 120, 160


def _coords(frames: int = 4) -> torch.Tensor:
    """Frames whose red channel is the column and green the row (scaled), blue the frame number."""
    ys, xs = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    f = torch.stack([xs * 255 // (W - 1), ys * 255 // (H - 1), torch.zeros_like(xs)], -1).to(torch.uint8)
    out = f[None].repeat(frames, 1, 1, 1)
    out[..., 2] = torch.arange(frames, dtype=torch.uint8)[:, None, None] * 40
    return out


def _pixels(clip: torch.Tensor, aug: AugmentConfig) -> torch.Tensor:
    """Undo the normalisation: [3, T, S, S] -> 0..255."""
    mean = torch.tensor(aug.mean).view(3, 1, 1, 1) * 255
    std = torch.tensor(aug.std).view(3, 1, 1, 1) * 255
    return clip * std + mean


def test_train_crop_is_one_box_within_the_scale_and_aspect_ranges():
    aug = AugmentConfig(hflip=0.0)
    t = ClipTransform(32, "train", aug)
    for i in range(30):
        clip, flipped = t(_coords(), sample_generator(0, 0, i))
        assert clip.shape == (3, 4, 32, 32) and not flipped
        px = _pixels(clip, aug)
        assert torch.allclose(px[:2, 0], px[:2, -1], atol=1e-3)  # the same crop in every frame
        assert torch.allclose(px[2, :, 0, 0], torch.arange(4.0) * 40, atol=1)  # frames kept in order
        # The crop's extent in source pixels, read back from the coordinates it shows.
        w = (px[0, 0, :, -1].mean() - px[0, 0, :, 0].mean()) / 255 * (W - 1) * 32 / 31
        h = (px[1, 0, -1, :].mean() - px[1, 0, 0, :].mean()) / 255 * (H - 1) * 32 / 31
        area, aspect = float(w * h) / (H * W), float(w / h)
        assert 0.3 - 0.05 <= area <= 1.0 + 0.02 and 0.75 - 0.08 <= aspect <= 1.35 + 0.08


def test_flip_mirrors_and_happens_about_half_the_time():
    aug = AugmentConfig(rrc_scale=(1.0, 1.0), rrc_ratio=(W / H, W / H))
    t = ClipTransform(32, "train", aug)
    flips = 0
    for i in range(40):
        clip, flipped = t(_coords(), sample_generator(1, 0, i))
        red = _pixels(clip, aug)[0, 0, 16]
        assert (red[0] > red[-1]) == flipped  # a flipped clip's columns run right to left
        flips += flipped
    assert 10 <= flips <= 30


def test_eval_is_a_centred_crop_and_deterministic():
    aug = AugmentConfig()
    t = ClipTransform(32, "eval", aug)
    a, flipped = t(_coords())
    assert not flipped and torch.equal(a, t(_coords())[0])
    px = _pixels(a, aug)
    centre_x = px[0, 0, :, 15:17].mean() / 255 * (W - 1)
    centre_y = px[1, 0, 15:17, :].mean() / 255 * (H - 1)
    assert abs(centre_x - (W - 1) / 2) < 2.5 and abs(centre_y - (H - 1) / 2) < 2.5
    # short side resized to 32 * 256 / 224, then 32 px cut from the middle: 7/8 of the height remains
    span = (px[1, 0, -1, :].mean() - px[1, 0, 0, :].mean()) / 255 * (H - 1)
    assert abs(float(span) - H * 224 / 256 * 31 / 32) < 3


def test_same_generator_seed_same_clip():
    t = ClipTransform(24, "train")
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 50, 70, 3), dtype=np.uint8))
    assert torch.equal(t(x, sample_generator(5, 2, 7))[0], t(x, sample_generator(5, 2, 7))[0])
    assert not torch.equal(t(x, sample_generator(5, 2, 7))[0], t(x, sample_generator(5, 3, 7))[0])


def test_clip_spec_and_augment_report_every_problem():
    with pytest.raises(ConfigError) as e:
        ClipSpec(frames=0, size=4, frame_step=2, fps=4.0)
    assert len(e.value.problems) == 3
    with pytest.raises(ConfigError) as e:
        AugmentConfig(rrc_scale=(0.9, 0.2), hflip=2.0)
    assert len(e.value.problems) == 2
    assert ClipSpec(frame_step=None, fps=4).step_for(29.97) == 7  # V-JEPA 2: ceil(29.97) // 4
