"""A distillation recipe: student, teacher, data, loss, schedule, cache, evaluation and deployment defaults.

Recipes are TOML files in `recipes/` (`vit_t`, `vit_s`, `vit_b`, ...), loaded strictly into frozen dataclasses.
`load_recipe(name_or_path)` reports every problem of a file at once: unknown keys (with "did you mean"),
wrong types, bad values, and what only the outside world can tell (a teacher file that is not there, a
student that is not registered, a data source that does not exist).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vjepa_edge.config import (
    MAX_FPS,
    MAX_FRAMES,
    MAX_SIZE,
    build,
    check_count,
    check_number,
    digest,
    drop_defaults,
    load_toml,
    to_dict,
)
from vjepa_edge.data.config import AugmentConfig
from vjepa_edge.errors import ConfigError, VjepaEdgeError

EMBEDDED = "embedded"
# Recipes ship in the repository's recipes/ folder; a wheel carries them as vjepa_edge/recipes.
RECIPE_DIRS = (Path(__file__).resolve().parents[2] / "recipes", Path(__file__).resolve().parents[1] / "recipes")


def _positive(obj: Any, names: tuple[str, ...], p: list[str]) -> None:
    for name in names:
        check_count(name, getattr(obj, name), p)


@dataclass(frozen=True, kw_only=True, slots=True)
class StudentConfig:
    """The student (a registered name, `vjepa-edge list students`) and its input on the device.

    The student sees the teacher's clip resampled to `frames` frames (a whole divisor of the teacher's, same
    time span) at `size` pixels; patch/tubelet 0 keep the student's defaults.
    """

    name: str = "vit_small"
    frames: int = 16
    size: int = 64
    patch_size: int = 0
    tubelet_size: int = 0

    def __post_init__(self) -> None:
        p: list[str] = []
        if not self.name:
            p.append("name: give a registered student (vjepa-edge list students)")
        check_count("frames", self.frames, p, maximum=MAX_FRAMES)
        check_count("size", self.size, p, minimum=8, maximum=MAX_SIZE)
        for name in ("patch_size", "tubelet_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                p.append(f"{name}={getattr(self, name)!r}: need 0 (the student's default) or a positive integer")
        if p:
            raise ConfigError("invalid student", problems=p)


@dataclass(frozen=True, kw_only=True, slots=True)
class TeacherSource:
    """Where the teacher comes from: `embedded` (pretrained here on first use) or any file `load_vjepa` reads.

    `part`: which encoder distils (`auto`: the EMA target encoder when the file has one, as V-JEPA evaluates).
    `frames`/`size` set the input of files that do not record it (V-JEPA 2 RoPE checkpoints); 0 keeps the file's.
    `hint` tells the user where to get the file when it is absent.
    """

    path: str = EMBEDDED
    part: Literal["auto", "target_encoder", "encoder"] = "auto"
    frames: int = 0
    size: int = 0
    hint: str = ""

    def __post_init__(self) -> None:
        p: list[str] = []
        if not self.path:
            p.append(f"path: give '{EMBEDDED}' or a teacher checkpoint")
        check_count("frames", self.frames, p, minimum=0, maximum=MAX_FRAMES)
        check_count("size", self.size, p, minimum=0, maximum=MAX_SIZE)
        if p:
            raise ConfigError("invalid teacher", problems=p)

    @property
    def embedded(self) -> bool:
        return self.path == EMBEDDED

    @property
    def source(self) -> str | None:
        """The registered teacher source `path` names (`embedded`, or a plugin's), or None when it is a file."""
        return self.path if _is_source(self.path) else None


def _is_source(path: str) -> bool:
    """A teacher path names a registered source unless a file of that name exists (the file wins)."""
    from vjepa_edge.distill.teachers import is_teacher_source

    return path == EMBEDDED or (is_teacher_source(path) and not Path(path).expanduser().exists())


@dataclass(frozen=True, kw_only=True, slots=True)
class DataConfig:
    """Training clips: SOURCE (`physics`, a folder of videos, a V-JEPA CSV, one video), sampled at `fps`."""

    source: str = "physics"
    fps: float = 8.0
    clips: int = 2048  # clips per epoch of the physics generator (a real source has as many as it has videos)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    batch_size: int = 16
    num_workers: int = 1
    max_bad_fraction: float = 0.05

    def __post_init__(self) -> None:
        p: list[str] = []
        if not self.source:
            p.append("source: give a data source (physics, a folder of videos, a CSV or a video)")
        check_number("fps", self.fps, p, maximum=MAX_FPS)
        _positive(self, ("clips", "batch_size"), p)
        if not p and self.batch_size > self.clips:
            p.append(f"batch_size={self.batch_size} is larger than clips={self.clips}: not one batch per epoch")
        if not isinstance(self.num_workers, int) or self.num_workers < 0:
            p.append(f"num_workers={self.num_workers!r}: need 0 or more")
        check_number("max_bad_fraction", self.max_bad_fraction, p, positive=False, maximum=1.0)
        if p:
            raise ConfigError("invalid data", problems=p)


@dataclass(frozen=True, kw_only=True, slots=True)
class LossConfig:
    """`latent`: every student token regresses the teacher's token at its place (through `projector` where
    widths differ). `masked`: the student sees the clip with `mask_ratio` of its tokens hidden (tubes) and a
    light predictor (`pred_dim` x `pred_depth`) regresses the teacher's features of the hidden tokens, while
    the visible ones are matched as in `latent`. `distance` to the teacher's tokens after a non-affine
    LayerNorm (`normalize_targets`, as V-JEPA's targets). `causal_fraction` of the `masked` steps hide the second
    half of the clip instead (the first half is the context): the predictor then learns to predict the future,
    which is what intuitive-physics surprise asks of it (the teacher's own pretraining has such a mask)."""

    kind: Literal["latent", "masked"] = "latent"
    distance: Literal["l1", "smooth_l1", "cosine"] = "l1"
    projector: Literal["linear", "mlp"] = "linear"
    normalize_targets: bool = True
    mask_ratio: float = 0.5
    pred_dim: int = 192
    pred_depth: int = 2
    pred_heads: int = 4
    causal_fraction: float = 0.0

    def __post_init__(self) -> None:
        p: list[str] = []
        if not (isinstance(self.mask_ratio, int | float) and 0.0 < self.mask_ratio < 1.0):
            p.append(f"mask_ratio={self.mask_ratio!r}: need a fraction in (0, 1)")
        check_number("causal_fraction", self.causal_fraction, p, positive=False, maximum=1.0)
        _positive(self, ("pred_dim", "pred_depth", "pred_heads"), p)
        if not p and self.pred_dim % self.pred_heads:
            p.append(f"pred_dim={self.pred_dim} is not divisible by pred_heads={self.pred_heads}")
        if p:
            raise ConfigError("invalid loss", problems=p)


@dataclass(frozen=True, kw_only=True, slots=True)
class OptimConfig:
    """AdamW: linear warmup from `start_lr` to `lr` over `warmup_steps`, then cosine to `final_lr`."""

    steps: int = 600
    warmup_steps: int = 60
    start_lr: float = 1e-5
    lr: float = 1e-3
    final_lr: float = 1e-5
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    clip_grad: float = 1.0  # 0: no clipping

    def __post_init__(self) -> None:
        p: list[str] = []
        _positive(self, ("steps",), p)
        if not isinstance(self.warmup_steps, int) or not 0 <= self.warmup_steps <= max(self.steps, 0):
            p.append(f"warmup_steps={self.warmup_steps!r}: need an integer in [0, steps]")
        for name in ("start_lr", "final_lr", "weight_decay", "clip_grad", "eps"):
            check_number(name, getattr(self, name), p, positive=False)
        check_number("lr", self.lr, p)
        if len(self.betas) != 2 or not all(isinstance(b, int | float) and 0.0 <= b < 1.0 for b in self.betas):
            p.append(f"betas={list(self.betas)!r}: need two numbers in [0, 1)")
        if p:
            raise ConfigError("invalid optim", problems=p)


@dataclass(frozen=True, kw_only=True, slots=True)
class CacheConfig:
    """The teacher-feature cache: `views` augmentations per clip are encoded once and reused every epoch.
    `dir` "" is the user cache ($VJEPA_EDGE_CACHE or $XDG_CACHE_HOME/vjepa-edge, then features/)."""

    enabled: bool = True
    views: int = 1
    dir: str = ""

    def __post_init__(self) -> None:
        p: list[str] = []
        _positive(self, ("views",), p)
        if p:
            raise ConfigError("invalid cache", problems=p)


@dataclass(frozen=True, kw_only=True, slots=True)
class EvalConfig:
    """The held-out evaluation at the end of a run: per-token cosine to the teacher on `cosine_clips` clips and
    a frozen `probe` of teacher, student and a random-init student on the physics `labels`."""

    labels: tuple[str, ...] = ("event", "direction")
    probe: Literal["grid", "linear", "attentive"] = "grid"
    pool: tuple[int, int, int] = (0, 4, 4)  # the grid probe's token map (t, h, w); t = 0 keeps every time step
    train_clips: int = 1024
    test_clips: int = 512
    cosine_clips: int = 128
    epochs: int | None = None  # None: the probe kind's schedule (`vjepa_edge.eval.probe.SCHEDULES`; 20 for grid)

    def __post_init__(self) -> None:
        from vjepa_edge.data.physics import LABELS

        p: list[str] = []
        if not self.labels:
            p.append(f"labels: need at least one of {', '.join(LABELS)}")
        for label in self.labels:
            if label not in LABELS:
                p.append(f"labels: unknown {label!r}; known: {', '.join(LABELS)}")
        _positive(self, ("train_clips", "test_clips", "cosine_clips"), p)
        if self.epochs is not None:
            _positive(self, ("epochs",), p)
        if p:
            raise ConfigError("invalid eval", problems=p)


@dataclass(frozen=True, kw_only=True, slots=True)
class RunConfig:
    seed: int = 0
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    log_every: int = 10

    def __post_init__(self) -> None:
        p: list[str] = []
        _positive(self, ("checkpoint_every", "keep_checkpoints", "log_every"), p)
        if p:
            raise ConfigError("invalid run", problems=p)


def _known(name: str, value: str, known: tuple[str, ...], p: list[str]) -> None:
    if value not in known:
        import difflib

        close = difflib.get_close_matches(value, known, n=1)
        mean = f" (did you mean {close[0]!r}?)" if close else ""
        p.append(f"{name}={value!r}: unknown{mean}; known: {', '.join(known)}")


@dataclass(frozen=True, kw_only=True, slots=True)
class DeployConfig:
    """What `distill` hands to the deploy stages: the quantization `scheme` (`vjepa-edge quantize --scheme`), the
    export `target` (`vjepa-edge export --target`) and the `devices` whose latency budgets the artifact is
    profiled against (`vjepa-edge profile --device`)."""

    scheme: str = "xnnpack-int8"
    target: str = "xnnpack-int8"
    devices: tuple[str, ...] = ("quest3",)

    def __post_init__(self) -> None:
        p: list[str] = []
        from vjepa_edge.export.targets import list_targets
        from vjepa_edge.profile.devices import list_devices
        from vjepa_edge.quant.schemes import list_schemes

        _known("scheme", self.scheme, tuple(list_schemes()), p)
        _known("target", self.target, tuple(list_targets()), p)
        devices = tuple(list_devices())  # the device profiles, devices/*.toml
        if not self.devices:
            p.append(f"devices: name at least one of {', '.join(devices)}")
        for device in self.devices:
            _known("devices", device, devices, p)
        if p:
            raise ConfigError("invalid deploy", problems=p)


@dataclass(frozen=True, kw_only=True, slots=True)
class Recipe:
    """One `recipes/*.toml` file."""

    name: str
    description: str = ""
    student: StudentConfig = field(default_factory=StudentConfig)
    teacher: TeacherSource = field(default_factory=TeacherSource)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    run: RunConfig = field(default_factory=RunConfig)
    deploy: DeployConfig = field(default_factory=DeployConfig)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def digest(self) -> str:
        """A short hash of everything that changes the trained student (resume checks it)."""
        data = self.to_dict()
        for key in ("description", "deploy", "eval"):
            data.pop(key, None)
        data["run"] = {k: v for k, v in data["run"].items() if k in ("seed", "precision")}
        drop_defaults(data["loss"], LossConfig, ("causal_fraction",))  # runs from before it keep their digest
        return digest(data, 12)

    def replace(self, **sections: dict[str, Any]) -> Recipe:
        """A copy with fields of sections replaced (`teacher={"path": p}`), validated again."""
        data = self.to_dict()
        for key, value in sections.items():
            data[key] = {**data.get(key, {}), **value}
        return recipe_from_dict(data, where=self.name)


def recipe_from_dict(data: dict[str, Any], *, where: str = "") -> Recipe:
    try:
        return build(Recipe, data)
    except ConfigError as e:
        raise ConfigError(
            f"invalid recipe {where}".rstrip(), problems=e.problems, hint=e.hint or _fix_hint(where)
        ) from None


def _fix_hint(where: str | Path) -> str:
    return (
        f"fix these values in {where or 'the recipe'} (recipes/vit_s.toml is a valid example); "
        "`vjepa-edge validate RECIPE` checks a recipe without running it"
    )


def recipe_dirs() -> list[Path]:
    return [d for d in RECIPE_DIRS if d.is_dir()]


def bundled_recipes() -> list[Path]:
    """The recipe files that ship with vjepa-edge, by name (the repository's copy wins)."""
    found: dict[str, Path] = {}
    for d in reversed(recipe_dirs()):
        found.update({p.stem: p for p in d.glob("*.toml")})
    return [found[k] for k in sorted(found)]


def resolve_recipe_path(name_or_path: str | Path) -> Path:
    p = Path(name_or_path).expanduser()
    if p.is_file():
        return p
    for path in bundled_recipes():
        if path.stem == str(name_or_path):
            return path
    import difflib

    names = [r.stem for r in bundled_recipes()]
    close = difflib.get_close_matches(str(name_or_path), names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ConfigError(
        f"no such recipe: {name_or_path}", hint=f"{hint}pass a TOML file or one of: {', '.join(names) or '(none)'}"
    )


def external_problems(data: dict[str, Any]) -> list[str]:
    """What a recipe's values cannot say by themselves: is the teacher file there, is the student registered,
    does the data source exist, do student and loss fit together. Reads the raw tables, so it also runs on a
    file with other problems (values of the wrong type are left to the strict loader)."""
    from vjepa_edge.data.sources import check_source
    from vjepa_edge.models.students import STUDENTS, student_spec

    def table(key: str) -> dict[str, Any]:
        value = data.get(key, {})
        return value if isinstance(value, dict) else {}

    p: list[str] = []
    teacher, student = table("teacher"), table("student")
    path, hint = teacher.get("path", EMBEDDED), teacher.get("hint", "")
    if isinstance(path, str) and path and not _is_source(path) and not Path(path).expanduser().exists():
        how = hint if isinstance(hint, str) and hint else "pass --teacher PATH (any file load_vjepa reads)"
        p.append(f"teacher.path={path!r}: no such file or directory; {how}, or set teacher.path = '{EMBEDDED}'")
    name = student.get("name", StudentConfig.name)
    kind = None
    if isinstance(name, str) and name:
        try:
            kind = student_spec(name).kind
        except VjepaEdgeError as e:
            p.append(f"student.name={name!r}: {e.message} (registered: {', '.join(STUDENTS.names())})")
    if kind is not None and kind != "vit" and table("loss").get("kind") == "masked":
        p.append(
            f"loss.kind='masked' needs a ViT student (it drops the hidden tokens); {name!r} is a {kind} student: "
            "use loss.kind='latent'"
        )
    source = table("data").get("source", DataConfig.source)
    if isinstance(source, str) and source:
        try:
            check_source(source)
        except VjepaEdgeError as e:
            p.append(f"data.source={source!r}: {e.message}")
    return p


def load_recipe(name_or_path: str | Path, *, check: bool = True, **overrides: dict[str, Any]) -> Recipe:
    """Load a recipe strictly (with `overrides` as in `Recipe.replace`); every problem in one ConfigError:
    the file's values and, when `check`, what is outside it (teacher file, student name, data source)."""
    path = resolve_recipe_path(name_or_path)
    data = load_toml(path, what="recipe")
    data.setdefault("name", path.stem)
    for key, value in overrides.items():
        current = data.get(key, {})
        data[key] = {**(current if isinstance(current, dict) else {}), **value}
    problems: list[str] = []
    recipe = None
    hint = None
    try:
        recipe = build(Recipe, data)
    except ConfigError as e:
        problems += list(e.problems or [e.message])
        hint = e.hint
    if check:
        problems += external_problems(data)
    if problems:
        raise ConfigError(f"invalid recipe {path}", problems=problems, hint=hint or _fix_hint(path))
    assert recipe is not None
    return recipe
