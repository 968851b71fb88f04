"""Decode real videos with PyAV: probe a file, choose V-JEPA's frame indices, read those frames.

V-JEPA decodes with decord (`VideoReader.get_batch(indices)`); PyAV gives the same frames from a wheel that
installs everywhere. A frame index means "the frame shown at time index / fps" (frame timestamps, not decode
order), so seeking and decoding from the start agree, also for variable-frame-rate files.
`av` is imported inside the functions so that `import vjepa_edge.data` stays light.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from vjepa_edge.data.config import ClipSpec
from vjepa_edge.errors import DataError

if TYPE_CHECKING:
    import av

logger = logging.getLogger(__name__)

# Decode from the start when the first wanted frame is closer than this; seeking costs more than it saves.
SEEK_MIN_FRAMES = 16
_HINT = "re-encode the file (e.g. `ffmpeg -i IN -c:v libx264 OUT.mp4`) or remove it from the data"


class VideoReadError(DataError):
    """One video file that cannot be used; `reason` is the plain-words cause without the path."""

    def __init__(self, path: str | os.PathLike, reason: str, *, hint: str | None = _HINT) -> None:
        super().__init__(f"{path}: {reason}", hint=hint)
        self.path = str(path)
        self.reason = reason


def _detached(func):
    """Re-raise `VideoReadError` as a fresh exception without traceback or cause.

    Their frames hold PyAV codec contexts with FFmpeg threads. A DataLoader worker forked while such an
    exception is still alive in the parent (kept by a cache, or in a reference cycle) frees the context when
    its garbage collector runs and hangs for ever in FFmpeg's thread teardown, waiting for threads that exist
    only in the parent. Dropping the frames here frees every context in the parent, where the threads live.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except VideoReadError as err:
            failure = (err.path, err.reason, err.hint)
        raise VideoReadError(failure[0], failure[1], hint=failure[2])

    return wrapper


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """What `probe` learned about a video file. `frames` is exact when the container says so or packets
    were counted; `probe(deep=True)` makes it the number of frames that really decode."""

    path: str
    frames: int
    fps: float
    duration_s: float
    width: int
    height: int
    codec: str


def _av_reason(err: Exception) -> str:
    # PyAV errors carry errno, strerror and the file name; the file name is already in our message.
    return getattr(err, "strerror", None) or str(err) or type(err).__name__


def _open(path: str):
    import av

    try:
        return av.open(path, metadata_errors="ignore")
    except av.FFmpegError as err:
        hint = "a download cut short cannot be opened (MP4 and MOV keep their index at the end): re-download it; "
        raise VideoReadError(path, f"cannot open: {_av_reason(err)}", hint=hint + _HINT) from err


def _video_stream(container, path: str):
    from av.stream import Disposition

    videos = list(container.streams.video)
    if not videos:
        raise VideoReadError(path, "not a video (no video stream)")
    moving = [s for s in videos if not s.disposition & Disposition.attached_pic]
    if not moving:
        raise VideoReadError(path, "not a video (only a cover picture)")
    return moving[0]


def _check_file(path: str) -> None:
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        raise VideoReadError(
            path, "no such file", hint="check the path (relative CSV paths resolve against the CSV's folder)"
        ) from None
    except OSError as err:
        raise VideoReadError(path, f"cannot read: {err.strerror}", hint="check the file's permissions") from err
    if not os.path.isfile(path):
        raise VideoReadError(path, "not a file", hint="point at video files, not folders")
    if size == 0:
        raise VideoReadError(path, "empty file (0 bytes)", hint="re-download the file or remove it")


def _frame_rate(stream, path: str) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and float(rate) > 0:
            return float(rate)
    raise VideoReadError(path, "unknown frame rate (the container gives none)")


def _decode_first(packets, stream, path: str) -> None:
    """Decode video packets until one frame comes out: valid headers over garbage data fail here."""
    import av

    try:
        for packet in packets:
            if packet.stream is stream and packet.size and stream.decode(packet):
                return
        if stream.decode(None):
            return
    except av.FFmpegError as err:
        raise VideoReadError(path, f"cannot decode: {_av_reason(err)}") from err
    raise VideoReadError(path, "cannot decode: no frame decodes")


