"""Scene builders: one per event class and one per violation of expectation.

A builder sets up bodies whose motion should show its event within the clip; the world is then simulated
and the event is checked against what the simulation recorded (an impact, a wall hit, a contact, the path).
A scene that fails its check is drawn again from the same random stream, so labels are true of the clip
and generation stays deterministic per seed.
"""

from __future__ import annotations

import colorsys
import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from vjepa_edge.data.physics.render import View, hsv
from vjepa_edge.data.physics.world import GRAVITY, REST_SPEED, Body, Events, FrameState, Rect, World

VIEW_H = 1.6  # metres of the room a camera at zoom 1 shows, floor band included
FLOOR_BAND = 0.2
WALL = 0.1
TOP = 1.25  # highest centre height a body may reach and stay in view
MIN_WORLD_S = 0.8  # clips shorter than this show 0.8 s of world time (fast forward), so every event fits

EVENTS = ("falls", "bounces", "rolls", "slides", "collides", "rebounds", "thrown")
DIRECTIONS = ("left", "right", "up", "down")
VOE_KINDS = ("vanishes", "teleports", "passes_through", "falls_upward", "changes_shape", "changes_colour")
MAX_OBJECTS = 4
SCREEN_BASE = FLOOR_BAND  # standing screens are at the front of the floor: their base is below the floor line
VANISH_LAG = 0.2  # a hidden ball reappears >= ~0.2 of the clip after the screen's centre time (measured: 16 frames)


@dataclass(slots=True)
class Scene:
    view: View
    room_width: float
    times: list[float]
    bodies: list[Body] = field(default_factory=list)
    posts: list[Rect] = field(default_factory=list)
    screens: list[Rect] = field(default_factory=list)

    def simulate(self, actions: dict[int, Callable[[World], None]] | None = None) -> tuple[FrameState, Events]:
        world = World(self.room_width, copy.deepcopy(self.bodies), list(self.posts))
        return world.run(self.times, actions=actions), world.events


def make_view(rng: np.random.Generator, height: int, width: int) -> tuple[View, float]:
    """A camera that always shows the floor and both side walls, zoomed out and shifted at random."""
    room_width = VIEW_H * width / height - 2 * WALL
    zoom = rng.uniform(1.0, 1.2)
    h = VIEW_H * zoom
    extra_x = h * width / height - (room_width + 2 * WALL)
    x0 = -WALL - rng.uniform(0, extra_x)
    y0 = -FLOOR_BAND - rng.uniform(0, h - VIEW_H)
    return View(x0=x0, y0=y0, h=h, height=height, width=width), room_width


def _body(rng: np.random.Generator, shape: str | None = None, **kw) -> Body:
    shape = shape or ("circle" if rng.random() < 0.6 else "square")
    pattern = kw.pop("pattern", None) or str(rng.choice(["stripe", "dot", "solid"]))
    color = hsv(rng.random(), rng.uniform(0.55, 1.0), rng.uniform(0.65, 1.0))
    r = kw.pop("r", None) or rng.uniform(0.08, 0.16)
    return Body(shape=shape, r=r, x=0.0, y=r, color=color, pattern=pattern, **kw)


def _low_drag(dur: float) -> float:
    """Drag shrinks for long clips, whose speeds are small, so a push still carries across the clip."""
    return min(1.0, 1.6 / dur) ** 2


def _sign(rng: np.random.Generator) -> float:
    return 1.0 if rng.random() < 0.5 else -1.0


def _start_for_run(rng: np.random.Generator, scene: Scene, b: Body, travel: float) -> float:
    """A start x from which a body moving `travel` metres (signed) stays clear of both walls."""
    lo, hi = b.r + 0.03, scene.room_width - b.r - 0.03
    lo, hi = (lo, hi - travel) if travel > 0 else (lo - travel, hi)
    return rng.uniform(lo, hi) if hi > lo else (lo + hi) / 2


