"""Count the cost of every model behind a published latency figure and write vjepa_edge/profile/published_costs.toml.

The estimator (`vjepa_edge.profile.estimate`) is calibrated on the latency figures of reference/edge.md 5.1 and 5.2
(`vjepa_edge/profile/published.toml`). Each figure needs the FLOPs and bytes of its model; this script builds each
model from timm / torchvision / this project on the meta device (no weights, no compute) and counts it with
`vjepa_edge.profile.cost.model_cost`, so the library never instantiates them at run time. Run it after changing a
builder or the cost counter; tests/profile/test_estimate.py recomputes two cheap entries against the file.

Approximations (also in published.toml's notes):
- EfficientFormer (12.3 M) = timm efficientformer_l1; LeViT (7.8 M) = levit_128s (facebook/levit-128S in AI Hub);
  MobileViT (5.57 M) = mobilevit_s at 256 (apple/mobilevit-small); EfficientViT-B2 = MIT efficientvit_b2 at 224;
  BEiT-B = beit_base_patch16_224; ConvNeXt-T = convnext_tiny; MobileNet-v2 = torchvision mobilenet_v2.
- OpenAI-CLIP (150 M): AI Hub profiles image and text encoders in one graph (ai-hub-models openai_clip/model.py):
  timm vit_base_patch16_clip_224 plus a 12-layer, 512-wide, 8-head transformer over 77 tokens (the causal mask
  changes no FLOPs, so plain blocks stand in for it).
- Depth-Anything-V2-Small: DINOv2 ViT-S/14 at 518 (timm vit_small_patch14_dinov2) plus a DPT head written here from
  the paper's configuration (features 64, out channels 48/96/192/384); layer details of the head are approximate.
- MobileSAM encoder: timm TinyViT-5M at 1024 with window sizes 7/7/14/7, the last downsampling's stride set to 1
  (MobileSAM keeps a 64x64 map) and SAM's neck (1x1 and 3x3 convs to 256 with LayerNorm2d); no classifier.
- VideoMAE-B 16x224: this project's video ViT-B (tubelet 2x16x16, 1568 tokens) with sin-cos positions.
- FastViT variants and MobileCLIP-S0..S2 image encoders (timm fastvit_mci0..2) are counted after timm's
  reparameterisation (the inference form the latencies were measured on); MobileCLIP-B image = ViT-B/16 at 224;
  MobileCLIP S1/S2/B text encoders share one 12-layer, 512-wide transformer over 77 tokens: counted once.

Usage: uv run python bench/estimator_calibration.py [--only KEY,...] [--check]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vjepa_edge.profile.cost import Cost, model_cost  # noqa: E402
from vjepa_edge.profile.published import COSTS_FILE, load_costs, load_figures  # noqa: E402

META = torch.device("meta")


def _img(size: int, h: int | None = None) -> tuple[torch.Tensor]:
    return (torch.empty(1, 3, h or size, size, device=META),)


def _timm(name: str, size: int, **kw) -> tuple[nn.Module, tuple]:
    import timm

    with META:
        model = timm.create_model(name, pretrained=False, **kw)
    return model.eval(), _img(size)


def _reparam(name: str, size: int) -> tuple[nn.Module, tuple]:
    """A reparameterisable timm model in its inference form (fusing branches needs real weights: built on CPU)."""
    import timm
    from timm.utils.model import reparameterize_model

    model = reparameterize_model(timm.create_model(name, pretrained=False).eval())
    return model, _img(size)


def _tv(name: str, inputs: tuple[int, ...], **kw) -> tuple[nn.Module, tuple]:
    import torchvision

    with META:
        model = torchvision.models.get_model(name, weights=None, **kw)
    return model.eval(), (torch.empty(*inputs, device=META),)


class TextTransformer(nn.Module):
    """CLIP's text encoder shape: token + position embedding, `depth` pre-norm blocks, final norm and projection."""

    def __init__(self, width: int = 512, depth: int = 12, heads: int = 8, context: int = 77, vocab: int = 49408):
        super().__init__()
        from timm.models.vision_transformer import Block

        self.token = nn.Embedding(vocab, width)
        self.pos = nn.Parameter(torch.zeros(1, context, width))
        self.blocks = nn.Sequential(*[Block(width, heads, mlp_ratio=4.0, qkv_bias=True) for _ in range(depth)])
        self.norm = nn.LayerNorm(width)
        self.proj = nn.Linear(width, width, bias=False)

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.blocks(self.token(text) + self.pos))
        return self.proj(x[:, -1])  # the end-of-text token (its position does not change the count)


def _text() -> tuple[nn.Module, tuple]:
    with META:
        model = TextTransformer()
    return model.eval(), (torch.zeros(1, 77, dtype=torch.long, device=META),)


