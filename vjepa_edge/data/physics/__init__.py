"""The embedded `physics` source: procedurally rendered clips of objects under gravity, with true labels.

`generate_clip(index, seed=...)` renders one clip whose event (falls, bounces, rolls, slides, collides,
rebounds, thrown), object count and main motion direction are checked against the simulation.
`generate_voe_pair(index, seed=...)` renders a violation-of-expectation pair: one start, then the physical
continuation and an impossible one (vanishes, teleports, passes through, falls upward, changes shape or
colour), identical up to `diverge_frame`. Both are pure functions of (seed, index, size, frames, fps).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vjepa_edge.data.physics.render import background, render
from vjepa_edge.data.physics.scenes import (
    DIRECTIONS,
    EVENTS,
    MAX_OBJECTS,
    MIN_WORLD_S,
    VOE_KINDS,
    Scene,
    build_event_scene,
    build_voe_scene,
    direction,
    make_view,
    voe_is_clear,
)
from vjepa_edge.errors import ConfigError

LABELS: dict[str, tuple[str, ...]] = {
    "event": EVENTS,
    "num_objects": tuple(str(n) for n in range(1, MAX_OBJECTS + 1)),
    "direction": DIRECTIONS,
}
_STREAM_CLIP, _STREAM_VOE = 0, 1


@dataclass(frozen=True, kw_only=True, slots=True)
class PhysicsConfig:
    """What the generator draws. `fps` applies when the clip spec does not set one."""

    events: tuple[str, ...] = EVENTS
    voe_kinds: tuple[str, ...] = VOE_KINDS
    fps: float = 8.0
    max_distractors: int = 3
    max_screens: int = 2

    def __post_init__(self) -> None:
        problems = []
        for name, value, known in (("events", self.events, EVENTS), ("voe_kinds", self.voe_kinds, VOE_KINDS)):
            if not value:
                problems.append(f"{name}: need at least one of {', '.join(known)}")
            for v in value:
                if v not in known:
                    close = difflib.get_close_matches(v, known, n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    problems.append(f"{name}: unknown {v!r}{hint}; known: {', '.join(known)}")
        if not 0 < self.fps <= 240:
            problems.append(f"fps={self.fps!r}: need a number in (0, 240]")
        for name in ("max_distractors", "max_screens"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= 3:
                problems.append(f"{name}={value!r}: need an integer in [0, 3]")
        if problems:
            raise ConfigError("invalid physics config", problems=problems)


@dataclass(slots=True)
class PhysicsClip:
    """frames uint8 [T, H, W, 3]; ids uint8 [T, H, W] (0 background, i+1 body i, 254 post, 255 screen) when
    asked for; `track` [T, 2] is body 0's centre in pixels (x right, y down)."""

    frames: np.ndarray
    event: str
    num_objects: int
    direction: str
    fps: float
    track: np.ndarray
    ids: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def labels(self) -> dict[str, int]:
        """Class indices into `LABELS`."""
        return {
            "event": EVENTS.index(self.event),
            "num_objects": self.num_objects - 1,
            "direction": DIRECTIONS.index(self.direction),
        }


@dataclass(slots=True)
class VoEPair:
    """The same start, then the physical (`possible`) and an impossible continuation, each [T, H, W, 3].
    Frames before `diverge_frame` are identical; every frame from it on differs. `event_frame` is when the
    impossible change happened in the world (for `vanishes` it precedes `diverge_frame`: it is hidden)."""

    possible: np.ndarray
    impossible: np.ndarray
    kind: str
    diverge_frame: int
    event_frame: int
    fps: float
    ids_possible: np.ndarray | None = None
    ids_impossible: np.ndarray | None = None


def _size(size: int | tuple[int, int]) -> tuple[int, int]:
    height, width = (size, size) if isinstance(size, int) else size
    if height < 16 or width < 16:
        raise ConfigError(f"physics clips need at least 16x16 pixels, got {height}x{width}")
    return height, width


def _times(frames: int, fps: float) -> list[float]:
    if frames < 4:
        raise ConfigError(f"physics clips need at least 4 frames, got {frames}")
    world = max(frames / fps, MIN_WORLD_S)
    return [k * world / frames for k in range(frames)]


def _render(scene: Scene, state, rng: np.random.Generator, with_ids: bool):
    back = background(rng, scene.view, scene.room_width)
    radii = [b.r for b in scene.bodies]
    patterns = [b.pattern for b in scene.bodies]
    return render(state, radii, patterns, scene.view, back, scene.posts, scene.screens, with_ids=with_ids)