# -- event builders: each adds body 0 (and body 1 for collides) --------------------------------------------
def _falls(rng, scene: Scene, dur: float) -> None:
    b = _body(rng, restitution=0.0)
    t_land = rng.uniform(0.3, 0.65) * dur
    b.y = min(b.r + 0.5 * GRAVITY * t_land**2, TOP)
    b.vx = rng.uniform(-0.05, 0.05)
    b.x = _start_for_run(rng, scene, b, b.vx * dur)
    scene.bodies.append(b)


def _bounces(rng, scene: Scene, dur: float) -> None:
    b = _body(rng, restitution=rng.uniform(0.6, 0.85))
    t_hit = rng.uniform(0.15, 0.45) * dur
    b.vy = rng.uniform(-0.5, 0.3)
    b.y = min(max(b.r - b.vy * t_hit + 0.5 * GRAVITY * t_hit**2, b.r + 0.15), TOP)
    b.vx = rng.uniform(-0.1, 0.1) * scene.room_width / dur
    b.x = _start_for_run(rng, scene, b, b.vx * dur)
    scene.bodies.append(b)


def _rolls(rng, scene: Scene, dur: float) -> None:
    b = _body(rng, "circle", pattern=str(rng.choice(["stripe", "dot"])))
    b.rolling *= _low_drag(dur)
    b.vx = _sign(rng) * rng.uniform(0.25, 0.5) * scene.room_width / dur
    b.x = _start_for_run(rng, scene, b, b.vx * dur)
    scene.bodies.append(b)


def _slides(rng, scene: Scene, dur: float) -> None:
    b = _body(rng, "square")
    t_stop = rng.uniform(0.45, 0.85) * dur
    dist = rng.uniform(0.25, 0.45) * scene.room_width
    speed = 2 * dist / t_stop
    b.friction = speed / (GRAVITY * t_stop)
    b.vx = _sign(rng) * speed
    b.x = _start_for_run(rng, scene, b, math.copysign(dist, b.vx))
    scene.bodies.append(b)


def _collides(rng, scene: Scene, dur: float) -> None:
    a, b = _body(rng, restitution=rng.uniform(0.5, 0.9)), _body(rng, restitution=rng.uniform(0.5, 0.9))
    for body in (a, b):
        body.friction, body.rolling = 0.01 * _low_drag(dur), body.rolling * _low_drag(dur)
    t_hit = rng.uniform(0.3, 0.55) * dur
    unit = scene.room_width / dur
    va = rng.uniform(0.2, 0.45) * unit
    vb = rng.uniform(0.0, 0.35) * unit if rng.random() < 0.6 else 0.0
    gap = (va + vb) * t_hit + a.r + b.r
    side = _sign(rng)  # +1: a starts on the left and moves right
    left_r, right_r = (a.r, b.r) if side > 0 else (b.r, a.r)
    lo, hi = left_r + 0.05, scene.room_width - right_r - 0.05 - gap
    left = rng.uniform(lo, hi) if hi > lo else lo
    a.x, b.x = (left, left + gap) if side > 0 else (left + gap, left)
    a.vx, b.vx = side * va, -side * vb
    scene.bodies += [a, b]


def _rebounds(rng, scene: Scene, dur: float) -> None:
    b = _body(rng, restitution=rng.uniform(0.5, 0.9))
    b.friction, b.rolling = 0.01 * _low_drag(dur), b.rolling * _low_drag(dur)
    t_hit = rng.uniform(0.3, 0.55) * dur
    speed = rng.uniform(0.3, 0.6) * scene.room_width / dur
    toward = _sign(rng)
    dist = min(speed * t_hit, scene.room_width - 2 * b.r - 0.05)
    b.vx = toward * speed
    b.x = scene.room_width - b.r - dist if toward > 0 else b.r + dist
    if rng.random() < 0.3:  # thrown at the wall through the air
        b.y = rng.uniform(0.5, TOP)
    scene.bodies.append(b)


def _thrown(rng, scene: Scene, dur: float) -> None:
    b = _body(rng, restitution=0.1)
    b.y = b.r + rng.uniform(0.0, 0.25)
    t_apex = min(rng.uniform(0.3, 0.5) * dur, math.sqrt(2 * (TOP - b.y) / GRAVITY))
    b.vy = GRAVITY * t_apex
    b.vx = _sign(rng) * rng.uniform(0.15, 0.4) * scene.room_width / dur
    b.omega = rng.uniform(-6, 6)
    b.x = _start_for_run(rng, scene, b, b.vx * dur)
    scene.bodies.append(b)


