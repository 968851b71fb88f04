"""Decoding, sampling, folders, CSVs and the dataset, on videos the tests encode themselves."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.data.videos import encode_video, frame_number, noise_frame, remux
from vjepa_edge.data.config import AugmentConfig, ClipSpec
from vjepa_edge.data.folders import VideoDataset, VideoEntry, read_csv, scan_directory, summarize_videos
from vjepa_edge.data.transforms import ClipTransform
from vjepa_edge.data.video import VideoInfo, probe, read_frames, sample_indices
from vjepa_edge.errors import DataError

NTSC = Fraction(30000, 1001)

# (codec, (width, height), fps): every codec the data pipeline promises, odd sizes where the codec allows.
CASES = [
    ("h264", (64, 48), 10),
    ("h264", (66, 50), NTSC),
    ("mpeg4", (160, 120), 24),
    ("vp9", (66, 50), 30),
    ("mjpeg", (64, 48), 10),
    ("mjpeg", (320, 240), 24),
    ("ffv1", (65, 49), NTSC),
]


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[tuple, Path]:
    """40 frames per case, a keyframe every 8 frames so that seeking lands inside the file."""
    root = tmp_path_factory.mktemp("videos")
    paths = {}
    for codec, size, fps in CASES:
        name = root / f"{codec}_{size[0]}x{size[1]}"
        paths[codec, size, fps] = encode_video(name, codec=codec, size=size, fps=fps, frames=40, gop=8)
    return paths


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1][0]}x{c[1][1]}-{float(c[2]):.2f}")
def test_probe_reports_what_was_encoded(videos, case) -> None:
    codec, (width, height), fps = case
    info = probe(videos[case])
    assert (info.frames, info.width, info.height) == (40, width, height)
    assert info.fps == pytest.approx(float(fps), rel=1e-4)
    assert info.duration_s == pytest.approx(40 / float(fps), abs=1.5 / float(fps))
    assert info.codec == {"mpeg4": "mpeg4", "vp9": "vp9", "mjpeg": "mjpeg", "ffv1": "ffv1", "h264": "h264"}[codec]
    assert probe(videos[case], deep=True).frames == 40


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1][0]}x{c[1][1]}")
def test_read_frames_returns_the_frames_asked_for(videos, case) -> None:
    info = probe(videos[case])
    # From the start, after a seek (first index >= 16), unsorted with a repeat, and the very last frame.
    for indices in ([0, 1, 2, 7], [17, 24, 25, 39], [30, 3, 30, 12]):
        frames = read_frames(videos[case], indices, info)
        assert frames.shape == (len(indices), case[1][1], case[1][0], 3) and frames.dtype == np.uint8
        assert [frame_number(f) for f in frames] == indices


def test_lossless_video_decodes_bit_exact(tmp_path) -> None:
    path = encode_video(tmp_path / "exact", codec="ffv1", size=(66, 50), fps=24, frames=36, content="noise", gop=6)
    indices = [0, 5, 20, 21, 35]
    frames = read_frames(path, indices, probe(path))
    for i, frame in zip(indices, frames, strict=True):
        np.testing.assert_array_equal(frame, noise_frame(i, 50, 66))


def test_read_frames_falls_back_when_seeking_lands_late(tmp_path, caplog) -> None:
    # MPEG-TS has no index: libavformat's seek lands on a later keyframe, so decoding restarts from 0.
    ts = remux(encode_video(tmp_path / "src", codec="h264", frames=40, fps=10, gop=8), tmp_path / "clip.ts")
    with caplog.at_level(logging.DEBUG, logger="vjepa_edge.data.video"):
        frames = read_frames(ts, [25, 30, 39], probe(ts))
    assert [frame_number(f) for f in frames] == [25, 30, 39]
    assert "decoding from the start" in caplog.text


def test_variable_frame_rate_shows_the_frame_on_screen(tmp_path) -> None:
    # Encoded frames 0, 1, 2 at t = 0, 0.1, 0.2 s, then a gap: frame 3 comes at t = 0.5 s. At 10 fps the
    # frames at t = 0.3 and 0.4 s are still encoded frame 2, and t = 0.5 s is encoded frame 3.
    path = encode_video(tmp_path / "vfr", codec="ffv1", frames=8, fps=10, pts=[0, 1, 2, 5, 6, 7, 8, 9])
    frames = read_frames(path, [1, 2, 3, 4, 5, 6], probe(path))
    assert [frame_number(f) for f in frames] == [1, 2, 2, 2, 3, 4]


def test_read_frames_past_the_end_is_truncated(videos) -> None:
    path = videos[CASES[0]]
    lying = VideoInfo(str(path), 80, 10.0, 8.0, 64, 48, "h264")  # a header that promises 80 frames
    with pytest.raises(DataError, match=r"truncated: header says 80 frames.*ends after frame 39.*needs frame 60"):
        read_frames(path, [20, 40, 60], lying)


def _spec(**kw) -> ClipSpec:
    return ClipSpec(**{"frames": 4, "size": 32, **kw})


def test_eval_sampling_takes_the_centred_window() -> None:
    # 100 frames, 4 frames 4 apart: the window spans 16 frames, so 84 frames of slack, 42 on each side.
    assert sample_indices(100, 30.0, _spec(frame_step=4), random=False, generator=None) == [42, 46, 50, 54]
    assert sample_indices(16, 30.0, _spec(frame_step=4), random=False, generator=None) == [0, 4, 8, 12]


def test_train_sampling_draws_windows_within_the_video() -> None:
    spec = _spec(frame_step=3)
    starts = set()
    for seed in range(200):
        idx = sample_indices(30, 25.0, spec, random=True, generator=torch.Generator().manual_seed(seed))
        assert np.diff(idx).tolist() == [3, 3, 3] and idx[0] >= 0 and idx[-1] <= 29
        starts.add(idx[0])
    assert starts == set(range(0, 30 - 12 + 1))  # every start from 0 to len - span, nothing else
    draw = [sample_indices(30, 25.0, spec, random=True, generator=torch.Generator().manual_seed(7)) for _ in "ab"]
    assert draw[0] == draw[1]


@pytest.mark.parametrize(("video_fps", "step"), [(NTSC, 7), (30, 7), (24, 6), (25, 6), (10, 2), (60, 15), (3, 1)])
def test_fps_sampling_uses_vjepa2_step(video_fps, step) -> None:
    # V-JEPA 2: frame_step = ceil(video fps) // target fps, at least 1.
    idx = sample_indices(500, float(video_fps), _spec(frame_step=None, fps=4), random=False, generator=None)
    assert np.diff(idx).tolist() == [step] * 3


def test_short_video_repeats_its_last_frame() -> None:
    assert sample_indices(10, 30.0, _spec(frame_step=4), random=True, generator=None) == [0, 4, 8, 9]
    assert sample_indices(4, 30.0, _spec(frame_step=4), random=False, generator=None) == [0, 3, 3, 3]
    with pytest.raises(DataError, match="too short: 3 frames, a clip needs at least 4") as err:
        sample_indices(3, 30.0, _spec(frame_step=4), random=False, generator=None)
    assert err.value.hint


# --- folders and CSVs ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    """root/{cat,dog}/*.{mp4,webm,...} and one unlabelled video at the root."""
    root = tmp_path_factory.mktemp("labelled")
    (root / "cat" / "deep").mkdir(parents=True)
    (root / "dog").mkdir()
    encode_video(root / "cat" / "a.mp4", codec="h264", frames=40)
    encode_video(root / "cat" / "deep" / "b.MKV", codec="mjpeg", frames=40)
    encode_video(root / "dog" / "c.webm", codec="vp9", frames=40, fps=30)
    encode_video(root / "dog" / "d.avi", codec="mpeg4", frames=40, size=(66, 50))
    encode_video(root / "e.mkv", codec="ffv1", frames=40)
    (root / "dog" / "notes.txt").write_text("not a video")
    (root / "dog" / ".hidden.mp4").write_bytes(b"macOS resource fork")
    return root


def test_scan_directory_labels_from_first_level_folders(labelled) -> None:
    entries = scan_directory(labelled)
    got = [(e.path.relative_to(labelled).as_posix(), e.label, e.line) for e in entries]
    assert got == [
        ("cat/a.mp4", "cat", None),
        ("cat/deep/b.MKV", "cat", None),
        ("dog/c.webm", "dog", None),
        ("dog/d.avi", "dog", None),
        ("e.mkv", None, None),
    ]


def test_scan_directory_follows_symlinks_without_looping(tmp_path) -> None:
    encode_video(tmp_path / "data" / "cat" / "a.mp4", frames=2)
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "cat").symlink_to(tmp_path / "data" / "cat")
    (tmp_path / "data" / "cat" / "loop").symlink_to(tmp_path / "data" / "cat")
    assert [(e.path.name, e.label) for e in scan_directory(tmp_path / "root")] == [("a.mp4", "cat")]


def test_scan_directory_without_videos_says_which_extensions(tmp_path) -> None:
    (tmp_path / "readme.txt").write_text("no videos here")
    with pytest.raises(DataError, match="no videos found") as err:
        scan_directory(tmp_path)
    assert ".mp4" in err.value.hint and ".webm" in err.value.hint
    with pytest.raises(DataError, match="no such folder"):
        scan_directory(tmp_path / "missing")


def test_read_csv_resolves_paths_and_separators(tmp_path) -> None:
    csv = tmp_path / "lists" / "videos.csv"
    csv.parent.mkdir()
    csv.write_text(f"# V-JEPA style list\nclips/a.mp4 3\n\nclips/b.mp4,7\nmy clips/c d.mp4\t12\n{tmp_path}/abs.mp4 0\n")
    entries = read_csv(csv)
    assert [(e.path, e.label, e.line) for e in entries] == [
        (tmp_path / "lists" / "clips" / "a.mp4", "3", 2),
        (tmp_path / "lists" / "clips" / "b.mp4", "7", 4),
        (tmp_path / "lists" / "my clips" / "c d.mp4", "12", 5),
        (tmp_path / "abs.mp4", "0", 6),
    ]
    assert entries[0].where == "videos.csv line 2: clips/a.mp4"


def test_read_csv_lists_every_malformed_line(tmp_path) -> None:
    csv = tmp_path / "videos.csv"
    csv.write_text("a.mp4 1\nno_label_here\nb.mp4 2\nmy clip.mp4\n")
    with pytest.raises(DataError) as err:
        read_csv(csv)
    message = err.value.message
    assert "2 malformed line(s)" in message and "line 2:" in message and "line 4:" in message
    assert "line 1:" not in message and "line 3:" not in message
    assert "path label" in err.value.hint


def test_dataset_returns_clips_and_labels(labelled) -> None:
    spec = _spec(frame_step=2)
    ds = VideoDataset(scan_directory(labelled), spec, ClipTransform(32, "train"), train=True, seed=3)
    assert ds.label_names == ["cat", "dog"] and len(ds) == 5
    samples = [ds[i] for i in range(len(ds))]
    assert [s["label"] for s in samples] == [0, 0, 1, 1, -1]
    for i, s in enumerate(samples):
        assert s["clip"].shape == (3, 4, 32, 32) and s["clip"].dtype == torch.float32
        assert s["index"] == i and s["skipped"] == [] and s["labels"] == {}
    # Reproducible for (seed, epoch, index); a new epoch draws new windows and crops.
    again = VideoDataset(scan_directory(labelled), spec, ClipTransform(32, "train"), train=True, seed=3)
    assert torch.equal(again[2]["clip"], samples[2]["clip"])
    again.set_epoch(1)
    assert not torch.equal(again[2]["clip"], samples[2]["clip"])


def test_dataset_eval_clip_shows_the_centred_frames(labelled) -> None:
    # 40 frames, 4 frames 3 apart: span 12, slack 28, so the centred window is frames 14, 17, 20, 23.
    aug = AugmentConfig()
    ds = VideoDataset(scan_directory(labelled), _spec(frame_step=3), ClipTransform(32, "eval", aug), train=False)
    clip = ds[0]["clip"]
    mean = torch.tensor(aug.mean).view(3, 1, 1, 1) * 255
    std = torch.tensor(aug.std).view(3, 1, 1, 1) * 255
    pixels = (clip * std + mean).permute(1, 2, 3, 0).numpy()  # back to [T, H, W, 3] grey levels
    assert [frame_number(f) for f in pixels] == [14, 17, 20, 23]


def test_dataset_label_names_from_another_split(labelled) -> None:
    entries = [e for e in scan_directory(labelled) if e.label == "dog"]
    ds = VideoDataset(entries, _spec(), ClipTransform(32), train=False, label_names=["cat", "dog"])
    assert ds[0]["label"] == 1
    assert VideoDataset(entries, _spec(), ClipTransform(32), train=False).label_names == ["dog"]


def test_integer_labels_sort_as_numbers(tmp_path) -> None:
    entries = [VideoEntry(tmp_path / f"{n}.mp4", n, i + 1) for i, n in enumerate(["10", "9", "2", "10"])]
    ds = VideoDataset(entries, _spec(), ClipTransform(32), train=False)
    assert ds.label_names == ["2", "9", "10"]


def _collate(samples: list[dict]) -> dict:
    return {
        "clip": torch.stack([s["clip"] for s in samples]),
        "label": torch.tensor([s["label"] for s in samples]),
        "index": [s["index"] for s in samples],
        "skipped": [item for s in samples for item in s["skipped"]],
    }


def test_dataloader_with_workers(labelled) -> None:
    ds = VideoDataset(scan_directory(labelled), _spec(), ClipTransform(32, "train"), train=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, collate_fn=_collate)
    batches = list(loader)
    assert [b["clip"].shape[0] for b in batches] == [2, 2, 1]
    assert sorted(i for b in batches for i in b["index"]) == [0, 1, 2, 3, 4]
    # Workers produce the same samples as the main process.
    assert torch.equal(batches[1]["clip"][0], ds[2]["clip"])


def test_summarize_videos(labelled) -> None:
    entries = scan_directory(labelled) + [VideoEntry(labelled / "gone.mp4", "dog", 9)]
    ticks = []
    info = summarize_videos(entries, progress=lambda advance: ticks.append(advance))
    assert ticks == [1] * 6
    assert info["clips"] == 6 and info["readable"] == 5
    assert info["unreadable"] == [{"path": str(labelled / "gone.mp4"), "line": 9, "reason": "no such file"}]
    assert info["resolutions"] == {"64x48": 4, "66x50": 1}
    assert info["fps"] == {"10": 4, "30": 1}
    assert info["codecs"] == {"h264": 1, "mjpeg": 1, "vp9": 1, "mpeg4": 1, "ffv1": 1}
    assert info["labels"] == {"cat": 2, "dog": 3}
    assert info["frames"] == {"min": 40, "max": 40}
    assert info["duration_s"]["max"] == pytest.approx(4.0, abs=0.11)
    assert info["duration_s"]["total"] == pytest.approx(4 * 4.0 + 40 / 30, abs=0.3)