def generate_clip(
    index: int,
    *,
    seed: int = 0,
    frames: int = 16,
    size: int | tuple[int, int] = 64,
    fps: float | None = None,
    config: PhysicsConfig | None = None,
    with_ids: bool = False,
) -> PhysicsClip:
    """Clip `index` of the stream `seed`; events cycle through `config.events` so classes stay balanced."""
    config = config or PhysicsConfig()
    height, width = _size(size)
    fps = float(fps or config.fps)
    rng = np.random.default_rng([seed, _STREAM_CLIP, index])
    event = config.events[index % len(config.events)]
    view, room_width = make_view(rng, height, width)
    scene, state = build_event_scene(
        rng,
        event,
        view,
        room_width,
        _times(frames, fps),
        distractors=config.max_distractors,
        screens=config.max_screens,
    )
    clip, ids = _render(scene, state, rng, with_ids)
    track = np.array([view.to_px(x[0], y[0]) for x, y in zip(state.x, state.y, strict=True)], np.float32)
    return PhysicsClip(
        frames=clip,
        event=event,
        num_objects=len(scene.bodies),
        direction=direction(state),
        fps=fps,
        track=track,
        ids=ids,
        meta={"seed": seed, "index": index, "shape": scene.bodies[0].shape},
    )


def generate_voe_pair(
    index: int,
    *,
    seed: int = 0,
    frames: int = 16,
    size: int | tuple[int, int] = 64,
    fps: float | None = None,
    kind: str | None = None,
    config: PhysicsConfig | None = None,
    with_ids: bool = False,
    attempts: int = 50,
    diverge_after: int | None = None,
) -> VoEPair:
    """Pair `index` of the stream `seed`; kinds cycle through `config.voe_kinds` unless `kind` is given.

    `diverge_after`: the clips are identical in frames [0, diverge_after) at least (`diverge_frame >=
    diverge_after`): the violation's timing is drawn from then on and scenes are drawn again until the rendered
    pair complies. A model's context of those first frames is then the same for both clips, and only the future
    tells them apart (V-JEPA's protocol). None (default): any `diverge_frame` in [2, frames - 2]."""
    config = config or PhysicsConfig()
    height, width = _size(size)
    fps = float(fps or config.fps)
    kind = kind or config.voe_kinds[index % len(config.voe_kinds)]
    if kind not in VOE_KINDS:
        raise ConfigError(f"unknown violation {kind!r}; known: {', '.join(VOE_KINDS)}")
    if frames < 8:
        raise ConfigError(f"violation-of-expectation pairs need at least 8 frames, got {frames}")
    _check_diverge_after(diverge_after, frames)
    rng = np.random.default_rng([seed, _STREAM_VOE, index])
    times = _times(frames, fps)
    after = diverge_after or 0
    for _ in range(attempts):
        view, room_width = make_view(rng, height, width)
        built = build_voe_scene(
            rng, kind, view, room_width, times, distractors=config.max_distractors, earliest=after / frames
        )
        if built is None:
            continue
        scene, actions = built
        texture_seed = int(rng.integers(2**31))
        state_p, state_i = scene.simulate()[0], scene.simulate(actions)[0]
        if not voe_is_clear(kind, scene, state_p, state_i):
            continue
        possible, ids_p = _render(scene, state_p, np.random.default_rng(texture_seed), with_ids)
        impossible, ids_i = _render(scene, state_i, np.random.default_rng(texture_seed), with_ids)
        differs = (possible != impossible).reshape(frames, -1).any(axis=1)
        if not differs.any():
            continue
        first = int(np.argmax(differs))
        # A usable pair differs from `first` to the end, and shows a few identical frames before it.
        if max(2, after) <= first <= frames - 2 and differs[first:].all():
            return VoEPair(
                possible=possible,
                impossible=impossible,
                kind=kind,
                diverge_frame=first,
                event_frame=next(iter(actions)),
                fps=fps,
                ids_possible=ids_p,
                ids_impossible=ids_i,
            )
    if diverge_after is not None:
        raise ConfigError(
            f"could not build a {kind!r} pair diverging after frame {diverge_after} of {frames} in {attempts} attempts",
            hint=f"ask for an earlier divergence (diverge_after <= {frames // 2} works for every kind), or more frames",
        )
    raise RuntimeError(f"could not build a {kind!r} pair in {attempts} attempts")  # a generator bug


def _check_diverge_after(diverge_after: int | None, frames: int) -> None:
    if diverge_after is None:
        return
    if isinstance(diverge_after, bool) or not isinstance(diverge_after, int) or not 0 <= diverge_after <= frames - 2:
        raise ConfigError(
            f"diverge_after={diverge_after!r}: need an integer frame in [0, {frames - 2}] for {frames}-frame pairs "
            "(the clips differ in their last 2 frames at least), or None",
            hint=f"{frames // 2} keeps the first half of the frames identical",
        )


__all__ = [
    "DIRECTIONS",
    "EVENTS",
    "LABELS",
    "VOE_KINDS",
    "PhysicsClip",
    "PhysicsConfig",
    "VoEPair",
    "generate_clip",
    "generate_voe_pair",
]