# -- checks: the event is in the simulated motion -----------------------------------------------------------
def _of(events: list, body: int) -> list:
    return [e for e in events if e[1] == body]


def _touches(events: Events, body: int) -> list:
    return [c for c in events.contact if body in c[1:]]


def _check(event: str, scene: Scene, state: FrameState, events: Events) -> bool:
    r = scene.bodies[0].r
    ys = [row[0] for row in state.y]
    xs = [row[0] for row in state.x]
    end = scene.times[-2] if len(scene.times) > 2 else scene.times[-1]
    if event != "collides" and _touches(events, 0):
        return False
    if event == "falls":
        hits = _of(events.floor, 0)
        return bool(hits) and hits[0][0] <= end and ys[0] - ys[-1] >= 2 * r and max(ys[-2:]) <= r + 1e-3
    if event == "bounces":
        rebound = [h for h in _of(events.floor, 0) if h[2] * scene.bodies[0].restitution > REST_SPEED]
        if not rebound or rebound[0][0] > end:
            return False
        after = [y for t, y in zip(scene.times, ys, strict=True) if t > rebound[0][0]]
        return bool(after) and max(after) - r >= 0.5 * r
    if event in ("rolls", "slides"):
        on_floor = all(abs(y - r) < 1e-6 for y in ys)
        stopped = event == "rolls" or abs(xs[-1] - xs[-2]) < 1e-9
        return on_floor and stopped and abs(xs[-1] - xs[0]) >= 2 * r and not _of(events.wall, 0)
    if event == "collides":
        return any(c[1:] == (0, 1) and scene.times[1] <= c[0] <= end for c in events.contact)
    if event == "rebounds":
        hits = _of(events.wall, 0)
        return bool(hits) and scene.times[1] <= hits[0][0] <= end
    if event == "thrown":
        top = int(np.argmax(ys))
        return 1 <= top <= len(ys) - 2 and ys[top] - ys[0] >= 2 * r and not _of(events.wall, 0)
    raise ValueError(event)


BUILDERS: dict[str, Callable] = {
    "falls": _falls,
    "bounces": _bounces,
    "rolls": _rolls,
    "slides": _slides,
    "collides": _collides,
    "rebounds": _rebounds,
    "thrown": _thrown,
}


# -- the rest of a scene: resting distractors and occluding screens -----------------------------------------
def add_distractors(rng, scene: Scene, count: int) -> bool:
    """Add `count` still objects clear of the boxes the moving bodies sweep: resting on the floor, or, when the
    floor is taken, fixed to the back wall (like a lamp). False if there is no room."""
    if count == 0:
        return True
    state, _ = scene.simulate()
    boxes = [
        (
            min(row[i] for row in state.x) - b.r,
            max(row[i] for row in state.x) + b.r,
            min(row[i] for row in state.y) - b.r,
            max(row[i] for row in state.y) + b.r,
        )
        for i, b in enumerate(scene.bodies)
    ]
    for _ in range(count):
        d = _body(rng, restitution=0.3, friction=0.5, r=rng.uniform(0.06, 0.12))
        for attempt in range(16):
            d.x = rng.uniform(d.r + 0.02, scene.room_width - d.r - 0.02)
            d.y = d.r if attempt < 8 else rng.uniform(0.4, TOP)
            box = (d.x - d.r - 0.03, d.x + d.r + 0.03, d.y - d.r - 0.03, d.y + d.r + 0.03)
            if all(box[1] < b[0] or box[0] > b[1] or box[3] < b[2] or box[2] > b[3] for b in boxes):
                d.dynamic = attempt < 8
                scene.bodies.append(d)
                boxes.append(box)
                break
        else:
            return False
    return True


