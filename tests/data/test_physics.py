"""The physics generator: determinism, sizes, labels that are true of the rendered pixels, VoE pairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vjepa_edge.data.config import ClipSpec
from vjepa_edge.data.physics import EVENTS, LABELS, VOE_KINDS, PhysicsConfig, generate_clip, generate_voe_pair
from vjepa_edge.data.sources import PhysicsDataset
from vjepa_edge.errors import ConfigError

SIZE = 96  # large enough that pixel centroids are precise


def _clip(event: str, n: int, **kw):
    """The n-th clip of `event` (events cycle through EVENTS by index)."""
    return generate_clip(EVENTS.index(event) + n * len(EVENTS), size=SIZE, with_ids=True, **kw)


def _centroids(ids: np.ndarray, body: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centroid (x, y-down) of a body per frame, from the rendered id map, and whether it is fully in
    sight (at least 90% of its largest pixel count, so a screen does not bias the centroid)."""
    mask = ids == body
    area = mask.reshape(len(ids), -1).sum(1)
    ys, xs = np.mgrid[: ids.shape[1], : ids.shape[2]]
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = (mask * xs).reshape(len(ids), -1).sum(1) / area
        cy = (mask * ys).reshape(len(ids), -1).sum(1) / area
    return np.stack([cx, cy], 1), area >= 0.9 * area.max()


def test_same_seed_same_clip_other_seed_other_clip():
    a, b = generate_clip(5, seed=3), generate_clip(5, seed=3)
    assert np.array_equal(a.frames, b.frames) and a.event == b.event and a.direction == b.direction
    assert not np.array_equal(a.frames, generate_clip(5, seed=4).frames)
    assert not np.array_equal(a.frames, generate_clip(12, seed=3).frames)  # same event, next index
    p, q = generate_voe_pair(2, seed=1), generate_voe_pair(2, seed=1)
    assert np.array_equal(p.impossible, q.impossible) and p.diverge_frame == q.diverge_frame


@pytest.mark.parametrize("frames,size,fps", [(16, 64, None), (8, 32, 30.0), (32, (48, 80), 15.0), (4, 16, 4.0)])
def test_any_resolution_frame_count_and_fps(frames, size, fps):
    c = generate_clip(3, frames=frames, size=size, fps=fps)
    h, w = (size, size) if isinstance(size, int) else size
    assert c.frames.shape == (frames, h, w, 3) and c.frames.dtype == np.uint8
    assert c.fps == (fps or PhysicsConfig().fps)
    assert c.frames.std() > 5  # textured, not blank


def test_events_are_balanced_and_every_label_value_occurs():
    clips = [generate_clip(i, size=16) for i in range(56)]
    assert [c.event for c in clips[: len(EVENTS)]] == list(EVENTS)
    for name, values in LABELS.items():
        seen = {getattr(c, name) if name != "num_objects" else str(c.num_objects) for c in clips}
        assert seen == set(values), name


@pytest.mark.parametrize("n", range(3))
def test_falls_moves_down_and_stays_down(n):
    c = _clip("falls", n)
    xy, seen = _centroids(c.ids)
    assert c.direction == "down"
    first, last = np.flatnonzero(seen)[[0, -1]]
    assert xy[last, 1] - xy[first, 1] > 3  # pixels, y grows downward
    assert abs(xy[-1, 1] - xy[-2, 1]) < 0.5  # landed without bouncing


@pytest.mark.parametrize("n", range(3))
def test_bounces_goes_down_then_up(n):
    y = _centroids(_clip("bounces", n).ids)[0][:, 1]
    rises = [k for k in range(len(y) - 1) if y[k + 1] < y[k] - 1.5 and y[k] > y[0] + 3]
    assert rises  # after falling (y grows downward) it moves up again


@pytest.mark.parametrize("n", range(3))
def test_thrown_goes_up_then_down(n):
    c = _clip("thrown", n)
    y = _centroids(c.ids)[0][:, 1]
    top = int(np.nanargmin(y))
    assert 0 < top < len(y) - 1 and y[0] - y[top] > 3 and y[-1] > y[top] + 1
    assert c.direction == "up"


