"""The teacher-feature cache: exact features per (view, clip), workers, corruption, resume, views, sizes."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from vjepa_edge.data import AugmentConfig, ClipSpec, PhysicsDataset
from vjepa_edge.distill.cache import (
    CachedTeacherDataset,
    CacheKey,
    FeatureCache,
    build_cache,
    collate_with_teacher,
    state_dict_digest,
)
from vjepa_edge.errors import CacheError, ConfigError
from vjepa_edge.models.arch import EncoderArch
from vjepa_edge.models.vit import VisionTransformer

CLIPS = 12
ARCH = EncoderArch(
    embed_dim=48, depth=1, num_heads=3, mlp_hidden=96, patch_size=8, num_frames=4, img_size=32, pos="sincos"
)


@pytest.fixture(scope="module")
def teacher() -> VisionTransformer:
    torch.manual_seed(0)
    return VisionTransformer(ARCH).eval()


def dataset(augment: bool = True) -> PhysicsDataset:
    return PhysicsDataset(ClipSpec(frames=4, size=32), length=CLIPS, train=augment, augment=AugmentConfig())


def key_for(ds: PhysicsDataset, model: VisionTransformer, views: int = 2) -> CacheKey:
    digest = state_dict_digest(model.state_dict())
    return CacheKey.for_dataset(ds, teacher=digest, source="physics", views=views, grid=ARCH.grid, dim=ARCH.embed_dim)


class Counting:
    """An encode callback that counts its calls and items and can fail on call `fail_on` (1-based)."""

    def __init__(self, model: VisionTransformer, fail_on: int | None = None) -> None:
        self.model, self.fail_on, self.calls, self.items = model, fail_on, 0, 0

    def __call__(self, clips: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.fail_on:
            raise KeyboardInterrupt("killed")
        self.items += len(clips)
        return self.model(clips)


def fresh(model: VisionTransformer, ds: PhysicsDataset, view: int, index: int) -> torch.Tensor:
    ds.set_epoch(view)
    with torch.no_grad():
        return model(ds[index]["clip"][None])[0]


def test_key_round_trip_and_validation(teacher) -> None:
    key = key_for(dataset(), teacher)
    again = CacheKey.from_dict(json.loads(json.dumps(key.to_dict())))
    assert again == key and again.digest() == key.digest() and len(key.digest()) == 16
    assert key.item_shape == (32, 48) and key.num_items == 2 * CLIPS
    assert CacheKey.for_dataset(dataset(augment=False), teacher="t", source="physics", views=1, grid=(2, 4, 4), dim=48)
    with pytest.raises(ConfigError) as e:
        CacheKey.from_dict(key.to_dict() | {"views": 0, "grid": [2, 4], "dtype": "float32"})
    assert len(e.value.problems) == 3
    assert key_for(dataset(), teacher, views=3).digest() != key.digest()


def test_features_match_the_teacher_per_view_and_clip(teacher, tmp_path: Path) -> None:
    ds, key = dataset(), key_for(dataset(), teacher)
    ticks: list[int] = []
    # shards of 5 items cross view boundaries and split batches of 4
    cache = build_cache(
        teacher, ds, key, tmp_path, batch_size=4, shard_size=5, progress=lambda advance: ticks.append(advance)
    )
    assert sum(ticks) == len(cache) == 2 * CLIPS and cache.path == tmp_path / key.digest()
    ref = dataset()
    for view in range(2):
        for i in range(CLIPS):
            got = cache[view * CLIPS + i]
            assert got.dtype == torch.float16 and got.shape == (32, 48)
            torch.testing.assert_close(got.float(), fresh(teacher, ref, view, i), atol=1e-3, rtol=1e-3)
    batch = cache.features(1, [3, 0, 11])
    assert torch.equal(batch, torch.stack([cache[CLIPS + 3], cache[CLIPS], cache[2 * CLIPS - 1]]))
    # views are different augmentations of the same clips, so their features differ
    for i in range(CLIPS):
        assert not torch.equal(cache[i], cache[CLIPS + i])
    files = sorted(cache.path.glob("shard_*.npy"))
    assert len(files) == 5 and cache.nbytes == sum(f.stat().st_size for f in files)
    assert all(isinstance(np.load(f, mmap_mode="r"), np.memmap) for f in files)
    opened = FeatureCache.open(tmp_path, key)
    assert opened is not None and torch.equal(opened[7], cache[7])


def test_dataset_with_workers(teacher, tmp_path: Path) -> None:
    key = key_for(dataset(), teacher)
    cache = build_cache(teacher, dataset(), key, tmp_path, batch_size=6)
    cached = CachedTeacherDataset(dataset(), cache)
    ref = dataset()
    for epoch in (0, 3):  # epoch 3 reads view 1
        cached.set_epoch(epoch)
        loader = DataLoader(cached, batch_size=5, num_workers=2, collate_fn=collate_with_teacher)
        seen = 0
        for batch in loader:
            for j, i in enumerate(batch["index"].tolist()):
                ref.set_epoch(epoch % 2)
                assert torch.equal(batch["clip"][j], ref[i]["clip"])
                torch.testing.assert_close(
                    batch["teacher"][j].float(), fresh(teacher, ref, epoch % 2, i), atol=1e-3, rtol=1e-3
                )
                seen += 1
        assert seen == CLIPS
    _ = cached[0]  # maps are open now; a pickled copy must not carry them
    copy = pickle.loads(pickle.dumps(cached))
    assert all(a is None for a in copy.cache._arrays) and torch.equal(copy[5]["teacher"], cached[5]["teacher"])


def test_corrupt_shard_is_named(teacher, tmp_path: Path) -> None:
    key = key_for(dataset(), teacher)
    cache = build_cache(teacher, dataset(), key, tmp_path, batch_size=4, shard_size=8)
    shard = cache.path / "shard_00001.npy"
    data = bytearray(shard.read_bytes())
    data[-100] ^= 0x01
    shard.write_bytes(bytes(data))
    with pytest.raises(CacheError, match="shard_00001.npy") as e:
        FeatureCache.open(tmp_path, key)
    assert "rebuild" in e.value.hint and str(cache.path) in e.value.hint
    assert FeatureCache.open(tmp_path, key, verify=False) is not None
    shard.write_bytes(bytes(data[:-10]))  # truncated
    with pytest.raises(CacheError, match="truncated"):
        FeatureCache.open(tmp_path, key)
    # a build recomputes the bad shard and what follows it; rebuild=True discards everything
    counting = Counting(teacher)
    build_cache(counting, dataset(), key, tmp_path, batch_size=4, shard_size=8)
    assert counting.items == 2 * CLIPS - 8 and FeatureCache.open(tmp_path, key) is not None
    counting = Counting(teacher)
    build_cache(counting, dataset(), key, tmp_path, batch_size=4, rebuild=True)
    assert counting.items == 2 * CLIPS


def test_interrupted_build_resumes(teacher, tmp_path: Path) -> None:
    key = key_for(dataset(), teacher)
    whole = build_cache(teacher, dataset(), key, tmp_path / "whole", batch_size=4, shard_size=8)
    with pytest.raises(KeyboardInterrupt):  # killed during the 5th batch: two shards of 8 are on disk
        build_cache(Counting(teacher, fail_on=5), dataset(), key, tmp_path / "cut", batch_size=4, shard_size=8)
    assert FeatureCache.open(tmp_path / "cut", key) is None  # incomplete
    manifest = json.loads((tmp_path / "cut" / key.digest() / "manifest.json").read_text())
    assert [s["file"] for s in manifest["shards"]] == ["shard_00000.npy", "shard_00001.npy"]
    counting = Counting(teacher)
    resumed = build_cache(counting, dataset(), key, tmp_path / "cut", batch_size=4, shard_size=8)
    assert (counting.calls, counting.items) == (2, 2 * CLIPS - 16)
    assert [s["sha256"] for s in resumed.shards] == [s["sha256"] for s in whole.shards]
    assert torch.equal(resumed.features(1, range(CLIPS)), whole.features(1, range(CLIPS)))
    again = Counting(teacher)
    build_cache(again, dataset(), key, tmp_path / "cut", batch_size=4)
    assert again.calls == 0


def test_mismatches_are_clear(teacher, tmp_path: Path) -> None:
    key = key_for(dataset(), teacher)
    assert FeatureCache.open(tmp_path, key) is None
    with pytest.raises(CacheError, match="num_clips"):
        build_cache(teacher, PhysicsDataset(ClipSpec(frames=4, size=32), length=5), key, tmp_path, batch_size=4)
    wrong = CacheKey.from_dict(key.to_dict() | {"dim": 64})
    with pytest.raises(CacheError, match=r"expects \[4, 32, 64\]"):
        build_cache(teacher, dataset(), wrong, tmp_path, batch_size=4)
    cache = build_cache(teacher, dataset(), key, tmp_path, batch_size=12)
    manifest = json.loads((cache.path / "manifest.json").read_text())
    manifest["key"]["seed"] = 7
    (cache.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CacheError, match="another key"):
        FeatureCache.open(tmp_path, key)
    with pytest.raises(CacheError, match="clips"):
        CachedTeacherDataset(PhysicsDataset(ClipSpec(frames=4, size=32), length=5), cache)
