"""`loss.causal_fraction`: masked distillation steps that hide the second half of the clip (the future to predict)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.distill.conftest import tiny_recipe
from vjepa_edge.distill.losses import causal_masks
from vjepa_edge.errors import ConfigError


def test_causal_masks_show_the_first_half_and_hide_the_second() -> None:
    visible, hidden = causal_masks(3, (8, 2, 2))
    assert visible.shape == (3, 16) and hidden.shape == (3, 16)
    assert torch.equal(visible[1], torch.arange(16)) and torch.equal(hidden[2], torch.arange(16, 32))


@pytest.mark.parametrize("bad", [-0.1, 1.5, True, "half"])
def test_causal_fraction_is_a_fraction(bad, tmp_path) -> None:
    with pytest.raises(ConfigError, match="causal_fraction"):
        tiny_recipe(tmp_path / "t.safetensors", tmp_path / "cache", loss={"kind": "masked", "causal_fraction": bad})


def test_a_zero_causal_fraction_keeps_the_digest_of_runs_made_before_it() -> None:
    def digest(**loss) -> str:
        return tiny_recipe(Path("/t.safetensors"), Path("/c"), loss={"kind": "masked", **loss}).digest()

    # 99076b9805e3: this recipe's digest computed by the code before the field existed (commit 9c2bc88^), so runs
    # started then still resume
    assert digest() == digest(causal_fraction=0.0) == "99076b9805e3" != digest(causal_fraction=0.25)