@pytest.mark.parametrize("event", ["rolls", "slides"])
def test_rolls_and_slides_move_along_the_floor(event):
    for n in range(3):
        c = _clip(event, n)
        xy, seen = _centroids(c.ids)
        xs, ys = xy[seen, 0], xy[seen, 1]
        assert np.ptp(ys) < 0.75  # stays on the floor
        assert abs(xs[-1] - xs[0]) > 3
        assert c.direction == ("right" if xs[-1] > xs[0] else "left")
        if event == "slides":
            assert np.allclose(c.track[-1], c.track[-2])  # friction has stopped it
            assert np.array_equal(c.ids[-1] == 1, c.ids[-2] == 1)


def test_rolling_ball_turns():
    """A rolling ball's texture rotates: its pixels change even where it overlaps itself."""
    for n in range(3):
        c = _clip("rolls", n)
        assert c.meta["shape"] == "circle"
        diffs = []
        for k in range(len(c.frames) - 1):
            a, b = c.ids[k] == 1, c.ids[k + 1] == 1
            ya, xa = np.argwhere(a).mean(0).round().astype(int)
            yb, xb = np.argwhere(b).mean(0).round().astype(int)
            pa = c.frames[k, ya - 2 : ya + 3, xa - 2 : xa + 3].astype(int)
            pb = c.frames[k + 1, yb - 2 : yb + 3, xb - 2 : xb + 3].astype(int)
            diffs.append(np.abs(pa - pb).mean())
        assert max(diffs) > 5


@pytest.mark.parametrize("n", range(3))
def test_collides_brings_two_objects_into_contact(n):
    c = _clip("collides", n)
    assert c.num_objects >= 2
    gaps = []
    for k in range(len(c.ids)):
        a, b = np.argwhere(c.ids[k] == 1), np.argwhere(c.ids[k] == 2)
        if len(a) and len(b):
            gaps.append(np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)).min())
    assert min(gaps) <= 1.5  # touching pixels (the outline of one against the other)


@pytest.mark.parametrize("n", range(3))
def test_rebounds_reverses_at_a_wall(n):
    x = _centroids(_clip("rebounds", n).ids)[0][:, 0]
    dx = np.diff(x)
    moving = dx[np.abs(dx) > 0.3]
    assert (moving > 0).any() and (moving < 0).any()  # heads one way, then back


def test_num_objects_matches_the_ids_on_screen():
    for i in range(21):
        c = generate_clip(i, size=SIZE, with_ids=True)
        bodies = {int(v) for v in np.unique(c.ids) if 0 < v < 254}
        assert bodies == set(range(1, c.num_objects + 1)), c.event


@pytest.mark.parametrize("kind", VOE_KINDS)
def test_voe_pair_same_until_diverge_then_different(kind):
    for n in range(2):
        p = generate_voe_pair(n, kind=kind, size=SIZE, with_ids=True)
        d = p.diverge_frame
        assert 2 <= d <= len(p.possible) - 2
        assert np.array_equal(p.possible[:d], p.impossible[:d])
        assert all((p.possible[k] != p.impossible[k]).any() for k in range(d, len(p.possible)))
        _check_violation(p)


