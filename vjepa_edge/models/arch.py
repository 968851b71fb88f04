"""Architecture records of V-JEPA encoders and predictors, and the table of published ViT sizes.

An architecture is a frozen, keyword-only dataclass that validates itself and round-trips through a dict,
so it can be stored next to the weights (our checkpoint format) and inferred from the tensors of an
official checkpoint (`vjepa_edge.models.infer`).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from vjepa_edge.errors import ConfigError
from vjepa_edge.registry import Registry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

PosKind = Literal["sincos", "rope"]
Layout = Literal["NCHW", "NHWC", "NLC"]
Version = Literal["vjepa1", "vjepa2"]
SCHEMA_VERSION = 1


@dataclass(frozen=True, kw_only=True, slots=True)
class ViTSize:
    """A named ViT size. `frames`/`size` are the input used when a file does not record its own."""

    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float
    frames: int
    size: int
    note: str = ""

    @property
    def mlp_hidden(self) -> int:
        return int(self.embed_dim * self.mlp_ratio)


VIT_SIZES: Registry[ViTSize] = Registry("ViT size")
# vit_pico is the size of the golden test fixtures (4 frames at 48 px); the rest are V-JEPA's published sizes.
VIT_SIZES.register(
    "vit_pico",
    ViTSize(
        embed_dim=48, depth=2, num_heads=3, mlp_ratio=4.0, frames=4, size=48, note="test size of the golden fixtures"
    ),
)
VIT_SIZES.register("vit_tiny", ViTSize(embed_dim=192, depth=12, num_heads=3, mlp_ratio=4.0, frames=16, size=224))
VIT_SIZES.register("vit_small", ViTSize(embed_dim=384, depth=12, num_heads=6, mlp_ratio=4.0, frames=16, size=224))
VIT_SIZES.register("vit_base", ViTSize(embed_dim=768, depth=12, num_heads=12, mlp_ratio=4.0, frames=16, size=224))
# Released V-JEPA 2 models take 64 frames at 256 px (V-JEPA 1 files record their grid in pos_embed).
VIT_SIZES.register("vit_large", ViTSize(embed_dim=1024, depth=24, num_heads=16, mlp_ratio=4.0, frames=64, size=256))
VIT_SIZES.register("vit_huge", ViTSize(embed_dim=1280, depth=32, num_heads=16, mlp_ratio=4.0, frames=64, size=256))
# V-JEPA 2's ViT-g is `vit_giant_xformers`: 22 heads of 64 channels (the older `vit_giant` had 16).
VIT_SIZES.register("vit_giant", ViTSize(embed_dim=1408, depth=40, num_heads=22, mlp_ratio=48 / 11, frames=64, size=256))
VIT_SIZES.register(
    "vit_gigantic", ViTSize(embed_dim=1664, depth=48, num_heads=26, mlp_ratio=64 / 13, frames=64, size=256)
)
# The V-JEPA 2 predictor is 384 wide with 12 heads; V-JEPA 1's predictor uses the encoder's head count.
VJEPA2_PREDICTOR_HEADS = {384: 12}


def size_for_width(width: int) -> tuple[str, ViTSize] | None:
    """The registered size whose width is `width`, or None."""
    for name, size in VIT_SIZES.items():
        if size.embed_dim == width:
            return name, size
    return None


A = TypeVar("A", bound="_Record")


class _Record:
    """Strict dict round-trip shared by the architecture records."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, _Record):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls: type[A], data: dict[str, Any]) -> A:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - names)
        if unknown:
            hints = []
            for k in unknown:
                close = difflib.get_close_matches(k, names, n=1)
                hints.append(f"{k!r} (did you mean {close[0]!r}?)" if close else repr(k))
            raise ConfigError(f"unknown keys in {cls.__name__}: {', '.join(hints)}")
        kwargs = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name not in data:
                continue
            value = data[f.name]
            sub = _NESTED.get((cls.__name__, f.name))
            if sub is not None and isinstance(value, dict):
                value = sub(value)
            elif isinstance(value, list):
                value = tuple(value)
            kwargs[f.name] = value
        try:
            return cls(**kwargs)
        except TypeError as e:  # a missing required key
            raise ConfigError(f"invalid {cls.__name__} record: {e}") from None


