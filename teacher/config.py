"""A pretraining config: model, data, masks, optimisation and run settings, loaded strictly from TOML.

Every section is a frozen, keyword-only dataclass that checks itself; `load_config(path)` reports every
problem of a file at once (unknown keys with "did you mean", wrong types, bad values). The published
V-JEPA configs map onto these fields one to one; `teacher/configs/*.toml` cite the original keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vjepa_edge.config import build, check_count, check_number, digest, drop_defaults, load_toml, to_dict
from vjepa_edge.data.config import AugmentConfig, ClipSpec
from vjepa_edge.data.masks import VJEPA_MASKS, MaskSpec
from vjepa_edge.errors import ConfigError
from vjepa_edge.models.arch import VIT_SIZES, EncoderArch, PredictorArch, VJEPAArch

CONFIG_DIR = Path(__file__).parent / "configs"


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelConfig:
    """The encoder (a registered ViT `size`, or explicit dimensions) and the predictor.

    `pos = "sincos"` is V-JEPA 1 (fixed 3-D sin-cos table), `"rope"` V-JEPA 2 (3-D RoPE in every layer).
    `pred_heads = 0` means "as many as the encoder" (V-JEPA 1); V-JEPA 2 uses 12.
    """

    size: str = ""
    embed_dim: int = 0
    depth: int = 0
    num_heads: int = 0
    mlp_ratio: float = 4.0
    patch_size: int = 16
    tubelet_size: int = 2
    pos: Literal["sincos", "rope"] = "rope"
    uniform_power: bool = True
    pred_dim: int = 384
    pred_depth: int = 12
    pred_heads: int = 0
    pred_mlp_ratio: float = 4.0

    def __post_init__(self) -> None:
        p: list[str] = []
        if self.size:
            if self.size not in VIT_SIZES.names():
                p.append(f"size={self.size!r}: not a registered ViT size ({', '.join(VIT_SIZES.names())})")
        elif not (self.embed_dim > 0 and self.depth > 0 and self.num_heads > 0):
            p.append("give either size (a registered ViT size) or embed_dim, depth and num_heads")
        for name in ("patch_size", "tubelet_size", "pred_dim", "pred_depth"):
            if getattr(self, name) <= 0:
                p.append(f"{name}={getattr(self, name)}: need a positive integer")
        if self.mlp_ratio <= 0 or self.pred_mlp_ratio <= 0:
            p.append("mlp_ratio and pred_mlp_ratio must be positive")
        if p:
            raise ConfigError("invalid model", problems=p)

    def encoder_arch(self, clip: ClipSpec) -> EncoderArch:
        dims: dict[str, Any] = {}
        if self.size:
            s = VIT_SIZES.get(self.size)
            dims = dict(embed_dim=s.embed_dim, depth=s.depth, num_heads=s.num_heads, mlp_hidden=s.mlp_hidden)
        for name in ("embed_dim", "depth", "num_heads"):
            if getattr(self, name):
                dims[name] = getattr(self, name)
        if not self.size or self.embed_dim:
            dims["mlp_hidden"] = int(dims["embed_dim"] * self.mlp_ratio)
        return EncoderArch(
            **dims,
            patch_size=self.patch_size,
            tubelet_size=self.tubelet_size,
            pos=self.pos,
            uniform_power=self.uniform_power,
            num_frames=clip.frames,
            img_size=clip.size,
        )

    def arch(self, clip: ClipSpec, num_masks: int) -> VJEPAArch:
        enc = self.encoder_arch(clip)
        pred = PredictorArch(
            embed_dim=enc.embed_dim,
            pred_dim=self.pred_dim,
            depth=self.pred_depth,
            num_heads=self.pred_heads or enc.num_heads,
            mlp_hidden=int(self.pred_dim * self.pred_mlp_ratio),
            num_mask_tokens=num_masks,
            pos=self.pos,
            uniform_power=self.uniform_power,
            sort_tokens=self.pos == "rope",
        )
        return VJEPAArch(
            version="vjepa1" if self.pos == "sincos" else "vjepa2", encoder=enc, predictor=pred, target_encoder=True
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class DataConfig:
    """What the model sees: SOURCE (`physics`, a folder, a CSV), the clip, augmentation, batch per process."""

    source: str = "physics"
    clip: ClipSpec = field(default_factory=ClipSpec)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    batch_size: int = 16
    num_workers: int = 1
    physics_clips: int = 8192  # clips per epoch of the generator (a real source has as many as it has videos)
    max_bad_fraction: float = 0.05

    def __post_init__(self) -> None:
        p: list[str] = []
        if not self.source:
            p.append("source: give a data source (physics, a folder of videos or a CSV)")
        check_count("batch_size", self.batch_size, p)
        check_count("num_workers", self.num_workers, p, minimum=0)
        check_count("physics_clips", self.physics_clips, p)
        if not p and self.source == "physics" and self.batch_size > self.physics_clips:
            p.append(f"batch_size={self.batch_size} is larger than physics_clips={self.physics_clips}")
        check_number("max_bad_fraction", self.max_bad_fraction, p, positive=False, maximum=1.0)
        if p:
            raise ConfigError("invalid data", problems=p)


@dataclass(frozen=True, kw_only=True, slots=True)
class OptimConfig:
    """AdamW and the schedules of V-JEPA 1 (`vjepa1`) or V-JEPA 2 (`vjepa2`), in optimizer steps.

    vjepa1: lr warms up linearly from `start_lr` to `lr` over `warmup_steps`, then follows a cosine to
    `final_lr`; weight decay follows a cosine from `weight_decay` to `final_weight_decay`; EMA momentum rises
    linearly from `ema[0]` to `ema[1]`. All three run over `steps * ipe_scale` steps and training stops at
    `steps` (V-JEPA 1 truncates its schedules with ipe_scale 1.25). Gradients are clipped to `clip_grad` after
    warmup.
    vjepa2: the same warmup, then constant lr; the last `cooldown_steps` decay linearly to `final_lr`;
    weight decay and EMA momentum stay at `weight_decay` and `ema[0]`.
    """

    schedule: Literal["vjepa1", "vjepa2"] = "vjepa1"
    steps: int = 1000
    warmup_steps: int = 100
    start_lr: float = 2e-4
    lr: float = 6.25e-4
    final_lr: float = 1e-6
    weight_decay: float = 0.04
    final_weight_decay: float = 0.4
    ema: tuple[float, float] = (0.998, 1.0)
    ipe_scale: float = 1.25
    cooldown_steps: int = 0
    clip_grad: float = 10.0  # 0 turns clipping off (V-JEPA 2)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    # VICReg-style terms on the context encoder's tokens, against dimensional collapse in short runs: a hinge on
    # each channel's std (over the batch's tokens) below 1, and the squared off-diagonal covariance. 0 (the
    # default) is V-JEPA as published.
    variance_weight: float = 0.0
    covariance_weight: float = 0.0
    # The regression target: the target encoder's last `target_layers` blocks, each layer-normed, averaged, then
    # layer-normed again (data2vec's top-K average). 1 (the default) is V-JEPA as published: its output alone.
    target_layers: int = 1
    # Where the regression loss looks: each target token's loss weighted by (1 - w) + w * m / mean(m), where m
    # is its clip's mean absolute frame difference under the token (how much moves there), so the loss is not spent
    # on a static background. 0 (the default) is V-JEPA as published: every masked token counts the same.
    motion_weight: float = 0.0
    # V-JEPA's `loss.loss_exp`: the loss is mean(|prediction - target| ** loss_exp) / loss_exp; 1 (L1) as published.
    loss_exp: float = 1.0

    def __post_init__(self) -> None:
        p: list[str] = []
        check_count("steps", self.steps, p)
        check_count("target_layers", self.target_layers, p)
        for name in (
            "start_lr",
            "final_lr",
            "weight_decay",
            "final_weight_decay",
            "clip_grad",
            "eps",
            "variance_weight",
            "covariance_weight",
        ):
            check_number(name, getattr(self, name), p, positive=False)
        check_number("motion_weight", self.motion_weight, p, positive=False, maximum=1.0)
        check_number("lr", self.lr, p)
        check_number("loss_exp", self.loss_exp, p)
        check_number("ipe_scale", self.ipe_scale, p)
        if p:  # the order checks below compare these numbers
            raise ConfigError("invalid optim", problems=p)
        if not 0 <= self.warmup_steps <= self.steps:
            p.append(f"warmup_steps={self.warmup_steps}: need 0 <= warmup_steps <= steps ({self.steps})")
        if not 0 <= self.cooldown_steps <= self.steps - self.warmup_steps:
            p.append(f"cooldown_steps={self.cooldown_steps}: need 0 <= cooldown_steps <= steps - warmup_steps")
        if self.cooldown_steps and self.schedule != "vjepa2":
            p.append("cooldown_steps applies to the vjepa2 schedule only")
        if not all(isinstance(m, int | float) and 0.0 <= m <= 1.0 for m in self.ema) or self.ema[0] > self.ema[1]:
            p.append(f"ema={list(self.ema)}: need two momenta 0 <= start <= end <= 1")
        if self.ipe_scale < 1.0:
            p.append(f"ipe_scale={self.ipe_scale}: need at least 1 (schedules cannot end before training does)")
        if not all(isinstance(b, int | float) and 0.0 <= b < 1.0 for b in self.betas):
            p.append(f"betas={list(self.betas)}: need two numbers in [0, 1)")
        if p:
            raise ConfigError("invalid optim", problems=p)


@dataclass(frozen=True, kw_only=True, slots=True)
class RunConfig:
    """Seed, precision, checkpointing and scale-out of a run.

    precision "auto": bf16 autocast on CUDA and on CPUs with native bf16 (AVX512-BF16 / AMX), fp32 elsewhere.
    collapse_std: warn when the mean per-dimension std of the target features falls below this fraction of
    its value at the first step.
    """

    seed: int = 0
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    activation_checkpointing: bool = False
    distributed: Literal["ddp", "fsdp2"] = "ddp"
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    log_every: int = 10
    collapse_std: float = 0.1

    def __post_init__(self) -> None:
        p: list[str] = []
        for name in ("checkpoint_every", "keep_checkpoints", "log_every"):
            check_count(name, getattr(self, name), p)
        if not (isinstance(self.collapse_std, int | float) and 0.0 <= self.collapse_std < 1.0):
            p.append(f"collapse_std={self.collapse_std}: need a fraction in [0, 1)")
        if p:
            raise ConfigError("invalid run", problems=p)


@dataclass(frozen=True, kw_only=True, slots=True)
class TeacherConfig:
    """One pretraining config (a `teacher/configs/*.toml` file)."""

    name: str
    description: str = ""
    model: ModelConfig
    data: DataConfig = field(default_factory=DataConfig)
    masks: tuple[MaskSpec, ...] = VJEPA_MASKS
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self) -> None:
        p = []
        if not self.masks:
            p.append("masks: need at least one [[masks]] table")
        try:
            depth = self.arch().encoder.depth
        except ConfigError as e:
            p += e.problems or [e.message]
        else:
            if self.optim.target_layers > depth:
                p.append(f"optim.target_layers={self.optim.target_layers}: the encoder has {depth} blocks")
        if p:
            raise ConfigError("invalid config", problems=p)

    def arch(self) -> VJEPAArch:
        return self.model.arch(self.data.clip, len(self.masks))

    def replace(self, **sections: Any) -> TeacherConfig:
        """A copy with sections (or fields of sections, as `optim={"steps": 10}`) replaced, validated again."""
        data = self.to_dict()
        for key, value in sections.items():
            if isinstance(value, dict):
                data[key] = {**data.get(key, {}), **value}
            else:
                data[key] = value
        return config_from_dict(data, where=self.name)

    def with_steps(self, steps: int) -> TeacherConfig:
        """The same run shortened or stretched to `steps`; warmup and cooldown keep their share of the run."""
        p: list[str] = []
        check_count("--steps", steps, p)
        if p:
            raise ConfigError(p[0], hint="give the number of optimizer steps, e.g. --steps 100")
        o = self.optim
        scale = steps / o.steps
        warmup = min(steps, round(o.warmup_steps * scale))
        cooldown = min(steps - warmup, round(o.cooldown_steps * scale))
        return self.replace(optim={"steps": steps, "warmup_steps": warmup, "cooldown_steps": cooldown})

    def with_source(self, source: str) -> TeacherConfig:
        return self.replace(data={"source": source})

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def key_data(self) -> dict[str, Any]:
        """Everything that changes the trained weights: what `digest` hashes. Options added after teachers were
        pretrained are left out at their default, so those teachers keep their cache key."""
        data = self.to_dict()
        data["run"] = {k: v for k, v in data["run"].items() if k in ("seed", "precision")}
        data.pop("description", None)
        drop_defaults(
            data["optim"],
            OptimConfig,
            ("variance_weight", "covariance_weight", "target_layers", "motion_weight", "loss_exp"),
        )
        return data

    def digest(self) -> str:
        """A short hash of `key_data` (for cache keys)."""
        return digest(self.key_data(), 12)


def _prepare(data: dict[str, Any]) -> dict[str, Any]:
    """`fps` in a clip table replaces the default `frame_step` unless both are written out."""
    data = dict(data)
    d = data.get("data")
    if isinstance(d, dict) and isinstance(d.get("clip"), dict):
        clip = dict(d["clip"])
        if "fps" in clip and "frame_step" not in clip:
            clip["frame_step"] = None
        data["data"] = {**d, "clip": clip}
    return data


def config_from_dict(data: dict[str, Any], *, where: str = "") -> TeacherConfig:
    try:
        return build(TeacherConfig, _prepare(data))
    except ConfigError as e:
        example = "teacher/configs/physics.toml is a valid example"
        hint = e.hint or f"fix these values in {where or 'the config'} ({example})"
        raise ConfigError(f"invalid teacher config {where}".rstrip(), problems=e.problems, hint=hint) from None


def resolve_config_path(path_or_name: str | Path) -> Path:
    """A path to a TOML file, or the name of a bundled config (`physics`, `vitl16`, ...)."""
    p = Path(path_or_name).expanduser()
    if p.is_file():
        return p
    bundled = CONFIG_DIR / f"{path_or_name}.toml"
    if bundled.is_file():
        return bundled
    names = ", ".join(sorted(c.stem for c in CONFIG_DIR.glob("*.toml")))
    raise ConfigError(f"no such teacher config: {path_or_name}", hint=f"pass a TOML file or one of: {names}")


def load_config(path_or_name: str | Path) -> TeacherConfig:
    """Load a teacher config strictly; every problem of the file is listed in one ConfigError."""
    path = resolve_config_path(path_or_name)
    data = load_toml(path, what="teacher config")
    data.setdefault("name", path.stem)
    return config_from_dict(data, where=str(path))


def config_problems(config: TeacherConfig, *, out: str | Path | None = None) -> list[str]:
    """What the config's values cannot say by themselves, found without compute: a data source with at least one
    readable video and one batch of them, and an output folder that can be written."""
    from vjepa_edge.data.sources import source_problems
    from vjepa_edge.paths import out_dir_problems

    problems = source_problems(config.data.source, batch_size=config.data.batch_size, what="data.source")
    if out is not None:
        problems += out_dir_problems(out)
    return problems


def validate_config(config: TeacherConfig, *, out: str | Path | None = None) -> None:
    """Raise one ConfigError with every problem `config_problems` finds; run before any pretraining starts."""
    problems = config_problems(config, out=out)
    if problems:
        raise ConfigError(
            f"cannot pretrain {config.name}",
            problems=problems,
            hint="fix the config or the --data / --out options; `vjepa-edge data info SOURCE` shows what it holds",
        )


def bundled_configs() -> list[Path]:
    return sorted(CONFIG_DIR.glob("*.toml"))


__all__ = [
    "DataConfig",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "TeacherConfig",
    "bundled_configs",
    "config_from_dict",
    "load_config",
    "validate_config",
]