def add_screens(rng, scene: Scene, count: int) -> None:
    for _ in range(count):
        w, h = rng.uniform(0.08, 0.25), rng.uniform(0.25, 0.8)
        x = rng.uniform(0.05, scene.room_width - 0.05 - w)
        y = -SCREEN_BASE if rng.random() < 0.6 else rng.uniform(0.3, 0.8)
        scene.screens.append(_screen(rng, x, x + w, y, y + h))


def _screen(rng, x0: float, x1: float, y0: float, y1: float) -> Rect:
    hue = rng.random()
    return Rect(x0, x1, y0, y1, hsv(hue, rng.uniform(0.2, 0.7), 0.8), hsv(hue + 0.1, rng.uniform(0.2, 0.7), 0.5))


def hidden(scene: Scene, state: FrameState, k: int, i: int) -> bool:
    """Body i is wholly behind a screen at frame k (a square counts by its circumscribed circle)."""
    b = scene.bodies[i]
    # Antialiasing and the outline reach about 1.5 px past the body's edge.
    ext = b.r * (math.sqrt(2) if state.shape[k][i] == "square" else 1.0) + 1.5 / scene.view.scale
    x, y = state.x[k][i], state.y[k][i]
    return any(s.x0 <= x - ext and x + ext <= s.x1 and s.y0 <= y - ext and y + ext <= s.y1 for s in scene.screens)


def direction(state: FrameState) -> str:
    """Where body 0 heads: the larger component of its displacement over the first quarter of the clip
    (over the whole clip a thrown object comes back down and a bounce ends where it began)."""
    quarter = max(1, len(state.x) // 4)
    dx = state.x[quarter][0] - state.x[0][0]
    dy = state.y[quarter][0] - state.y[0][0]
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "up" if dy > 0 else "down"


def build_event_scene(
    rng: np.random.Generator,
    event: str,
    view: View,
    room_width: float,
    times: list[float],
    *,
    distractors: int,
    screens: int,
    attempts: int = 50,
) -> tuple[Scene, FrameState]:
    dur = times[-1] + (times[1] - times[0] if len(times) > 1 else 0.0)
    movers = 2 if event == "collides" else 1
    count = int(rng.integers(0, min(distractors, MAX_OBJECTS - movers) + 1))  # drawn once: keeps counts even
    for _ in range(attempts):
        scene = Scene(view=view, room_width=room_width, times=times)
        BUILDERS[event](rng, scene, dur)
        if not add_distractors(rng, scene, count):
            continue
        add_screens(rng, scene, int(rng.integers(0, screens + 1)))
        state, events = scene.simulate()
        if not _check(event, scene, state, events):
            continue
        if sum(hidden(scene, state, k, 0) for k in range(len(times))) > 0.3 * len(times):
            continue
        if any(all(hidden(scene, state, k, i) for k in range(len(times))) for i in range(len(scene.bodies))):
            continue  # an object hidden for the whole clip would make `num_objects` untrue of what is seen
        return scene, state
    raise RuntimeError(f"could not build a {event!r} scene in {attempts} attempts")  # a generator bug


# -- violations of expectation ------------------------------------------------------------------------------
def _recolour(color: tuple[int, int, int], rng) -> tuple[int, int, int]:
    h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in color))
    return hsv(h + rng.uniform(0.3, 0.7), max(s, 0.6), max(v, 0.7))


def _later(u: float, lo: float, earliest: float) -> float:
    """A draw `u` from [lo, hi) (a fraction of the clip) moved later by as much as its range starts before
    `earliest`: the same spread, no earlier than `earliest` (unchanged when `earliest` is 0)."""
    return u + max(0.0, earliest - lo)


