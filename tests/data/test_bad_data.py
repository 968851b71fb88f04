"""Unreadable videos: each is skipped with its reason, counted, and too many of them stop the run."""

from __future__ import annotations

import gc
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.data.videos import encode_video, garble, truncate
from vjepa_edge.data.config import ClipSpec
from vjepa_edge.data.folders import VideoDataset, read_csv, scan_directory, summarize_videos
from vjepa_edge.data.health import BadDataTracker
from vjepa_edge.data.transforms import ClipTransform
from vjepa_edge.data.video import probe, read_frames
from vjepa_edge.errors import ConfigError, DataError

SPEC = ClipSpec(frames=4, size=32, frame_step=2)

# file name -> words its reason must contain
BAD = {
    "corrupt.mp4": "cannot open",
    "empty.mp4": "empty file (0 bytes)",
    "half.mkv": "truncated",
    "half.mp4": "cannot open",  # an MP4 keeps its index (moov) at the end: the first half cannot be opened
    "half_faststart.mp4": "truncated",  # index at the front: it promises 40 frames, half are gone
    "short.mp4": "too short: 3 frames, a clip needs at least 4",
    "no_video.mkv": "not a video (no video stream)",
    "garbage_frames.mp4": "cannot decode",  # valid header, noise where the frames were
}


def _write_bad(folder: Path, scratch: Path) -> None:
    rng = np.random.default_rng(0)
    (folder / "corrupt.mp4").write_bytes(rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    (folder / "empty.mp4").write_bytes(b"")
    truncate(encode_video(scratch / "whole", codec="ffv1", frames=40, content="noise"), folder / "half.mkv")
    truncate(encode_video(scratch / "whole", codec="h264", frames=40, content="noise"), folder / "half.mp4")
    whole = encode_video(scratch / "fs.mp4", codec="h264", frames=40, content="noise", faststart=True)
    truncate(whole, folder / "half_faststart.mp4")
    encode_video(folder / "short.mp4", codec="h264", frames=3)
    _audio_only(folder / "no_video.mkv")
    garble(encode_video(scratch / "g", codec="h264", frames=20), folder / "garbage_frames.mp4")


def _audio_only(path: Path) -> None:
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        for i in range(4):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
            frame.sample_rate, frame.pts = 8000, i * 800
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    """12 good videos and the 8 bad files of BAD in one folder (40% bad)."""
    root = tmp_path_factory.mktemp("mixed")
    scratch = tmp_path_factory.mktemp("scratch")
    for i in range(12):
        encode_video(root / f"good{i:02d}.mkv", codec="mjpeg", frames=12)
    _write_bad(root, scratch)
    return root


def test_probe_names_each_problem(mixed) -> None:
    for name, words in BAD.items():
        if name == "short.mp4":
            continue  # a short video is a fine video; only sampling a clip from it fails
        with pytest.raises(DataError, match=r"^.*" + name) as err:
            probe(mixed / name)
        assert words in err.value.message, (name, err.value.message)
        assert err.value.hint
    with pytest.raises(DataError, match="no such file"):
        probe(mixed / "missing.mp4")


def test_deep_probe_finds_damage_past_the_first_frame(tmp_path) -> None:
    whole = encode_video(tmp_path / "w.mp4", codec="h264", frames=40, content="noise", faststart=True)
    half = truncate(whole, tmp_path / "half.mp4")
    with pytest.raises(DataError, match=r"truncated|cannot decode frame"):
        probe(half, deep=True)


def test_every_bad_file_is_skipped_with_its_reason(mixed) -> None:
    ds = VideoDataset(scan_directory(mixed), SPEC, ClipTransform(32, "eval"), train=False)
    skipped: dict[str, str] = {}
    for i in range(len(ds)):
        sample = ds[i]
        assert sample["clip"].shape == (3, 4, 32, 32)
        assert Path(sample["path"]).name.startswith("good")
        skipped.update(sample["skipped"])
    assert {Path(p).name for p in skipped} == set(BAD)
    for path, reason in skipped.items():
        assert BAD[Path(path).name] in reason, (path, reason)


def test_retries_walk_forward_to_the_next_good_file(mixed) -> None:
    ds = VideoDataset(scan_directory(mixed), SPEC, ClipTransform(32), train=False)
    names = [e.path.name for e in ds.entries]
    first_bad = names.index("corrupt.mp4")
    sample = ds[first_bad]
    # corrupt.mp4, empty.mp4 and garbage_frames.mp4 sort before good00.mkv
    assert [Path(p).name for p, _ in sample["skipped"]] == names[first_bad : names.index("good00.mkv")]
    assert Path(sample["path"]).name == "good00.mkv"


def test_too_many_bad_in_a_row_raises(tmp_path) -> None:
    (tmp_path / "a.mp4").write_bytes(b"")
    (tmp_path / "b.mp4").write_bytes(b"not a video")
    ds = VideoDataset(scan_directory(tmp_path), SPEC, ClipTransform(32), train=False, max_retries=5)
    with pytest.raises(DataError, match=r"2 videos in a row are unreadable") as err:
        ds[0]
    assert "a.mp4: empty file (0 bytes)" in err.value.message and err.value.hint


def test_missing_csv_entry_names_its_line(tmp_path) -> None:
    good = encode_video(tmp_path / "clips" / "good.mkv", codec="mjpeg", frames=12)
    (tmp_path / "videos.csv").write_text(f"clips/{good.name} 0\n# comment\nclips/a.mp4 1\n")
    ds = VideoDataset(read_csv(tmp_path / "videos.csv"), SPEC, ClipTransform(32), train=False)
    assert ds[1]["skipped"] == [("videos.csv line 3: clips/a.mp4", "no such file")]
    assert ds[1]["label"] == 0  # the good video of line 1 stands in


def _collate(samples: list[dict]) -> dict:
    return {"clip": torch.stack([s["clip"] for s in samples]), "skipped": [x for s in samples for x in s["skipped"]]}


def _run_epoch(folder: Path, max_bad_fraction: float) -> BadDataTracker:
    ds = VideoDataset(scan_directory(folder), SPEC, ClipTransform(32, "train"), train=True)
    tracker = BadDataTracker(len(ds), max_bad_fraction)
    for batch in torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, collate_fn=_collate):
        assert batch["clip"].shape[1:] == (3, 4, 32, 32)
        tracker.record(batch["skipped"])
    return tracker


