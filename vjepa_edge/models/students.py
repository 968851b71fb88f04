"""The student registry: small video encoders to distill a V-JEPA teacher into.

Every student has one contract: `forward(x [B, 3, T, H, W], normalised) -> [B, N, D]` tokens in (t, h, w) order,
`embed_dim`, `arch` (its architecture record, holding frames, size, tubelet, mean and std), `arch.grid`,
`token_grid(x)`, `input_spec` (its input contract, `vjepa_edge.models.inputs`) and `example_inputs(batch)`. Two kinds:

- "vit": this project's `VisionTransformer` at a V-JEPA size (tubelet 2x16x16, 3-D RoPE);
- "timm": any timm image backbone run on tubelets (`TimmVideoEncoder`): the `tubelet_size` frames of a tubelet are
  stacked on channels, the backbone's `forward_features` makes an (h, w) feature map per tubelet, a depthwise
  temporal convolution mixes neighbouring tubelets and a LayerNorm ends it. Only Conv2d and tensors of rank 6 or
  less, so XNNPACK can take it. `create_student("timm/<name>")` builds any timm model that is not registered.

timm is imported inside functions: `import vjepa_edge` stays lean. Weights are never downloaded.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from vjepa_edge.errors import ConfigError, RegistryError
from vjepa_edge.models.arch import VIT_SIZES, AnyEncoderArch, EncoderArch, TimmEncoderArch
from vjepa_edge.models.inputs import InputSpec
from vjepa_edge.models.vit import VisionTransformer
from vjepa_edge.registry import Registry

TIMM_PREFIX = "timm/"


@dataclass(frozen=True, kw_only=True, slots=True)
class StudentSpec:
    """A registered student: its kind, the ViT size or timm model it builds, and its default tubelet."""

    kind: Literal["vit", "timm"]
    model: str  # a VIT_SIZES name (kind "vit") or a timm model name (kind "timm")
    description: str
    patch_size: int = 16  # kind "vit" only: a timm backbone sets its own spatial stride
    tubelet_size: int = 2

    def __post_init__(self) -> None:
        p: list[str] = []
        if self.kind not in ("vit", "timm"):
            p.append(f"kind must be 'vit' or 'timm', got {self.kind!r}")
        if self.kind == "vit" and self.model not in VIT_SIZES:
            p.append(f"{self.model!r} is not a ViT size (known: {', '.join(VIT_SIZES.names())})")
        for name in ("patch_size", "tubelet_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                p.append(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if p:
            raise ConfigError("invalid student spec", problems=p)


STUDENTS: Registry[StudentSpec] = Registry("student")
for _size, _desc in (("tiny", "ViT-Ti/16: 192 wide"), ("small", "ViT-S/16: 384 wide"), ("base", "ViT-B/16: 768 wide")):
    STUDENTS.register(
        f"vit_{_size}",
        StudentSpec(kind="vit", model=f"vit_{_size}", description=f"V-JEPA {_desc}, 12 blocks, tubelet 2, 3-D RoPE"),
    )
# timm backbones with spatial stride 32: a 2x2 grid per tubelet at 64 px. Left out: efficientvit_m0 (stride 64, so
# one token per tubelet at 64 px, and attention-bias buffers tied to the input size); `timm/efficientvit_m0` builds it.
for _name, _model, _desc in (
    ("mobilenetv3_small", "mobilenetv3_small_100", "MobileNetV3-Small 1.0"),
    ("mobilenetv3_large", "mobilenetv3_large_100", "MobileNetV3-Large 1.0"),
    ("mobilenetv4_conv_small", "mobilenetv4_conv_small", "MobileNetV4-Conv-Small"),
    ("efficientvit_b0", "efficientvit_b0", "EfficientViT-B0 (MIT, ReLU linear attention)"),
    ("fastvit_t8", "fastvit_t8", "FastViT-T8 (reparameterisable)"),
    ("repvit_m0_9", "repvit_m0_9", "RepViT-M0.9 (reparameterisable)"),
    ("resnet18", "resnet18", "ResNet-18"),
):
    STUDENTS.register(
        _name, StudentSpec(kind="timm", model=_model, description=f"{_desc} on 2-frame tubelets + temporal mixer")
    )


# ----------------------------------------------------------------------------- timm backbones


def _timm_backbone(model_name: str, *, in_chans: int, img_size: int) -> nn.Module:
    """`timm.create_model` without weights and without classifier. Raises RegistryError for an unknown name."""
    import timm

    if not timm.is_model(model_name):
        close = difflib.get_close_matches(model_name, timm.list_models(), n=3, cutoff=0.5)
        raise RegistryError(
            f"unknown timm model {model_name!r}." + (f" Did you mean {', '.join(map(repr, close))}?" if close else ""),
            hint="timm.list_models('*pattern*') lists timm's models; `vjepa-edge list students` the registered ones",
        )
    base: dict[str, Any] = dict(pretrained=False, in_chans=in_chans, num_classes=0)
    # img_size where the model is built for one input size (ViTs, EfficientViT-M); global_pool="" where the model
    # allows it (EfficientViT-B refuses). The first combination the model accepts wins, the same one on every load.
    error: Exception | None = None
    for extra in ({"global_pool": "", "img_size": img_size}, {"global_pool": ""}, {"img_size": img_size}, {}):
        try:
            return timm.create_model(model_name, **base, **extra)
        except (TypeError, AssertionError) as e:
            error = e
    raise ConfigError(f"timm cannot build {model_name!r} with in_chans={in_chans}: {error}")


def _unused_modules(backbone: nn.Module, out: Tensor) -> tuple[str, ...]:
    """The outermost modules whose parameters `out` does not depend on (heads that forward_features skips)."""
    params = {n: p for n, p in backbone.named_parameters() if p.requires_grad}
    grads = torch.autograd.grad(out.float().sum(), list(params.values()), allow_unused=True)
    used = {n for n, g in zip(params, grads, strict=True) if g is not None}
    dropped: list[str] = []
    for name, module in backbone.named_modules():
        if not name or any(name.startswith(d + ".") for d in dropped):
            continue
        names = [f"{name}.{n}" for n, _ in module.named_parameters()]
        if names and not used.intersection(names):
            dropped.append(name)
    return tuple(dropped)


def _nlc_grid(backbone: nn.Module, n: int, model_name: str) -> tuple[int, int]:
    grid = getattr(getattr(backbone, "patch_embed", None), "grid_size", None)
    if grid is not None and len(grid) == 2 and grid[0] * grid[1] == n:
        return int(grid[0]), int(grid[1])
    side = math.isqrt(n)
    if side * side != n:
        raise ConfigError(f"timm model {model_name!r} gives {n} tokens, which is no square grid")
    return side, side


def timm_arch(model_name: str, *, frames: int = 16, size: int = 64, **overrides: Any) -> TimmEncoderArch:
    """The architecture record of timm backbone `model_name` as a video student, measured by a dry run on meta.

    `overrides` may set tubelet_size, in_chans, norm_eps, mean and std.
    """
    _check_overrides(overrides, {"tubelet_size", "in_chans", "norm_eps", "mean", "std"}, model_name)
    draft = TimmEncoderArch(
        model_name=model_name, embed_dim=1, feature_grid=(1, 1), num_frames=frames, img_size=size, **overrides
    )
    chans = draft.in_chans * draft.tubelet_size
    with torch.device("meta"):
        backbone = _timm_backbone(model_name, in_chans=chans, img_size=size).train()
        try:
            out = backbone.forward_features(torch.empty(2, chans, size, size))
        except Exception as e:  # any failure here means the backbone does not take this input size
            raise ConfigError(f"timm model {model_name!r} does not run at {size}x{size} px: {e}") from None
    prefix = 0
    if out.dim() == 3:
        layout, prefix = "NLC", int(getattr(backbone, "num_prefix_tokens", 0))
        embed_dim, grid = out.shape[2], _nlc_grid(backbone, out.shape[1] - prefix, model_name)
    elif out.dim() == 4 and getattr(backbone, "output_fmt", "NCHW") == "NHWC":
        layout, embed_dim, grid = "NHWC", out.shape[3], (out.shape[1], out.shape[2])
    elif out.dim() == 4:
        layout, embed_dim, grid = "NCHW", out.shape[1], (out.shape[2], out.shape[3])
    else:
        raise ConfigError(f"timm model {model_name!r}: forward_features gives shape {list(out.shape)}, not a map")
    return dataclasses.replace(
        draft,
        embed_dim=int(embed_dim),
        layout=layout,
        feature_grid=(int(grid[0]), int(grid[1])),
        num_prefix_tokens=prefix,
        dropped=_unused_modules(backbone, out),
    )


def _real_buffers(backbone: nn.Module, build: Callable[[], nn.Module]) -> None:
    """Non-persistent buffers (index tables) are in no checkpoint: when built on meta, compute them on the CPU."""
    stored = set(backbone.state_dict())
    missing = [n for n, b in backbone.named_buffers() if b.is_meta and n not in stored]
    if not missing:
        return
    with torch.device("cpu"):
        twin = dict(build().named_buffers())
    for name in missing:
        owner, _, leaf = name.rpartition(".")
        backbone.get_submodule(owner).register_buffer(leaf, twin[name], persistent=False)


class TemporalMixer(nn.Module):
    """Pre-norm residual depthwise convolution over the tubelet axis of [B, T', S, D] (a (k, 1) Conv2d)."""

    def __init__(self, dim: int, *, kernel: int = 3, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.conv = nn.Conv2d(dim, dim, (kernel, 1), padding=(kernel // 2, 0), groups=dim)
        nn.init.trunc_normal_(self.conv.weight, std=0.02)  # a small residual branch, as in the ViT init
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(self.norm(x).permute(0, 3, 1, 2))  # [B, D, T', S]
        return x + y.permute(0, 2, 3, 1)


class TimmVideoEncoder(nn.Module):
    """A timm image backbone as a video encoder: [B, C, T, H, W] -> [B, T'*h*w, D] tokens in (t, h, w) order."""

    def __init__(self, arch: TimmEncoderArch) -> None:
        super().__init__()
        self.arch = arch
        chans = arch.in_chans * arch.tubelet_size

        def build() -> nn.Module:
            return _timm_backbone(arch.model_name, in_chans=chans, img_size=arch.img_size)

        self.backbone = build()
        for name in arch.dropped:
            self.backbone.set_submodule(name, nn.Identity())
        _real_buffers(self.backbone, build)
        self.temporal = TemporalMixer(arch.embed_dim, eps=arch.norm_eps)
        self.norm = nn.LayerNorm(arch.embed_dim, eps=arch.norm_eps)

    @property
    def embed_dim(self) -> int:
        return self.arch.embed_dim

    @property
    def grid(self) -> tuple[int, int, int]:
        """Token grid (T', H', W') of the configured input."""
        return self.arch.grid

    def token_grid(self, x: Tensor) -> tuple[int, int, int]:
        """Token grid (T', H', W') of a clip [B, C, T, H, W] (other sizes: a CNN's ceil(H / stride) rule)."""
        a = self.arch
        if x.dim() != 5 or x.shape[1] != a.in_chans:
            raise ValueError(f"expected a clip [B, {a.in_chans}, T, H, W], got shape {list(x.shape)}")
        _, _, T, H, W = x.shape
        if T == 0 or T % a.tubelet_size:
            raise ValueError(f"clip of {T} frames is not a whole number of {a.tubelet_size}-frame tubelets")
        if (H, W) == (a.img_size, a.img_size):
            return T // a.tubelet_size, *a.feature_grid
        if a.layout == "NLC":
            raise ValueError(f"{a.model_name} is built for {a.img_size}x{a.img_size} px, got {H}x{W}")
        return T // a.tubelet_size, -(-H // a.stride), -(-W // a.stride)

    @property
    def input_spec(self) -> InputSpec:
        """The input contract: frames, size, tubelet, the backbone's stride as patch, its feature grid, mean/std."""
        return InputSpec.from_arch(self.arch)

    def example_inputs(self, batch: int = 1) -> tuple[Tensor]:
        return self.input_spec.example_inputs(batch)

    def forward(self, x: Tensor) -> Tensor:
        t, _, _ = self.token_grid(x)
        B, C, T, H, W = x.shape
        ts = self.arch.tubelet_size
        # [B, C, t, ts, H, W] -> [B, t, ts, C, H, W] -> [B*t, ts*C, H, W]: each tubelet's frames stacked on channels
        frames = x.reshape(B, C, t, ts, H, W).permute(0, 2, 3, 1, 4, 5).reshape(B * t, ts * C, H, W)
        f = self.backbone.forward_features(frames)
        if self.arch.layout == "NCHW":
            f = f.flatten(2).transpose(1, 2)
        elif self.arch.layout == "NHWC":
            f = f.flatten(1, 2)
        else:
            f = f[:, self.arch.num_prefix_tokens :]
        f = self.temporal(f.reshape(B, t, f.shape[1], f.shape[2]))  # [B, t, h*w, D]
        return self.norm(f.flatten(1, 2))


# ----------------------------------------------------------------------------- registry API


def _check_overrides(overrides: dict[str, Any], allowed: set[str], what: str) -> None:
    """Every key of `overrides` must be in `allowed`; lists (mean, std) become tuples, as in a stored record."""
    for key, value in overrides.items():
        if isinstance(value, list):
            overrides[key] = tuple(value)
    problems = []
    for key in sorted(set(overrides) - allowed):
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        if key in ("num_frames", "img_size"):
            hint = f" (pass {'frames' if key == 'num_frames' else 'size'}= instead)"
        problems.append(f"{key!r}{hint}")
    if problems:
        raise ConfigError(
            f"{what} does not take: {', '.join(problems)}", hint=f"it takes: {', '.join(sorted(allowed))}"
        )


def student_spec(name: str) -> StudentSpec:
    """The registered spec of `name`, or an ad-hoc one for `timm/<model>`."""
    if name.startswith(TIMM_PREFIX):
        model = name.removeprefix(TIMM_PREFIX)
        return StudentSpec(kind="timm", model=model, description=f"timm {model} on 2-frame tubelets (not registered)")
    return STUDENTS.get(name)


def student_arch(name: str, *, frames: int = 16, size: int = 64, **overrides: Any) -> AnyEncoderArch:
    """The architecture record of student `name` for clips of `frames` frames at `size` px."""
    spec = student_spec(name)
    if spec.kind == "timm":
        return timm_arch(spec.model, frames=frames, size=size, **({"tubelet_size": spec.tubelet_size} | overrides))
    fields = {f.name for f in dataclasses.fields(EncoderArch)} - {"num_frames", "img_size"}
    _check_overrides(overrides, fields, f"student {name!r}")
    base = dict(patch_size=spec.patch_size, tubelet_size=spec.tubelet_size, pos="rope")
    return EncoderArch.from_size(spec.model, num_frames=frames, img_size=size, **(base | overrides))


def build_encoder(arch: AnyEncoderArch) -> nn.Module:
    """The encoder module of an architecture record."""
    return TimmVideoEncoder(arch) if isinstance(arch, TimmEncoderArch) else VisionTransformer(arch)


def create_student(name: str, *, frames: int = 16, size: int = 64, **overrides: Any) -> nn.Module:
    """Build student `name` (registered, or `timm/<timm model>`), randomly initialised, for [B, 3, frames, size, size].

    `overrides` change architecture fields: patch_size, tubelet_size, pos, depth, ... for a ViT; tubelet_size,
    norm_eps, mean, std for a timm backbone. An unknown name raises RegistryError naming the closest ones.
    """
    return build_encoder(student_arch(name, frames=frames, size=size, **overrides))


def list_students(pattern: str = "*") -> list[str]:
    """Registered student names matching the glob `pattern` (`timm/<model>` names are accepted but not listed)."""
    return STUDENTS.names(pattern)


def student_table(pattern: str = "*", *, frames: int = 16, size: int = 64) -> list[dict[str, Any]]:
    """One row per registered student: name, kind, model, description, parameters, embed_dim and token grid.

    Built on the meta device: no memory for weights, no initialisation.
    """
    rows = []
    for name in list_students(pattern):
        spec = STUDENTS.get(name)
        with torch.device("meta"):
            enc = create_student(name, frames=frames, size=size)
        rows.append(
            {
                "name": name,
                "kind": spec.kind,
                "model": spec.model,
                "description": spec.description,
                "params": sum(p.numel() for p in enc.parameters()),
                "embed_dim": enc.embed_dim,
                "grid": list(enc.arch.grid),
            }
        )
    return rows
