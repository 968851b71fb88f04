"""Draw a simulated scene: textured background, floor and walls, shaded objects, occluding screens.

Everything is numpy on float32 canvases; objects are drawn from signed distance functions with one pixel of
antialiasing, only inside their bounding boxes, so a 64 px clip of 16 frames renders in about a millisecond.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np

from vjepa_edge.data.physics.world import FrameState, Rect


@dataclass(frozen=True, slots=True)
class View:
    """The camera: world box [x0, x0 + h*W/H] x [y0, y0 + h] mapped onto an H x W image."""

    x0: float
    y0: float
    h: float
    height: int
    width: int

    @property
    def scale(self) -> float:  # pixels per metre
        return self.height / self.h

    def to_px(self, x: float, y: float) -> tuple[float, float]:
        return (x - self.x0) * self.scale, (self.y0 + self.h - y) * self.scale


def hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return int(r * 255), int(g * 255), int(b * 255)


def _interp_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Rows mix the two nearest of `n_in` grid values: a bilinear upsampling matrix [n_out, n_in]."""
    pos = np.linspace(0, n_in - 1, n_out)
    lo = np.floor(pos).astype(int).clip(0, n_in - 2) if n_in > 1 else np.zeros(n_out, int)
    frac = pos - lo
    m = np.zeros((n_out, n_in), np.float32)
    m[np.arange(n_out), lo] = 1 - frac
    if n_in > 1:
        m[np.arange(n_out), lo + 1] += frac
    return m


def _noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    grid = rng.random((cells, cells)).astype(np.float32)
    return _interp_matrix(height, cells) @ grid @ _interp_matrix(width, cells).T


def _pattern(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """A texture in [0, 1] over world coordinates: stripes, checks, tiles or nothing."""
    kind = rng.integers(4)
    freq = rng.uniform(4.0, 12.0)
    if kind == 0:
        theta = rng.uniform(0, math.pi)
        return 0.5 + 0.5 * np.sin(freq * (xx * math.cos(theta) + yy * math.sin(theta)) * 2)
    if kind == 1:
        return ((np.floor(xx * freq) + np.floor(yy * freq)) % 2).astype(np.float32)
    if kind == 2:
        return ((np.abs(np.sin(xx * freq * 2)) > 0.9) | (np.abs(np.sin(yy * freq * 2)) > 0.9)).astype(np.float32)
    return np.zeros_like(xx)


def background(rng: np.random.Generator, view: View, room_width: float) -> np.ndarray:
    """The static part of a clip: a textured back wall, a textured floor band and the two side walls."""
    height, width = view.height, view.width
    ys = view.y0 + view.h - (np.arange(height, dtype=np.float32) + 0.5) / view.scale
    xs = view.x0 + (np.arange(width, dtype=np.float32) + 0.5) / view.scale
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    out = np.empty((height, width, 3), np.float32)
    regions = (
        (yy >= 0, hsv(rng.random(), rng.uniform(0.05, 0.45), rng.uniform(0.55, 0.95))),  # back wall
        (yy < 0, hsv(rng.random(), rng.uniform(0.1, 0.6), rng.uniform(0.25, 0.6))),  # floor
        ((xx < 0) | (xx > room_width), hsv(rng.random(), rng.uniform(0.0, 0.4), rng.uniform(0.2, 0.5))),  # walls
    )
    for mask, base in regions:
        tex = 0.75 + 0.35 * _noise(rng, height, width, int(rng.integers(3, 9)))
        tex += rng.uniform(0.0, 0.25) * (_pattern(rng, yy, xx) - 0.5)
        out[mask] = (np.asarray(base, np.float32)[None, :] * tex[mask][:, None]).clip(0, 255)
    # A dark seam where the floor meets the back wall, so the floor line is visible on any texture.
    row = int(round(view.to_px(0.0, 0.0)[1]))
    if 0 <= row < height:
        out[max(0, row - 1) : row + 1] *= 0.6
    return out


def _blend(canvas: np.ndarray, ids: np.ndarray | None, alpha: np.ndarray, color: np.ndarray, box, value: int) -> None:
    y0, y1, x0, x1 = box
    region = canvas[y0:y1, x0:x1]
    region *= 1.0 - alpha[..., None]
    region += alpha[..., None] * color
    if ids is not None:
        ids[y0:y1, x0:x1][alpha > 0.5] = value


def _box(view: View, cx: float, cy: float, ext: float) -> tuple[int, int, int, int] | None:
    y0, y1 = max(0, int(cy - ext)), min(view.height, int(math.ceil(cy + ext)) + 1)
    x0, x1 = max(0, int(cx - ext)), min(view.width, int(math.ceil(cx + ext)) + 1)
    return None if y0 >= y1 or x0 >= x1 else (y0, y1, x0, x1)


def draw_body(
    canvas: np.ndarray,
    ids: np.ndarray | None,
    view: View,
    *,
    shape: str,
    r: float,
    x: float,
    y: float,
    angle: float,
    color: tuple[int, int, int],
    pattern: str,
    value: int,
) -> None:
    cx, cy = view.to_px(x, y)
    radius = r * view.scale
    box = _box(view, cx, cy, radius * (1.45 if shape == "square" else 1.0) + 1.5)
    if box is None:
        return
    y0, y1, x0, x1 = box
    lx = (np.arange(x0, x1, dtype=np.float32) + 0.5 - cx)[None, :]
    ly = -(np.arange(y0, y1, dtype=np.float32) + 0.5 - cy)[:, None]  # y up, like the world
    c, s = math.cos(angle), math.sin(angle)
    bx, by = lx * c + ly * s, -lx * s + ly * c  # body frame
    dist = np.sqrt(bx * bx + by * by)
    if shape == "circle":
        sdf = dist - radius
        shade = 1.1 - 0.4 * np.clip(dist / radius, 0, 1) ** 2 + 0.15 * np.clip((lx - ly) / radius, -1, 1) * -0.5
    else:
        qx, qy = np.abs(bx) - radius, np.abs(by) - radius
        sdf = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2) + np.minimum(np.maximum(qx, qy), 0)
        shade = 1.0 - 0.15 * np.clip(-ly / radius, -1, 1)
    alpha = np.clip(0.5 - sdf, 0.0, 1.0)
    if not alpha.any():
        return
    tone = shade
    if pattern == "stripe":
        tone = np.where(np.abs(bx) < 0.22 * radius, tone * 0.5, tone)
    elif pattern == "dot":
        tone = np.where((bx - 0.5 * radius) ** 2 + by * by < (0.28 * radius) ** 2, tone * 0.35, tone)
    tone = np.where(sdf > -1.0, tone * 0.45, tone)  # a dark outline keeps objects visible on any background
    rgb = np.asarray(color, np.float32)[None, None, :] * tone[..., None]
    _blend(canvas, ids, alpha, rgb.clip(0, 255), box, value)


