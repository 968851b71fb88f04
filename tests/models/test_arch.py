"""Architecture records, the size table, the registry and the key maps."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import HF
from vjepa_edge.errors import ArchitectureError, ConfigError, RegistryError
from vjepa_edge.models import VIT_SIZES, EncoderArch, PredictorArch, VJEPAArch
from vjepa_edge.models.keymaps import (
    hf_vjepa2_to_native,
    strip_wrapper_prefixes,
    tubelet_conv_to_linear,
    tubelet_linear_to_conv,
)
from vjepa_edge.models.vjepa import VJEPA
from vjepa_edge.registry import Registry

PUBLISHED = {  # name: (width, depth, heads, mlp hidden) from the V-JEPA papers and code
    "vit_tiny": (192, 12, 3, 768),
    "vit_small": (384, 12, 6, 1536),
    "vit_base": (768, 12, 12, 3072),
    "vit_large": (1024, 24, 16, 4096),
    "vit_huge": (1280, 32, 16, 5120),
    "vit_giant": (1408, 40, 22, 6144),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_sizes(name: str) -> None:
    s = VIT_SIZES.get(name)
    assert (s.embed_dim, s.depth, s.num_heads, s.mlp_hidden) == PUBLISHED[name]


def test_encoder_param_counts_match_published_figures() -> None:
    """vit_large is 303.9 M and vit_giant 1012 M encoder parameters (reference notes)."""
    with torch.device("meta"):
        large = VJEPA(VJEPAArch(version="vjepa2", encoder=EncoderArch.from_size("vit_large")))
        giant = VJEPA(VJEPAArch(version="vjepa2", encoder=EncoderArch.from_size("vit_giant")))
    assert sum(p.numel() for p in large.parameters()) / 1e6 == pytest.approx(303.9, abs=0.3)
    assert sum(p.numel() for p in giant.parameters()) / 1e6 == pytest.approx(1012, abs=2)


@pytest.mark.parametrize("version", ["vjepa1", "vjepa2"])
def test_arch_round_trips_through_dict(version: str) -> None:
    pos = "sincos" if version == "vjepa1" else "rope"
    arch = VJEPAArch(
        version=version,
        encoder=EncoderArch.from_size("vit_small", pos=pos),
        predictor=PredictorArch(
            embed_dim=384, pred_dim=384, depth=12, num_heads=12, mlp_hidden=1536, num_mask_tokens=2, pos=pos
        ),
        target_encoder=True,
    )
    assert VJEPAArch.from_dict(arch.to_dict()) == arch


def test_unknown_key_suggests_the_right_one() -> None:
    with pytest.raises(ConfigError, match="did you mean 'embed_dim'"):
        EncoderArch.from_dict({"embed_dimm": 3})


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        EncoderArch(embed_dim=50, depth=2, num_heads=3, mlp_hidden=8, num_frames=5, img_size=50, pos="alibi")
    assert len(info.value.problems) == 4  # heads, pos, frames vs tubelet, size vs patch


def test_registry_suggests_close_names() -> None:
    with pytest.raises(RegistryError, match="vit_small"):
        VIT_SIZES.get("vit_smal")
    reg: Registry[int] = Registry("thing")
    reg.register("a", 1)
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("a", 2)
    assert VIT_SIZES.names("vit_g*") == ["vit_giant", "vit_gigantic"]


def test_strip_wrapper_prefixes() -> None:
    sd = {"module.backbone.blocks.0.w": 1, "_orig_mod.norm.w": 2, "pos_embed": 3}
    assert strip_wrapper_prefixes(sd) == {"blocks.0.w": 1, "norm.w": 2, "pos_embed": 3}
    with pytest.raises(ArchitectureError, match="two tensors"):
        strip_wrapper_prefixes({"module.a": 1, "a": 2})


def test_tubelet_weight_conversion_round_trips() -> None:
    w = torch.randn(8, 3, 2, 4, 4)
    lin = tubelet_conv_to_linear({"patch_embed.proj.weight": w})["patch_embed.proj.weight"]
    assert lin.shape == (8, 96) and torch.equal(lin[:, :16], w[:, 0, 0].reshape(8, 16))
    back = tubelet_linear_to_conv({"patch_embed.proj.weight": lin}, in_chans=3, tubelet=2, patch=4)
    assert torch.equal(back["patch_embed.proj.weight"], w)


def test_hf_keys_map_to_native_with_qkv_in_query_key_value_order() -> None:
    q, k, v = torch.full((4, 4), 1.0), torch.full((4, 4), 2.0), torch.full((4, 4), 3.0)
    sd = {
        "encoder.layer.0.attention.query.weight": q,
        "encoder.layer.0.attention.key.weight": k,
        "encoder.layer.0.attention.value.weight": v,
        "encoder.layer.0.mlp.fc1.bias": torch.zeros(2),
        "predictor.embeddings.mask_tokens": torch.randn(3, 1, 1, 4),
        "pooler.query_tokens": torch.zeros(1),
    }
    parts, unused = hf_vjepa2_to_native(sd)
    qkv = parts["encoder"]["blocks.0.attn.qkv.weight"]
    assert torch.equal(qkv, torch.cat([q, k, v]))
    assert sorted(parts["predictor"]) == ["mask_tokens.0", "mask_tokens.1", "mask_tokens.2"]
    assert unused == ["pooler.query_tokens"]


def test_hf_fixture_maps_every_tensor() -> None:
    from safetensors.torch import load_file

    parts, unused = hf_vjepa2_to_native(load_file(str(HF / "model.safetensors")))
    assert unused == []
    assert "blocks.1.attn.qkv.bias" in parts["encoder"] and "predictor_blocks.1.attn.qkv.weight" in parts["predictor"]