class ClipBoth(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        import timm

        self.image = timm.create_model("vit_base_patch16_clip_224", pretrained=False, num_classes=512)
        self.text = TextTransformer()

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        a, b = self.image(image), self.text(text)
        return a @ b.t()


def _clip() -> tuple[nn.Module, tuple]:
    with META:
        model = ClipBoth()
    return model.eval(), (*_img(224), torch.zeros(1, 77, dtype=torch.long, device=META))


class ResidualConvUnit(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(torch.relu(self.conv1(torch.relu(x))))


class Fusion(nn.Module):
    def __init__(self, c: int, first: bool) -> None:
        super().__init__()
        self.rcu1 = None if first else ResidualConvUnit(c)
        self.rcu2 = ResidualConvUnit(c)
        self.out = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None, size=None) -> torch.Tensor:
        if skip is not None:
            x = x + self.rcu1(skip)
        x = self.rcu2(x)
        x = nn.functional.interpolate(x, size=size, scale_factor=None if size else 2, mode="bilinear")
        return self.out(x)


class DepthAnythingSmall(nn.Module):
    """DINOv2 ViT-S/14 + DPT head (Depth Anything V2 Small: features 64, out channels 48, 96, 192, 384)."""

    def __init__(self, size: int = 518) -> None:
        super().__init__()
        import timm

        self.size, self.grid = size, size // 14
        self.backbone = timm.create_model("vit_small_patch14_dinov2", pretrained=False, img_size=size, num_classes=0)
        outs, f = (48, 96, 192, 384), 64
        self.project = nn.ModuleList(nn.Conv2d(384, c, 1) for c in outs)
        self.resize = nn.ModuleList(
            [
                nn.ConvTranspose2d(48, 48, 4, stride=4),
                nn.ConvTranspose2d(96, 96, 2, stride=2),
                nn.Identity(),
                nn.Conv2d(384, 384, 3, stride=2, padding=1),
            ]
        )
        self.rn = nn.ModuleList(nn.Conv2d(c, f, 3, padding=1, bias=False) for c in outs)
        self.fuse = nn.ModuleList(Fusion(f, first=i == 3) for i in range(4))
        self.head1 = nn.Conv2d(f, f // 2, 3, padding=1)
        self.head2 = nn.Sequential(nn.Conv2d(f // 2, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 1, 1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.grid
        feats = self.backbone.get_intermediate_layers(x, n=(2, 5, 8, 11))  # the 4 layers DPT reads for ViT-S
        maps = []
        for i, t in enumerate(feats):
            m = t.transpose(1, 2).reshape(1, 384, g, g)
            maps.append(self.rn[i](self.resize[i](self.project[i](m))))
        y = self.fuse[3](maps[3], size=maps[2].shape[-2:])
        y = self.fuse[2](y, maps[2], size=maps[1].shape[-2:])
        y = self.fuse[1](y, maps[1], size=maps[0].shape[-2:])
        y = self.fuse[0](y, maps[0])
        y = nn.functional.interpolate(self.head1(y), size=(self.size, self.size), mode="bilinear")
        return self.head2(y)


def _depth_anything() -> tuple[nn.Module, tuple]:
    with META:
        model = DepthAnythingSmall()
    return model.eval(), _img(518)


class LayerNorm2d(nn.LayerNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class MobileSamEncoder(nn.Module):
    """TinyViT-5M at 1024 (window sizes 7/7/14/7, last downsampling at stride 1) + SAM's neck to 256 channels."""

    def __init__(self) -> None:
        super().__init__()
        import timm

        self.trunk = timm.create_model("tiny_vit_5m_224", pretrained=False, window_sizes=(7, 7, 14, 7), num_classes=0)
        conv = self.trunk.stages[3].downsample.conv2.conv  # MobileSAM keeps the 64x64 map in the last stage
        conv.stride = (1, 1)
        self.neck = nn.Sequential(
            nn.Conv2d(320, 256, 1, bias=False), LayerNorm2d(256), nn.Conv2d(256, 256, 3, padding=1, bias=False)
        )
        self.norm = LayerNorm2d(256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.neck(self.trunk.forward_features(x)))


def _mobilesam() -> tuple[nn.Module, tuple]:
    with META:
        model = MobileSamEncoder()
    return model.eval(), _img(1024)


def _videomae() -> tuple[nn.Module, tuple]:
    from vjepa_edge.models.students import create_student

    with META:
        model = create_student("vit_base", frames=16, size=224, pos="sincos")
    return model.eval(), (torch.empty(1, 3, 16, 224, 224, device=META),)


BUILDERS: dict[str, Callable[[], tuple[nn.Module, tuple]]] = {
    "vit_b16": lambda: _tv("vit_b_16", (1, 3, 224, 224)),
    "beit_b16": lambda: _timm("beit_base_patch16_224", 224),
    "mobilevit_s": lambda: _timm("mobilevit_s", 256),
    "efficientformer_l1": lambda: _timm("efficientformer_l1", 224),
    "efficientformer_l3": lambda: _timm("efficientformer_l3", 224),
    "efficientformer_l7": lambda: _timm("efficientformer_l7", 224),
    "levit_128s": lambda: _timm("levit_128s", 224),
    "efficientvit_b2": lambda: _timm("efficientvit_b2", 224),
    "convnext_tiny": lambda: _timm("convnext_tiny", 224),
    "openai_clip": _clip,
    "depth_anything_v2_s": _depth_anything,
    "mobilesam_encoder": _mobilesam,
    "videomae_b": _videomae,
    "r2plus1d_18": lambda: _tv("r2plus1d_18", (1, 3, 16, 112, 112)),
    "mobilenet_v2": lambda: _tv("mobilenet_v2", (1, 3, 224, 224)),
    "mobilenet_v2_140": lambda: _timm("mobilenetv2_140", 224),
    "fastvit_t8": lambda: _reparam("fastvit_t8", 256),
    "fastvit_t12": lambda: _reparam("fastvit_t12", 256),
    "fastvit_s12": lambda: _reparam("fastvit_s12", 256),
    "fastvit_sa12": lambda: _reparam("fastvit_sa12", 256),
    "fastvit_sa24": lambda: _reparam("fastvit_sa24", 256),
    "fastvit_sa36": lambda: _reparam("fastvit_sa36", 256),
    "fastvit_ma36": lambda: _reparam("fastvit_ma36", 256),
    "mobileclip_s0_image": lambda: _reparam("fastvit_mci0", 256),
    "mobileclip_s1_image": lambda: _reparam("fastvit_mci1", 256),
    "mobileclip_s2_image": lambda: _reparam("fastvit_mci2", 256),
    "mobileclip_b_image": lambda: _timm("vit_base_patch16_224", 224),
    "mobileclip_text": _text,
    "mobilevitv2_100": lambda: _timm("mobilevitv2_100", 256),
    "dinov2_vits14_448": lambda: _timm("vit_small_patch14_dinov2", 448, img_size=448, num_classes=0),
}


def count(key: str) -> Cost:
    """The fp32 cost of published model `key` (bench and test share this)."""
    model, inputs = BUILDERS[key]()
    return model_cost(model, inputs, precision="fp32")


def _toml(costs: dict[str, Cost]) -> str:
    lines = [
        "# Generated by bench/estimator_calibration.py: the fp32 cost of every model behind a published latency figure",
        "# (published.toml), counted on the meta device with vjepa_edge.profile.cost.model_cost. Do not edit by hand.",
        "",
    ]
    for key, c in costs.items():
        lines += [
            f"[{key}]",
            f"dense_flops = {c.dense_flops:.0f}",
            f"attn_flops = {c.attn_flops:.0f}",
            f"weight_bytes = {c.weight_bytes:.0f}",
            f"activation_bytes = {c.activation_bytes:.0f}",
            f"tokens = {c.tokens}",
            f"params = {c.params}",
            f"ops = {c.ops}",
            "",
        ]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated model keys (default: every model)")
    ap.add_argument("--check", action="store_true", help="compare with the committed file instead of writing it")
    args = ap.parse_args()
    wanted = [k for k in args.only.split(",") if k] or list(BUILDERS)
    needed = {f.model for f in load_figures().figures}
    missing = sorted(needed - set(BUILDERS))
    if missing:
        print(f"no builder for: {', '.join(missing)}", file=sys.stderr)
        return 1
    costs: dict[str, Cost] = {}
    for key in wanted:
        t0 = time.perf_counter()
        costs[key] = count(key)
        c = costs[key]
        print(
            f"{key:22s} {c.params / 1e6:7.2f} M  dense {c.dense_flops / 1e9:8.2f} G  attn {c.attn_flops / 1e9:7.2f} G"
            f"  act {c.activation_bytes / 1e6:8.1f} MB  tokens {c.tokens:5d}  ops {c.ops:5d}"
            f"  ({time.perf_counter() - t0:.1f} s)"
        )
    if args.check:
        committed = load_costs()
        bad = [k for k, c in costs.items() if committed.get(k) != c]
        print("matches the committed file" if not bad else f"differs from the committed file: {', '.join(bad)}")
        return 1 if bad else 0
    if args.only:
        merged = load_costs()
        merged.update(costs)
        costs = {k: merged[k] for k in BUILDERS if k in merged}
    COSTS_FILE.write_text(_toml(costs))
    print(f"wrote {COSTS_FILE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