def draw_rect(canvas: np.ndarray, ids: np.ndarray | None, view: View, rect: Rect, value: int) -> None:
    """A screen or post with vertical stripes in two colours and a dark frame."""
    px0, py1 = view.to_px(rect.x0, rect.y0)
    px1, py0 = view.to_px(rect.x1, rect.y1)
    y0, y1 = max(0, int(py0)), min(view.height, int(math.ceil(py1)))
    x0, x1 = max(0, int(px0)), min(view.width, int(math.ceil(px1)))
    if y0 >= y1 or x0 >= x1:
        return
    xs = np.arange(x0, x1, dtype=np.float32) + 0.5
    ys = np.arange(y0, y1, dtype=np.float32) + 0.5
    ax = np.clip(np.minimum(xs - px0, px1 - xs) + 0.5, 0, 1)
    ay = np.clip(np.minimum(ys - py0, py1 - ys) + 0.5, 0, 1)
    alpha = ay[:, None] * ax[None, :]
    stripes = (np.floor((xs - px0) / max(2.0, (px1 - px0) / 4)) % 2)[None, :]
    rgb = np.where(stripes[..., None] > 0, np.asarray(rect.color_a, np.float32), np.asarray(rect.color_b, np.float32))
    edge = (np.minimum(xs - px0, px1 - xs)[None, :] < 1.0) | (np.minimum(ys - py0, py1 - ys)[:, None] < 1.0)
    rgb = np.where(edge[..., None], rgb * 0.4, rgb)
    rgb = np.broadcast_to(rgb, (y1 - y0, x1 - x0, 3))
    _blend(canvas, ids, alpha, rgb, (y0, y1, x0, x1), value)


def render(
    state: FrameState,
    radii: list[float],
    patterns: list[str],
    view: View,
    back: np.ndarray,
    posts: list[Rect],
    screens: list[Rect],
    *,
    with_ids: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Frames uint8 [T, H, W, 3] and, with `with_ids`, per-pixel ids [T, H, W]: 0 background, i+1 body i,
    254 a post, 255 a screen."""
    num_frames = len(state.x)
    frames = np.empty((num_frames, view.height, view.width, 3), np.uint8)
    ids = np.zeros((num_frames, view.height, view.width), np.uint8) if with_ids else None
    for k in range(num_frames):
        canvas = back.copy()
        ids_k = ids[k] if ids is not None else None
        for post in posts:
            draw_rect(canvas, ids_k, view, post, 254)
        for i, r in enumerate(radii):
            if state.visible[k][i]:
                draw_body(
                    canvas,
                    ids_k,
                    view,
                    shape=state.shape[k][i],
                    r=r,
                    x=state.x[k][i],
                    y=state.y[k][i],
                    angle=state.angle[k][i],
                    color=state.color[k][i],
                    pattern=patterns[i],
                    value=i + 1,
                )
        for screen in screens:
            draw_rect(canvas, ids_k, view, screen, 255)
        frames[k] = canvas.clip(0, 255).astype(np.uint8)
    return frames, ids