def _tolerance(frames: int) -> int:
    # Variable-frame-rate files and rounding put the last timestamp a frame or two away from frames - 1.
    return max(3, frames // 50)


def _check_tail(container, stream, path: str, frames: int, fps: float) -> None:
    """The header promises `frames` frames: seek near the last one and check its packets are there."""
    import av

    tb = float(stream.time_base)
    start = stream.start_time or 0
    last = -1.0
    try:
        container.seek(start + int((frames - 1) / fps / tb), stream=stream, backward=True)
        for packet in container.demux(stream):
            if packet.size and packet.pts is not None:
                last = max(last, (packet.pts - start) * tb * fps)
    except av.FFmpegError as err:
        raise VideoReadError(path, f"cannot read the end of the file: {_av_reason(err)}") from err
    if last < frames - 1 - _tolerance(frames):
        found = "no frames near the end" if last < 0 else f"the file ends after about {round(last) + 1}"
        raise VideoReadError(path, f"truncated: header says {frames} frames, {found}")


def _count_packets(container, stream, path: str, fps: float) -> tuple[int, float]:
    """Count the video packets (one per frame) and decode the first frame, in one pass over the file.

    Returns (frames, seconds of video). Compares the end of the last packet of any stream with the
    container's duration: a file cut off part way (a failed download) keeps its header's duration but
    loses the packets after the cut.
    """
    import av

    counted, v_start, v_end, any_end = 0, math.inf, -math.inf, -math.inf
    video_packets = []
    try:
        for packet in container.demux():
            if not packet.size or packet.pts is None:
                continue
            tb = float(packet.time_base)
            end = (packet.pts + (packet.duration or 0)) * tb
            any_end = max(any_end, end)
            if packet.stream is stream:
                counted += 1
                v_start, v_end = min(v_start, packet.pts * tb), max(v_end, end)
                if video_packets is not None:
                    video_packets.append(packet)
                    if len(video_packets) >= 8:  # enough to get a frame out of any decoder's delay
                        _decode_first(video_packets, stream, path)
                        video_packets = None
    except av.FFmpegError as err:
        raise VideoReadError(path, f"cannot read: {_av_reason(err)}") from err
    if video_packets is not None:
        _decode_first(video_packets, stream, path)
    if container.duration and any_end > -math.inf:
        declared = container.duration / 1e6
        covered = any_end - (container.start_time or 0) / 1e6
        if covered < declared - max(0.5, 0.05 * declared):
            raise VideoReadError(
                path,
                f"truncated: header says {round(declared * fps)} frames ({declared:.1f} s), "
                f"the file holds only {counted} ({covered:.1f} s)",
            )
    duration = v_end - v_start if v_end > v_start else counted / fps
    return counted, duration


def _decode_all(container, stream, path: str, expected: int) -> int:
    import av

    stream.thread_type = "AUTO"
    decoded = 0
    try:
        for _ in container.decode(stream):
            decoded += 1
    except av.FFmpegError as err:
        raise VideoReadError(path, f"cannot decode frame {decoded} of {expected}: {_av_reason(err)}") from err
    if decoded < expected - _tolerance(expected):
        raise VideoReadError(path, f"truncated: header says {expected} frames, only {decoded} decodable")
    return decoded


@_detached
def probe(path: str | os.PathLike, *, deep: bool = False) -> VideoInfo:
    """Read a video's header and decode its first frame; `deep=True` decodes every frame.

    Raises `VideoReadError` (a `DataError`) with the cause in plain words: missing, empty, not a video,
    cannot decode, truncated. A file whose header is valid but whose data is garbage fails here, not later.
    """
    path = str(path)
    _check_file(path)
    with _open(path) as container:
        stream = _video_stream(container, path)
        stream.codec_context.thread_count = 1  # one frame to decode: a thread pool costs more than it saves
        fps = _frame_rate(stream, path)
        ctx = stream.codec_context
        width, height, codec = ctx.width, ctx.height, ctx.name
        tb = float(stream.time_base) if stream.time_base else 0.0
        frames = stream.frames or 0
        if frames > 0:
            _decode_first(container.demux(stream), stream, path)
            duration = stream.duration * tb if stream.duration and tb else frames / fps
            if not deep:
                _check_tail(container, stream, path, frames, fps)
        else:
            # Matroska, WebM and MPEG-TS store no frame count: count the packets, one per frame.
            frames, duration = _count_packets(container, stream, path, fps)
            if frames == 0 and container.duration:
                frames = round(container.duration / 1e6 * fps)
    if deep:
        with _open(path) as container:
            frames = _decode_all(container, _video_stream(container, path), path, frames)
    if width <= 0 or height <= 0:
        raise VideoReadError(path, f"no frame size in the header ({width}x{height})")
    return VideoInfo(path, frames, fps, float(duration), width, height, codec)


def sample_indices(
    num_video_frames: int, video_fps: float, spec: ClipSpec, *, random: bool, generator: torch.Generator | None
) -> list[int]:
    """The source frame indices of one clip, as V-JEPA samples them.

    The step is `spec.step_for(video_fps)` (V-JEPA 1's `frame_step`, or V-JEPA 2's `ceil(fps) // target_fps`)
    and a clip spans `frames * step` source frames. Training (`random=True`) draws the window start with
    `generator`; evaluation takes the centred window. A video shorter than the span but with at least
    `spec.frames` frames is padded by repeating its last frame, as V-JEPA 1 does. Sampled frames are exactly
    `step` apart (V-JEPA's `linspace(start, start + span, frames)` stretches the step by frames/(frames-1)).
    """
    if num_video_frames < spec.frames:
        raise DataError(
            f"too short: {num_video_frames} frames, a clip needs at least {spec.frames}",
            hint="remove short videos from the data or sample fewer frames per clip (ClipSpec.frames)",
        )
    step = spec.step_for(video_fps)
    span = spec.frames * step
    slack = num_video_frames - span
    if slack <= 0:
        start = 0
    elif random:
        start = int(torch.randint(0, slack + 1, (1,), generator=generator))
    else:
        start = slack // 2
    last = num_video_frames - 1
    return [min(start + k * step, last) for k in range(spec.frames)]


def _collect(frames, wanted: list[int], index_of, *, seeked: bool, tail: int = 2) -> dict[int, av.VideoFrame]:
    """Match decoded frames (in presentation order) to the sorted, distinct `wanted` indices.

    A wanted index gets the frame shown at that time: the last frame whose index is at most it. When the
    stream ends, indices up to `tail` past its last frame take that frame (the last frame stays on screen;
    frame counts and timestamps disagree by a frame at the end of some files). After a seek, a first frame
    beyond the first wanted index means the seek landed too late: raises `_SeekFailed`. From the start, it
    means the leading frames did not decode (open GOPs): the first frame that did stands in for them.
    """
    found: dict[int, av.VideoFrame] = {}
    pos, prev, last = 0, None, -1
    for frame in frames:
        j = index_of(frame)
        while pos < len(wanted) and wanted[pos] < j:
            if prev is None and seeked:
                raise _SeekFailed
            found[wanted[pos]] = frame if prev is None else prev
            pos += 1
        if pos < len(wanted) and wanted[pos] == j:
            found[j] = frame
            pos += 1
        if pos == len(wanted):
            return found
        prev, last = frame, max(last, j)
    while prev is not None and pos < len(wanted) and wanted[pos] <= last + tail:
        found[wanted[pos]] = prev
        pos += 1
    return found


class _SeekFailed(Exception):
    """The decoded frames cannot be placed after a seek: decode from the start instead."""


def _decode(path: str, wanted: list[int], fps: float, *, seek: bool) -> tuple[dict[int, np.ndarray], int]:
    """Decode the frames for `wanted` (sorted, distinct): (index -> frame, last index decoded).

    Raises `_SeekFailed` when seeking misbehaves."""
    import av

    with _open(path) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        tb = float(stream.time_base)
        origin = stream.start_time
        if seek and origin is None:
            raise _SeekFailed  # the first timestamp is unknown until the first frame is decoded
        counter = itertools.count()
        last = -1

        def index_of(frame) -> int:
            nonlocal origin, last
            if frame.pts is None:
                if seek:
                    raise _SeekFailed  # without timestamps only counting from the first frame works
                j = next(counter)
            else:
                if origin is None:
                    origin = frame.pts
                j = round((frame.pts - origin) * tb * fps)
            last = max(last, j)
            return j

        try:
            if seek:
                container.seek(origin + int(wanted[0] / fps / tb), stream=stream, backward=True)
            found = _collect(container.decode(stream), wanted, index_of, seeked=seek)
        except av.FFmpegError as err:
            if seek:
                raise _SeekFailed from err  # decoding from the start tells whether the file is at fault
            raise VideoReadError(path, f"cannot decode after frame {last}: {_av_reason(err)}") from err
        return {i: frame.to_ndarray(format="rgb24") for i, frame in found.items()}, last


@_detached
def read_frames(path: str | os.PathLike, indices: list[int], info: VideoInfo) -> np.ndarray:
    """Decode the frames at `indices` (any order, repeats allowed): uint8 [T, H, W, 3] RGB.

    Seeks to the keyframe before the first wanted frame when that is far from the start, then decodes
    forward; decodes from the start instead when the seek lands after the wanted frame (MPEG-TS and files
    without an index do that). A stream that ends before the last wanted frame raises "truncated".
    """
    path = str(path)
    if not indices:
        raise ValueError("indices is empty")
    wanted = sorted(set(indices))
    result = None
    if wanted[0] >= SEEK_MIN_FRAMES:
        try:
            result = _decode(path, wanted, info.fps, seek=True)
        except _SeekFailed:
            logger.debug("%s: seeking to frame %d failed, decoding from the start", path, wanted[0])
    found, last = result or _decode(path, wanted, info.fps, seek=False)
    missing = [i for i in wanted if i not in found]
    if missing:
        raise VideoReadError(
            path,
            f"truncated: header says {info.frames} frames, the stream ends after frame {last}, "
            f"the clip needs frame {missing[0]}",
        )
    return np.stack([found[i] for i in indices])