def test_loader_stops_when_too_many_files_are_bad(mixed) -> None:
    with pytest.raises(DataError) as err:
        _run_epoch(mixed, max_bad_fraction=0.25)  # 8 of 20 are bad
    message = err.value.message
    assert "of 20 videos" in message and "max_bad_fraction=0.25" in message
    assert "fix or remove" in err.value.hint and "max_bad_fraction" in err.value.hint


def test_loader_completes_at_the_allowed_share(mixed) -> None:
    tracker = _run_epoch(mixed, max_bad_fraction=0.4)  # exactly 8 of 20 bad: allowed
    summary = tracker.summary()
    assert summary["bad_files"] == 8 and summary["total_files"] == 20
    assert summary["bad_fraction"] == pytest.approx(0.4)
    assert {Path(p).name for p in tracker.bad} == set(BAD)


def test_tracker_counts_distinct_files_and_warns_once(caplog) -> None:
    tracker = BadDataTracker(10, max_bad_fraction=0.2)
    with caplog.at_level(logging.WARNING, logger="vjepa_edge.data.health"):
        tracker.record([("a.mp4", "empty file (0 bytes)")])
        tracker.record([("a.mp4", "empty file (0 bytes)"), ("b.mp4", "truncated: ...")])
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2
    assert "a.mp4: empty file (0 bytes) (1 of 10 files unreadable so far)" in warnings[0]
    assert "(2 of 10 files unreadable so far)" in warnings[1]
    with pytest.raises(DataError, match=r"3 of 10 videos \(30.0%\) are unreadable") as err:
        tracker.record([("c.mp4", "cannot open: Invalid data")])
    assert "a.mp4: empty file" in err.value.message and "c.mp4: cannot open" in err.value.message


@pytest.mark.parametrize("fraction", [-0.1, 1.5, float("nan")])
def test_tracker_rejects_bad_fractions(fraction) -> None:
    with pytest.raises(ConfigError, match="max_bad_fraction"):
        BadDataTracker(10, fraction)


def test_zero_tolerance_stops_at_the_first_bad_file() -> None:
    tracker = BadDataTracker(1000, max_bad_fraction=0.0)
    tracker.record([])
    with pytest.raises(DataError, match="1 of 1000 videos"):
        tracker.record([("x.mp4", "empty file (0 bytes)")])


def test_summary_lists_every_unreadable_file(mixed) -> None:
    info = summarize_videos(scan_directory(mixed))
    assert info["clips"] == 20
    # short.mp4 is a readable video (only too short for a 4-frame clip)
    assert info["readable"] == 13
    reasons = {Path(u["path"]).name: u["reason"] for u in info["unreadable"]}
    assert set(reasons) == set(BAD) - {"short.mp4"}
    for name, reason in reasons.items():
        assert BAD[name] in reason


def _collect_garbage(_worker_id: int) -> None:
    gc.collect()


def test_workers_survive_decode_errors_left_in_the_parent(tmp_path) -> None:
    # A decode error whose frames still held an FFmpeg decoder with threads used to hang forked workers: their
    # garbage collector freed the parent's decoder and waited for threads that only the parent has.
    garbage = garble(encode_video(tmp_path / "g", codec="h264", frames=20), tmp_path / "garbage.mp4")
    encode_video(tmp_path / "ok" / "good.mkv", codec="mjpeg", frames=12)
    ds = VideoDataset(scan_directory(tmp_path / "ok"), SPEC, ClipTransform(32), train=False)
    gc.disable()  # keep the garbage until the workers are forked
    try:
        for call in (lambda: probe(garbage), lambda: read_frames(garbage, [0], probe(ds.entries[0].path))):
            try:
                call()
            except DataError as err:
                cycle = {"error": err}
                cycle["self"] = cycle
            del cycle
        loader = torch.utils.data.DataLoader(
            ds, num_workers=1, collate_fn=_collate, worker_init_fn=_collect_garbage, timeout=20
        )
        assert len(list(loader)) == 1
    finally:
        gc.enable()
