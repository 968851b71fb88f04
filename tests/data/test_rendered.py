"""Physics clips rendered once: the store gives the generator's clips and labels, is checked, and is shared."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import vjepa_edge.data.rendered as rendered
from vjepa_edge.data.config import AugmentConfig, ClipSpec
from vjepa_edge.data.physics import generate_clip
from vjepa_edge.data.sources import PhysicsDataset

SPEC = ClipSpec(frames=8, size=32, fps=8.0, frame_step=None)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VJEPA_EDGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(rendered, "_verified", set())


def test_store_holds_the_generators_clips_and_labels():
    ds = PhysicsDataset(SPEC, length=20, seed=3, split="val").render()
    for i in (0, 7, 19):
        c = generate_clip(i, seed=ds.clip_seed(), frames=8, size=32, fps=8.0)
        assert np.array_equal(ds.store.frames(i), c.frames)
        lab = c.labels()
        assert ds.store.labels(i) == (lab["event"], lab["num_objects"], lab["direction"])


def test_training_items_match_rendering_on_the_fly_flips_included():
    aug = AugmentConfig(hflip=0.5)
    live = PhysicsDataset(SPEC, length=24, train=True, augment=aug)
    stored = PhysicsDataset(SPEC, length=24, train=True, augment=aug).render()
    for ds in (live, stored):
        ds.set_epoch(2)
    for i in range(24):
        a, b = live[i], stored[i]
        assert torch.equal(a["clip"], b["clip"])
        assert a["labels"] == b["labels"]


def test_rendered_items_never_call_the_generator(monkeypatch):
    ds = PhysicsDataset(SPEC, length=8).render()

    def boom(*args, **kwargs):
        raise AssertionError("rendered again")

    monkeypatch.setattr("vjepa_edge.data.sources.generate_clip", boom)
    assert ds[5]["clip"].shape == (3, 8, 32, 32)
    again = PhysicsDataset(SPEC, length=8).render()  # a second dataset finds the store
    assert again.store.path == ds.store.path


def test_a_smaller_request_reuses_a_larger_store_and_a_larger_one_replaces_it():
    big = PhysicsDataset(SPEC, length=16).render()
    small = PhysicsDataset(SPEC, length=4).render()
    assert small.store.path == big.store.path and small.store.count == 16
    bigger = PhysicsDataset(SPEC, length=32).render()
    assert bigger.store.count == 32 and not big.store.path.exists()
    other = PhysicsDataset(ClipSpec(frames=8, size=32, fps=4.0, frame_step=None), length=4).render()
    assert other.store.path != bigger.store.path  # another fps is another stream


def test_a_damaged_store_is_rendered_again(monkeypatch):
    ds = PhysicsDataset(SPEC, length=8).render()
    path = ds.store.path / "frames.npy"
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    monkeypatch.setattr(rendered, "_verified", set())  # a new process checks the hashes again
    again = PhysicsDataset(SPEC, length=8).render()
    c = generate_clip(7, seed=again.clip_seed(), frames=8, size=32, fps=8.0)
    assert np.array_equal(again.store.frames(7), c.frames)


def test_store_files_follow_the_umask():
    ds = PhysicsDataset(SPEC, length=4).render()
    for f in ("frames.npy", "labels.npy", "manifest.json"):
        assert (ds.store.path / f).stat().st_mode & 0o044 == 0o044
