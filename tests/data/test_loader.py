"""ClipLoader: multi-worker batches from every source, bad-file accounting across workers, mask collation."""

from __future__ import annotations

import pytest
import torch

from tests.data.videos import encode_video
from vjepa_edge.data import ClipLoader, ClipSpec, MaskCollator, MultiBlock3DMasker, collate_clips, open_source
from vjepa_edge.errors import DataError

SPEC = ClipSpec(frames=4, size=32, frame_step=2)


def _folder(root, good: int, bad: int):
    for i in range(good):
        encode_video(root / f"good{i}", codec="h264", frames=12, size=(48, 32), fps=10)
    for i in range(bad):
        (root / f"bad{i}.mp4").write_bytes(b"\x00" * (100 + i))
    return root


def test_physics_batches_through_two_workers_are_deterministic():
    ds = open_source("physics", spec=SPEC, train=True, length=12, seed=3)
    runs = []
    for _ in range(2):
        loader = ClipLoader(ds, batch_size=4, shuffle=True, num_workers=2, seed=1)
        loader.set_epoch(1)
        runs.append([b for b in loader])
    assert [len(b["clip"]) for b in runs[0]] == [4, 4, 4]
    for a, b in zip(*runs, strict=True):  # same order, same clips, same augmentation
        assert torch.equal(a["index"], b["index"]) and torch.equal(a["clip"], b["clip"])
    assert set(runs[0][0]["labels"]) == {"event", "num_objects", "direction"}
    loader.set_epoch(2)
    assert [b["index"].tolist() for b in loader] != [b["index"].tolist() for b in runs[0]]  # reshuffled


def test_a_few_bad_files_are_skipped_and_counted(tmp_path):
    ds = open_source(str(_folder(tmp_path, good=9, bad=1)), spec=SPEC, train=True)
    loader = ClipLoader(ds, batch_size=5, num_workers=2, max_bad_fraction=0.2)
    batches = list(loader)
    assert sum(len(b["clip"]) for b in batches) == 10  # the bad file's slot holds the next good clip
    assert list(loader.health.bad) == [str(tmp_path / "bad0.mp4")]
    assert loader.health.summary()["bad_files"] == 1


def test_too_many_bad_files_stop_the_job_with_one_clear_error(tmp_path):
    ds = open_source(str(_folder(tmp_path, good=4, bad=3)), spec=SPEC, train=True)
    loader = ClipLoader(ds, batch_size=7, num_workers=2, max_bad_fraction=0.2)
    with pytest.raises(DataError, match=r"3 of 7 videos \(42.9%\) are unreadable") as e:
        list(loader)
    assert "max_bad_fraction" in e.value.hint


def test_mask_collator_wraps_clip_collation():
    ds = open_source("physics", spec=ClipSpec(frames=8, size=64), length=4)
    masker = MultiBlock3DMasker((4, 4, 4), seed=0)
    loader = ClipLoader(ds, batch_size=4, collate=MaskCollator(masker, collate_clips))
    batch, masks_enc, masks_pred = next(iter(loader))
    assert batch["clip"].shape == (4, 3, 8, 64, 64)
    assert len(masks_enc) == len(masks_pred) == 2
    for enc, pred in zip(masks_enc, masks_pred, strict=True):
        assert enc.shape[0] == pred.shape[0] == 4 and enc.max() < 64 and pred.max() < 64