def _check_violation(p):
    """The impossible clip shows what its kind says, read from the rendered ids and pixels."""
    d, ip, ii = p.diverge_frame, p.ids_possible, p.ids_impossible
    xy_p, seen_p = _centroids(ip)
    xy_i, seen_i = _centroids(ii)
    if p.kind == "vanishes":
        assert (ip[-1] == 1).any()  # it comes back (at `d` only its antialiased edge may show)...
        assert not (ii[d:] == 1).any()  # ...but not in the impossible clip
        assert p.event_frame < d  # it vanished while hidden
    elif p.kind == "teleports":
        assert np.abs(xy_i[d, 0] - xy_p[d, 0]) > 5
        assert np.abs(xy_p[d, 0] - xy_p[d - 1, 0]) < np.abs(xy_i[d, 0] - xy_i[d - 1, 0])
    elif p.kind == "passes_through":
        post = np.argwhere((ip[0] == 254).any(0)).ravel()
        start = xy_p[0, 0]
        side = np.sign(post.mean() - start)
        assert np.sign(xy_p[-1, 0] - post.mean()) == -side  # the possible ball bounced back
        assert np.sign(xy_i[-1, 0] - post.mean()) == side  # the impossible one went through
    elif p.kind == "falls_upward":
        assert xy_p[-1, 1] > xy_p[d - 1, 1]  # keeps falling (y grows downward)
        gone = ~(ii[-1] == 1).any()
        assert gone or xy_i[-1, 1] < xy_i[d, 1] - 1  # rises, or has left the top of the picture
    elif p.kind == "changes_shape":
        area_p = (ip[d:] == 1).reshape(len(ip) - d, -1).sum(1)
        area_i = (ii[d:] == 1).reshape(len(ii) - d, -1).sum(1)
        both = seen_p[d:] & seen_i[d:]
        ratio = area_i[both] / area_p[both]
        assert (np.abs(ratio - 1) > 0.15).all()  # circle pi r^2 against square 4 r^2
    elif p.kind == "changes_colour":
        k = len(ip) - 1
        col_p = p.possible[k][ip[k] == 1].mean(0)
        col_i = p.impossible[k][ii[k] == 1].mean(0)
        assert np.abs(col_p - col_i).max() > 30


def test_voe_needs_eight_frames():
    with pytest.raises(ConfigError, match="at least 8 frames"):
        generate_voe_pair(0, frames=4)


def test_config_reports_every_problem():
    with pytest.raises(ConfigError) as e:
        PhysicsConfig(events=("fals",), fps=0, max_screens=9)
    assert len(e.value.problems) == 3 and "did you mean 'falls'" in str(e.value)


def test_dataset_items_labels_and_flip():
    spec = ClipSpec(frames=8, size=32)
    train = PhysicsDataset(spec, length=64, train=True, seed=1)
    item = train[2]
    assert item["clip"].shape == (3, 8, 32, 32) and item["clip"].dtype == torch.float32
    assert item["label"] == EVENTS.index("rolls") and item["skipped"] == []
    assert torch.equal(train[2]["clip"], item["clip"])  # a pure function of (seed, epoch, index)
    raw = generate_clip(2, seed=train.clip_seed(), frames=8, size=32)
    flips = 0
    for epoch in range(8):
        train.set_epoch(epoch)
        it = train[2]
        flipped = it["labels"]["direction"] != LABELS["direction"].index(raw.direction)
        flips += flipped
        if flipped:  # a flipped clip has a mirrored direction label
            assert {LABELS["direction"][it["labels"]["direction"]], raw.direction} == {"left", "right"}
    assert 0 < flips < 8
    val = PhysicsDataset(spec, length=64, split="val", seed=1)
    assert not torch.equal(val[2]["clip"], PhysicsDataset(spec, length=64, seed=1)[2]["clip"])


@pytest.mark.parametrize("frames,fps", [(64, 30.0), (8, 4.0), (16, 2.0)])
def test_labels_hold_at_other_frame_counts_and_rates(frames, fps):
    """Scenes adapt to the clip's duration (0.5 s to 8 s here): the event still shows in the pixels."""
    falls = _clip("falls", 0, frames=frames, fps=fps)
    xy, seen = _centroids(falls.ids)
    first, last = np.flatnonzero(seen)[[0, -1]]
    assert xy[last, 1] - xy[first, 1] > 3
    thrown = _clip("thrown", 0, frames=frames, fps=fps)
    y = _centroids(thrown.ids)[0][:, 1]
    top = int(np.nanargmin(y))
    assert 0 < top < len(y) - 1 and y[0] - y[top] > 3
    x = _centroids(_clip("rebounds", 0, frames=frames, fps=fps).ids)[0][:, 0]
    moving = np.diff(x)[np.abs(np.diff(x)) > 0.2]
    assert (moving > 0).any() and (moving < 0).any()
    p = generate_voe_pair(0, kind="passes_through", frames=frames, fps=fps, size=SIZE)
    assert np.array_equal(p.possible[: p.diverge_frame], p.impossible[: p.diverge_frame])