def build_voe_scene(
    rng: np.random.Generator,
    kind: str,
    view: View,
    room_width: float,
    times: list[float],
    *,
    distractors: int,
    earliest: float = 0.0,
) -> tuple[Scene, dict[int, Callable[[World], None]]] | None:
    """A scene and the actions that make its impossible twin, or None when this draw does not work out.
    `earliest` (a fraction of the clip): the violation's timing is drawn no earlier than that, so the twins can stay
    identical until then (the caller checks the rendered frames); 0 draws the default timing."""
    n = len(times)
    dur = times[-1] + (times[1] - times[0])
    scene = Scene(view=view, room_width=room_width, times=times)
    k = max(2, int(_later(rng.uniform(0.3, 0.55), 0.3, earliest) * n))
    if kind in ("vanishes", "passes_through", "teleports") or rng.random() < 0.5:
        _rolls(rng, scene, dur)
    else:
        _slides(rng, scene, dur)
    b = scene.bodies[0]
    if kind == "vanishes":
        # the ball reappears (where the twins differ) about VANISH_LAG of the clip after it reaches the screen
        t_mid = _later(rng.uniform(0.3, 0.5), 0.3, earliest - VANISH_LAG) * dur
        cx = b.x + b.vx * t_mid
        w = 2 * b.r + abs(b.vx) * (times[1] - times[0]) * 1.5 + 0.04 + 4 / view.scale
        scene.screens.append(_screen(rng, cx - w / 2, cx + w / 2, -SCREEN_BASE, 2 * b.r + rng.uniform(0.1, 0.4)))
        add_distractors(rng, scene, int(rng.integers(0, distractors + 1)))
        state, _ = scene.simulate()
        covered = [j for j in range(1, n - 2) if hidden(scene, state, j, 0)]
        if not covered:
            return None
        k = covered[0]
        action = _set(visible=False)
    elif kind == "passes_through":
        t_hit = _later(rng.uniform(0.3, 0.5), 0.3, earliest) * dur
        if earliest > 0:  # a late hit leaves the ghost little time to clear the post: a ball as fast as that needs
            need = (2 * b.r + 0.12) / (times[-1] - t_hit) + b.rolling * GRAVITY * dur
            if abs(b.vx) < need:
                b.vx = math.copysign(need, b.vx)
                b.x = _start_for_run(rng, scene, b, b.vx * dur)
        px = b.x + b.vx * t_hit + math.copysign(b.r, b.vx)
        pw = rng.uniform(0.04, 0.08)
        x0 = px if b.vx > 0 else px - pw
        scene.posts.append(
            Rect(x0, x0 + pw, 0.0, rng.uniform(0.35, 0.7), hsv(rng.random(), 0.3, 0.4), hsv(rng.random(), 0.3, 0.3))
        )
        b.restitution = rng.uniform(0.5, 0.9)
        k, action = 1, _set(ghost=True)
    elif kind == "teleports":
        offset = _sign(rng) * rng.uniform(0.25, 0.4) * room_width

        def action(world: World) -> None:
            body = world.bodies[0]
            body.x = min(max(body.x + offset, body.r), world.width - body.r)
    elif kind == "falls_upward":
        b.vx, b.y = rng.uniform(-0.1, 0.1), rng.uniform(0.6, 1.0)
        b.restitution = 0.3
        k, action = max(2, int(_later(rng.uniform(0.2, 0.4), 0.2, earliest) * n)), _set(gravity_sign=-1.0)
    elif kind == "changes_shape":
        action = _set(shape="square" if b.shape == "circle" else "circle")
    elif kind == "changes_colour":
        action = _set(color=_recolour(b.color, rng))
    else:
        raise ValueError(kind)
    if kind != "vanishes":
        add_distractors(rng, scene, int(rng.integers(0, distractors + 1)))
    return scene, {k: action}


def voe_is_clear(kind: str, scene: Scene, possible: FrameState, impossible: FrameState) -> bool:
    """The violation is plain by the last frame: the ghost is past the post, the hidden ball is back."""
    b = scene.bodies[0]
    if kind == "passes_through":
        post = scene.posts[0]
        start, end_p, end_i = possible.x[0][0], possible.x[-1][0], impossible.x[-1][0]
        if start < post.x0:
            return end_p + b.r < post.x0 and end_i - b.r > post.x1
        return end_p - b.r > post.x1 and end_i + b.r < post.x0
    if kind == "vanishes":
        return not hidden(scene, possible, len(possible.x) - 1, 0)
    return True


def _set(**changes) -> Callable[[World], None]:
    def action(world: World) -> None:
        for name, value in changes.items():
            setattr(world.bodies[0], name, value)

    return action
