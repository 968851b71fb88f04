"""The JEPA loss and its options: V-JEPA's L1 mean by default, its `loss_exp`, and a motion-weighted mean where tokens
over what moves weigh more (a still clip and weight 0 leave the plain mean). The options are checked and, at their
defaults, leave the key of teachers pretrained before them unchanged."""

import pytest
import torch

from teacher.config import load_config
from teacher.train import jepa_loss, motion_weights
from vjepa_edge.config import ConfigError


def _moving_square(frames: int = 8, size: int = 32) -> torch.Tensor:
    """One clip [1, 3, T, H, W]: a static random background and a bright 4 px square moving right along row 2 of a
    4x4 grid of 8 px patches (rows 16-19), one pixel a frame from column 2."""
    g = torch.Generator().manual_seed(0)
    clip = torch.rand(1, 3, 1, size, size, generator=g).expand(1, 3, frames, size, size).clone()
    for t in range(frames):
        clip[:, :, t, 16:20, 2 + t : 6 + t] = 3.0
    return clip


def test_tokens_where_something_moves_weigh_more():
    clip = _moving_square()
    w = motion_weights(clip, tubelet=2, patch=8, weight=1.0).view(4, 4, 4)  # (T', rows, columns)
    moving = torch.zeros(4, 4, 4, dtype=torch.bool)
    # Frame t differs from t - 1 in columns t + 1 and t + 5: patch column 0 in the first tubelet (frames 0-1, the
    # first repeating the second's difference), columns 0 and 1 from frame 3 on.
    moving[:1, 2, 0] = True
    moving[1:, 2, :2] = True
    assert (w[~moving] == 0).all()  # a static background costs nothing at weight 1
    assert (w[moving] > 0).all()
    torch.testing.assert_close(w.mean(), torch.tensor(1.0))  # a weighted mean keeps the loss's scale
    half = motion_weights(clip, tubelet=2, patch=8, weight=0.5).view(4, 4, 4)
    torch.testing.assert_close(half, 0.5 + 0.5 * w)

    still = clip[:, :, :1].expand_as(clip)
    torch.testing.assert_close(motion_weights(still, 2, 8, 1.0), torch.ones(1, 64))


def test_weighted_loss_is_the_plain_mean_under_equal_weights_and_follows_the_weights():
    g = torch.Generator().manual_seed(1)
    targets = torch.randn(2, 16, 8, generator=g)
    masks = [torch.tensor([[0, 1, 2], [3, 4, 5]]), torch.tensor([[6, 7, 8, 9], [10, 11, 12, 13]])]
    predictions = [torch.randn(2, m.shape[1], 8, generator=g) for m in masks]
    plain = jepa_loss(predictions, targets, masks)
    torch.testing.assert_close(jepa_loss(predictions, targets, masks, torch.full((2, 16), 3.0)), plain)
    # all the weight on one token of each mask: each mask's loss is that token's distance
    w = torch.zeros(2, 16)
    w[0, 0] = w[0, 6] = 1.0
    got = jepa_loss(predictions, targets, masks, w)
    first = (predictions[0][0, 0] - targets[0, 0]).abs().mean()
    second = (predictions[1][0, 0] - targets[0, 6]).abs().mean()
    expected = (first + second) / 2
    torch.testing.assert_close(got, expected)


def test_motion_weight_is_checked_and_keeps_the_default_key():
    c = load_config("teacher/configs/physics.toml")
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ConfigError) as e:
            c.replace(optim={"motion_weight": bad})
        assert "motion_weight" in str(e.value.problems)
    off = c.replace(optim={"motion_weight": 0.0})
    assert "motion_weight" not in off.key_data()["optim"]  # hashed as before the option existed
    assert off.digest() != c.replace(optim={"motion_weight": 0.5}).digest()


def test_loss_exp_is_vjepa_s_power_mean():
    g = torch.Generator().manual_seed(2)
    targets = torch.randn(2, 16, 8, generator=g)
    masks = [torch.tensor([[0, 1, 2], [3, 4, 5]])]
    predictions = [torch.randn(2, 3, 8, generator=g)]
    diff = predictions[0] - torch.stack([targets[0, :3], targets[1, 3:6]])
    torch.testing.assert_close(jepa_loss(predictions, targets, masks), diff.abs().mean())
    torch.testing.assert_close(jepa_loss(predictions, targets, masks, exp=2.0), diff.pow(2).mean() / 2)
    c = load_config("teacher/configs/physics.toml")
    with pytest.raises(ConfigError) as e:
        c.replace(optim={"loss_exp": 0.0})
    assert "loss_exp" in str(e.value.problems)
    assert "loss_exp" not in c.replace(optim={"loss_exp": 1.0}).key_data()["optim"]
    assert c.replace(optim={"loss_exp": 2.0}).digest() != c.digest()
