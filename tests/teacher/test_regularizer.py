"""The VICReg-style terms against dimensional collapse: large on collapsed tokens, near zero on whitened ones, and
off by default without changing the key of teachers pretrained before they existed."""

import torch

from teacher.config import load_config
from teacher.train import variance_covariance


def test_terms_separate_collapsed_from_spread_tokens():
    g = torch.Generator().manual_seed(0)
    spread = torch.randn(4, 256, 32, generator=g)  # unit variance, uncorrelated channels
    collapsed = torch.randn(4, 256, 1, generator=g).expand(4, 256, 32) * 0.1  # one direction, small
    v_spread, c_spread = variance_covariance([spread])
    v_collapsed, c_collapsed = variance_covariance([collapsed])
    assert v_spread < 0.05 < 0.8 < v_collapsed
    _, c_one_direction = variance_covariance([collapsed * 10])  # unit variance, every channel the same direction
    assert c_spread < 0.1 and c_one_direction > 10 * c_spread
    # gradients push the collapsed tokens apart
    x = collapsed.clone().requires_grad_(True)
    v, c = variance_covariance([x])
    (v + c).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_default_config_keeps_its_key_and_weights_change_it():
    c = load_config("teacher/configs/physics.toml")
    assert c.optim.variance_weight == 0 and c.optim.covariance_weight == 0
    on = c.replace(optim={"variance_weight": 1.0})
    assert on.digest() != c.digest()
    off = c.key_data()["optim"]
    assert "variance_weight" not in off and "covariance_weight" not in off  # hashed as before the terms existed
