"""A small 2-D rigid-body world: gravity, floor, side walls, posts, circle contacts, rolling and sliding.

Units are metres and seconds; y points up and the floor is y = 0. Bodies collide as circles of radius `r`
(squares use their half-size), which keeps contacts exact for balls and close enough for boxes. The world
records what happened (floor impacts, wall hits, body contacts) so a scene's label is checked against the
simulated motion rather than assumed from its set-up.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

GRAVITY = 9.81
REST_SPEED = 0.05  # a rebound slower than this (m/s) comes to rest: no endless micro-bounces
ROLLING_RESISTANCE = 0.005  # deceleration of a rolling ball, in g


@dataclass(slots=True)
class Body:
    """One object. `shape` is "circle" or "square"; `r` is the radius or half-size in metres."""

    shape: str
    r: float
    x: float
    y: float
    vx: float = 0.0
    vy: float = 0.0
    angle: float = 0.0
    omega: float = 0.0
    color: tuple[int, int, int] = (200, 60, 60)
    pattern: str = "stripe"
    restitution: float = 0.5
    friction: float = 0.3  # kinetic friction coefficient when a square slides on the floor
    rolling: float = ROLLING_RESISTANCE  # rolling resistance of a ball, in g
    dynamic: bool = True
    visible: bool = True
    ghost: bool = False  # passes through posts (a violation-of-expectation mode)
    gravity_sign: float = 1.0  # -1 makes a body fall upward (a violation-of-expectation mode)

    @property
    def mass(self) -> float:
        return self.r * self.r if self.dynamic else math.inf

    def on_floor(self) -> bool:
        return self.y - self.r <= 1e-6 and abs(self.vy) <= 1e-9


@dataclass(frozen=True, slots=True)
class Rect:
    """An axis-aligned rectangle in world units: a post that bodies bounce off, or an occluding screen."""

    x0: float
    x1: float
    y0: float
    y1: float
    color_a: tuple[int, int, int] = (90, 90, 90)
    color_b: tuple[int, int, int] = (140, 140, 140)


@dataclass(slots=True)
class Events:
    """What the simulation did, with times in seconds: (time, body, speed) and (time, i, j). Scene checks read
    these; a post hit needs no record (the pass-through check reads positions)."""

    floor: list[tuple[float, int, float]] = field(default_factory=list)
    wall: list[tuple[float, int, float]] = field(default_factory=list)
    contact: list[tuple[float, int, int]] = field(default_factory=list)


@dataclass(slots=True)
class FrameState:
    """The drawable state of every body at the frame times: lists indexed [frame][body]."""

    x: list[list[float]]
    y: list[list[float]]
    angle: list[list[float]]
    shape: list[list[str]]
    color: list[list[tuple[int, int, int]]]
    visible: list[list[bool]]


@dataclass(slots=True)
class World:
    width: float
    bodies: list[Body]
    posts: list[Rect] = field(default_factory=list)
    gravity: float = GRAVITY
    events: Events = field(default_factory=Events)

    # -- contacts -------------------------------------------------------------------------------------------
    def _floor_and_walls(self, i: int, b: Body, t: float) -> None:
        if b.y - b.r < 0.0:
            b.y = b.r
            if b.vy < 0.0:
                impact = -b.vy
                b.vy = impact * b.restitution if impact * b.restitution > REST_SPEED else 0.0
                if impact > 2 * REST_SPEED:
                    self.events.floor.append((t, i, impact))
        for side, limit in ((-1.0, b.r), (1.0, self.width - b.r)):
            if side * (b.x - limit) > 0.0:
                b.x = limit
                if side * b.vx > 0.0:
                    self.events.wall.append((t, i, abs(b.vx)))
                    b.vx = -b.vx * b.restitution
        if not b.ghost:
            for post in self.posts:
                self._post(b, post)

    def _post(self, b: Body, p: Rect) -> None:
        cx = min(max(b.x, p.x0), p.x1)
        cy = min(max(b.y, p.y0), p.y1)
        dx, dy = b.x - cx, b.y - cy
        d2 = dx * dx + dy * dy
        if d2 >= b.r * b.r:
            return
        d = math.sqrt(d2)
        if d < 1e-9:  # centre inside the post: push out sideways, the shortest way
            nx, ny, d = (-1.0 if b.x < (p.x0 + p.x1) / 2 else 1.0), 0.0, 0.0
        else:
            nx, ny = dx / d, dy / d
        b.x += nx * (b.r - d)
        b.y += ny * (b.r - d)
        vn = b.vx * nx + b.vy * ny
        if vn < 0.0:
            b.vx -= (1.0 + b.restitution) * vn * nx
            b.vy -= (1.0 + b.restitution) * vn * ny

    def _pair(self, i: int, j: int, t: float) -> None:
        a, b = self.bodies[i], self.bodies[j]
        dx, dy = b.x - a.x, b.y - a.y
        dist = math.hypot(dx, dy)
        if dist >= a.r + b.r or dist < 1e-9:
            return
        nx, ny = dx / dist, dy / dist
        inv_a = 0.0 if not a.dynamic else 1.0 / a.mass
        inv_b = 0.0 if not b.dynamic else 1.0 / b.mass
        if inv_a + inv_b == 0.0:
            return
        overlap = a.r + b.r - dist
        a.x -= nx * overlap * inv_a / (inv_a + inv_b)
        a.y -= ny * overlap * inv_a / (inv_a + inv_b)
        b.x += nx * overlap * inv_b / (inv_a + inv_b)
        b.y += ny * overlap * inv_b / (inv_a + inv_b)
        vn = (b.vx - a.vx) * nx + (b.vy - a.vy) * ny
        if vn < 0.0:
            e = min(a.restitution, b.restitution)
            impulse = -(1.0 + e) * vn / (inv_a + inv_b)
            a.vx -= impulse * inv_a * nx
            a.vy -= impulse * inv_a * ny
            b.vx += impulse * inv_b * nx
            b.vy += impulse * inv_b * ny
            if -vn > 0.01:  # slow pushes of long clips count too; resting contact does not
                self.events.contact.append((t, i, j))

    # -- integration ----------------------------------------------------------------------------------------
    def step(self, t: float, dt: float) -> None:
        for i, b in enumerate(self.bodies):
            if not b.dynamic:
                continue
            resting = b.on_floor() and b.gravity_sign > 0
            if not resting:
                b.vy -= b.gravity_sign * self.gravity * dt
            if resting or b.y - b.r <= 1e-6:
                if b.shape == "circle":
                    decel = b.rolling * self.gravity * dt
                    b.vx = 0.0 if abs(b.vx) <= decel else b.vx - math.copysign(decel, b.vx)
                    b.omega = -b.vx / b.r  # rolling without slipping
                else:
                    decel = b.friction * self.gravity * dt
                    b.vx = 0.0 if abs(b.vx) <= decel else b.vx - math.copysign(decel, b.vx)
                    b.omega = 0.0
            b.x += b.vx * dt
            b.y += b.vy * dt
            b.angle += b.omega * dt
            self._floor_and_walls(i, b, t)
        n = len(self.bodies)
        for i in range(n):
            if not self.bodies[i].visible:
                continue
            for j in range(i + 1, n):
                if self.bodies[j].visible:
                    self._pair(i, j, t)

    def run(
        self,
        times: list[float],
        *,
        rate_hz: float = 120.0,
        actions: dict[int, Callable[[World], None]] | None = None,
    ) -> FrameState:
        """Simulate to each frame time and record the drawable state; `actions[k]` runs just before frame k."""
        state = FrameState([], [], [], [], [], [])
        t = 0.0
        actions = actions or {}
        for k, t_frame in enumerate(times):
            while t < t_frame - 1e-9:
                dt = min(1.0 / rate_hz, t_frame - t)
                t += dt
                self.step(t, dt)
            if k in actions:
                actions[k](self)
            state.x.append([b.x for b in self.bodies])
            state.y.append([b.y for b in self.bodies])
            state.angle.append([b.angle for b in self.bodies])
            state.shape.append([b.shape for b in self.bodies])
            state.color.append([b.color for b in self.bodies])
            state.visible.append([b.visible for b in self.bodies])
        return state