def _check(problems: list[str]) -> None:
    if problems:
        raise ConfigError("invalid architecture", problems=problems)


@dataclass(frozen=True, kw_only=True, slots=True)
class EncoderArch(_Record):
    """A video ViT encoder: tubelet embedding, pre-norm blocks, final LayerNorm; no CLS token."""

    embed_dim: int
    depth: int
    num_heads: int
    mlp_hidden: int
    patch_size: int = 16
    tubelet_size: int = 2
    in_chans: int = 3
    pos: PosKind = "rope"
    uniform_power: bool = True
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    num_frames: int = 16
    img_size: int = 224
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def __post_init__(self) -> None:
        p: list[str] = []
        for name in (
            "embed_dim",
            "depth",
            "num_heads",
            "mlp_hidden",
            "patch_size",
            "tubelet_size",
            "in_chans",
            "num_frames",
            "img_size",
        ):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                p.append(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if p:
            _check(p)
        if self.embed_dim % self.num_heads:
            p.append(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        elif (self.embed_dim // self.num_heads) % 2:
            p.append(f"head dim {self.embed_dim // self.num_heads} must be even (RoPE rotates channel pairs)")
        if self.pos not in ("sincos", "rope"):
            p.append(f"pos must be 'sincos' or 'rope', got {self.pos!r}")
        if self.num_frames % self.tubelet_size:
            p.append(f"num_frames {self.num_frames} is not a multiple of tubelet_size {self.tubelet_size}")
        if self.img_size % self.patch_size:
            p.append(f"img_size {self.img_size} is not a multiple of patch_size {self.patch_size}")
        if len(self.mean) != self.in_chans or len(self.std) != self.in_chans:
            p.append(f"mean and std need {self.in_chans} values")
        _check(p)

    @classmethod
    def from_size(cls, name: str, **overrides: Any) -> EncoderArch:
        s = VIT_SIZES.get(name)
        base = dict(
            embed_dim=s.embed_dim,
            depth=s.depth,
            num_heads=s.num_heads,
            mlp_hidden=s.mlp_hidden,
            num_frames=s.frames,
            img_size=s.size,
        )
        return cls(**(base | overrides))

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def grid(self) -> tuple[int, int, int]:
        """Token grid (T', H', W') of the configured input."""
        g = self.img_size // self.patch_size
        return self.num_frames // self.tubelet_size, g, g

    @property
    def num_patches(self) -> int:
        t, h, w = self.grid
        return t * h * w


@dataclass(frozen=True, kw_only=True, slots=True)
class TimmEncoderArch(_Record):
    """A timm image backbone run on tubelets: `tubelet_size` frames stacked on channels, a temporal mixer, a norm.

    `embed_dim`, `layout`, `feature_grid` and `dropped` are measured from the backbone when the student is
    created (`vjepa_edge.models.students.timm_arch`) and stored so that loading needs no dry run.
    """

    kind: Literal["timm"] = "timm"  # tells this record from an EncoderArch in a stored VJEPAArch
    model_name: str
    embed_dim: int
    layout: Layout = "NCHW"  # what the backbone's forward_features returns
    feature_grid: tuple[int, ...]  # (h, w) of the feature map at img_size
    num_prefix_tokens: int = 0  # class/register tokens that an NLC backbone puts first; dropped
    dropped: tuple[str, ...] = ()  # backbone modules forward_features never uses (heads), replaced by Identity
    tubelet_size: int = 2
    in_chans: int = 3
    norm_eps: float = 1e-6
    num_frames: int = 16
    img_size: int = 64
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def __post_init__(self) -> None:
        p: list[str] = []
        if self.kind != "timm":
            p.append(f"kind must be 'timm', got {self.kind!r}")
        if not isinstance(self.model_name, str) or not self.model_name:
            p.append(f"model_name must be a timm model name, got {self.model_name!r}")
        for name in ("embed_dim", "tubelet_size", "in_chans", "num_frames", "img_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                p.append(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not isinstance(self.num_prefix_tokens, int) or self.num_prefix_tokens < 0:
            p.append(f"num_prefix_tokens must be a non-negative integer, got {self.num_prefix_tokens!r}")
        if self.layout not in ("NCHW", "NHWC", "NLC"):
            p.append(f"layout must be 'NCHW', 'NHWC' or 'NLC', got {self.layout!r}")
        if len(self.feature_grid) != 2 or not all(isinstance(g, int) and g > 0 for g in self.feature_grid):
            p.append(f"feature_grid must be two positive integers (h, w), got {self.feature_grid!r}")
        if p:
            _check(p)
        if self.num_frames % self.tubelet_size:
            p.append(f"num_frames {self.num_frames} is not a multiple of tubelet_size {self.tubelet_size}")
        if len(self.mean) != self.in_chans or len(self.std) != self.in_chans:
            p.append(f"mean and std need {self.in_chans} values")
        _check(p)

    @property
    def grid(self) -> tuple[int, int, int]:
        """Token grid (T', H', W') of the configured input."""
        h, w = self.feature_grid
        return self.num_frames // self.tubelet_size, h, w

    @property
    def num_patches(self) -> int:
        t, h, w = self.grid
        return t * h * w

    @property
    def stride(self) -> int:
        """Spatial reduction of the backbone (32 for most CNNs), as measured at img_size."""
        return max(1, round(self.img_size / self.feature_grid[0]))


AnyEncoderArch = EncoderArch | TimmEncoderArch


def encoder_from_dict(data: dict[str, Any]) -> AnyEncoderArch:
    """The encoder record of a stored VJEPAArch: `kind: "timm"` is a TimmEncoderArch, no `kind` an EncoderArch."""
    kind = data.get("kind")
    if kind is None:
        return EncoderArch.from_dict(data)
    if kind == "timm":
        return TimmEncoderArch.from_dict(data)
    raise ConfigError(f"unknown encoder kind {kind!r} (known: 'timm', or no kind for a ViT encoder)")


@dataclass(frozen=True, kw_only=True, slots=True)
class PredictorArch(_Record):
    """V-JEPA's predictor: project to `pred_dim`, add mask tokens at the targets, blocks, norm, project back."""

    embed_dim: int
    pred_dim: int
    depth: int
    num_heads: int
    mlp_hidden: int
    num_mask_tokens: int
    pos: PosKind = "rope"
    uniform_power: bool = True
    sort_tokens: bool = True  # V-JEPA 2 sorts context+target tokens by position before the blocks
    qkv_bias: bool = True
    norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        p: list[str] = []
        for name in ("embed_dim", "pred_dim", "depth", "num_heads", "mlp_hidden", "num_mask_tokens"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                p.append(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not p and self.pred_dim % self.num_heads:
            p.append(f"pred_dim {self.pred_dim} is not divisible by num_heads {self.num_heads}")
        if self.pos not in ("sincos", "rope"):
            p.append(f"pos must be 'sincos' or 'rope', got {self.pos!r}")
        _check(p)


@dataclass(frozen=True, kw_only=True, slots=True)
class VJEPAArch(_Record):
    """Everything needed to rebuild a V-JEPA model from weights."""

    version: Version
    encoder: AnyEncoderArch
    predictor: PredictorArch | None = None
    target_encoder: bool = False
    schema_version: int = SCHEMA_VERSION
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        p: list[str] = []
        if self.version not in ("vjepa1", "vjepa2"):
            p.append(f"version must be 'vjepa1' or 'vjepa2', got {self.version!r}")
        if self.schema_version != SCHEMA_VERSION:
            p.append(f"schema_version {self.schema_version} is not supported (this vjepa-edge reads {SCHEMA_VERSION})")
        if not isinstance(self.encoder, EncoderArch | TimmEncoderArch):
            p.append(f"encoder must be an EncoderArch or a TimmEncoderArch, got {type(self.encoder).__name__}")
            _check(p)
        if self.predictor is not None and self.predictor.embed_dim != self.encoder.embed_dim:
            p.append(f"predictor embed_dim {self.predictor.embed_dim} != encoder embed_dim {self.encoder.embed_dim}")
        _check(p)


_NESTED: dict[tuple[str, str], Callable[[dict[str, Any]], _Record]] = {
    ("VJEPAArch", "encoder"): encoder_from_dict,
    ("VJEPAArch", "predictor"): PredictorArch.from_dict,
}
