"""The regression target: V-JEPA's layer-normed output by default, data2vec's average of the last blocks when asked;
the option is checked against the encoder's depth and leaves the key of teachers pretrained before it unchanged."""

import pytest
import torch
import torch.nn.functional as F

from teacher.config import load_config
from teacher.train import regression_targets
from tests.teacher.conftest import tiny_config
from vjepa_edge.config import ConfigError
from vjepa_edge.models.vjepa import VJEPA


def _hidden_states(encoder, clip):
    """Every block's output, computed by hand (no hooks)."""
    tokens = encoder.patch_embed(clip)
    rope = encoder.rope(encoder.token_grid(clip), None, clip.device)
    out = []
    for block in encoder.blocks:
        tokens = block(tokens, rope)
        out.append(tokens)
    return out


@torch.no_grad()
def test_targets_are_the_output_or_the_average_of_the_last_blocks():
    config = tiny_config(model={"depth": 3})
    torch.manual_seed(0)
    encoder = VJEPA(config.arch()).target_encoder.eval()
    spec = encoder.input_spec
    clip = torch.randn(2, 3, spec.frames, spec.size, spec.size)
    D = encoder.embed_dim
    hidden = _hidden_states(encoder, clip)
    last = F.layer_norm(encoder.norm(hidden[-1]), (D,))

    torch.testing.assert_close(regression_targets(encoder, clip), F.layer_norm(encoder(clip), (D,)))
    torch.testing.assert_close(regression_targets(encoder, clip, 1), last)
    for k in (2, 3):
        expected = torch.stack([F.layer_norm(h, (D,)) for h in hidden[-k:-1]] + [last]).mean(0)
        got = regression_targets(encoder, clip, k)
        torch.testing.assert_close(got, F.layer_norm(expected, (D,)))
        assert not torch.allclose(got, last, atol=1e-3)
    assert all(not b._forward_hooks for b in encoder.blocks)  # the hooks are gone


def test_target_layers_is_checked_and_keeps_the_default_key():
    c = load_config("teacher/configs/physics.toml")
    assert c.optim.target_layers >= 1
    with pytest.raises(ConfigError) as e:
        c.replace(optim={"target_layers": c.arch().encoder.depth + 1})
    assert "target_layers" in str(e.value.problems)
    with pytest.raises(ConfigError):
        c.replace(optim={"target_layers": 0})
    one = c.replace(optim={"target_layers": 1})
    assert "target_layers" not in one.key_data()["optim"]  # hashed as before the option existed
    assert one.digest() != c.replace(optim={"target_layers": 2}).digest()
