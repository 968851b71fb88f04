"""Test helper: encode tiny videos with PyAV whose pixels say which frame they are.

Two kinds of content:
- `grey`: frame i is a solid grey level `grey_level(i)`; it survives every lossy codec within a few levels,
  so `frame_number(decoded)` recovers i (numbers wrap every `GREY_PERIOD` frames).
- `noise`: frame i is seeded random noise `noise_frame(i, h, w)`; with a lossless codec (ffv1 in RGB) the
  decoded frames must equal it bit for bit.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

GREY_BASE = 8
GREY_STEP = 6
GREY_PERIOD = 40  # 8 + 6 * 39 = 242 stays below 255

# (codec, suffix, pixel format) of the codecs the tests encode.
CODECS = {
    "h264": ("libx264", ".mp4", "yuv420p"),
    "mpeg4": ("mpeg4", ".avi", "yuv420p"),
    "vp9": ("libvpx-vp9", ".webm", "yuv420p"),
    "mjpeg": ("mjpeg", ".mkv", "yuvj420p"),
    "ffv1": ("ffv1", ".mkv", "bgr0"),
}


def grey_level(i: int) -> int:
    return GREY_BASE + GREY_STEP * (i % GREY_PERIOD)


def frame_number(frame: np.ndarray) -> int:
    """The frame number (modulo GREY_PERIOD) that a decoded `grey` frame [H, W, 3] shows."""
    return round((float(frame.mean()) - GREY_BASE) / GREY_STEP)


def noise_frame(i: int, height: int, width: int) -> np.ndarray:
    return np.random.default_rng(1000 + i).integers(0, 256, (height, width, 3), dtype=np.uint8)


def make_frame(i: int, height: int, width: int, content: str) -> np.ndarray:
    if content == "grey":
        return np.full((height, width, 3), grey_level(i), dtype=np.uint8)
    if content == "noise":
        return noise_frame(i, height, width)
    raise ValueError(f"content must be grey or noise, not {content!r}")


def encode_video(
    path: Path,
    *,
    codec: str = "h264",
    frames: int = 12,
    size: tuple[int, int] = (64, 48),
    fps: int | Fraction = 10,
    content: str = "grey",
    gop: int | None = None,
    faststart: bool = False,
    pts: list[int] | None = None,
) -> Path:
    """Write a video of `frames` frames of `size` (width, height) at `fps` to `path` (suffix from CODECS
    when `path` has none). `gop` sets the keyframe interval so the tests can make seeking matter; `pts`
    gives each frame's timestamp in frames (default 0, 1, 2, ...; gaps make a variable frame rate)."""
    encoder, suffix, pix_fmt = CODECS[codec]
    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    rate = Fraction(fps)
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), mode="w", options=options) as container:
        stream = container.add_stream(encoder, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if gop is not None:
            stream.codec_context.gop_size = gop
        if encoder == "libx264":
            # Near-lossless and quick; solid frames stay solid.
            stream.options = {"crf": "10", "preset": "ultrafast"}
        elif encoder == "libvpx-vp9":
            stream.options = {"crf": "10", "b": "0", "deadline": "realtime", "cpu-used": "8"}
        elif encoder in ("mpeg4", "mjpeg"):
            # Fixed quantiser 2 (ffmpeg's -q:v 2): the best quality these codecs have.
            stream.options = {"flags": "+qscale", "global_quality": str(2 * 118)}
        for i in range(frames):
            image = make_frame(i, height, width, content)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format=pix_fmt)
            frame.pts = i if pts is None else pts[i]
            frame.time_base = 1 / rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def truncate(path: Path, out: Path, fraction: float = 0.5) -> Path:
    """Copy the first `fraction` of the bytes of `path` to `out` (a download cut off half way)."""
    data = Path(path).read_bytes()
    Path(out).write_bytes(data[: int(len(data) * fraction)])
    return Path(out)


def remux(src: Path, dst: Path) -> Path:
    """Copy the video packets of `src` into the container `dst`'s suffix names (e.g. MPEG-TS), no re-encoding."""
    with av.open(str(src)) as inp, av.open(str(dst), mode="w") as out:
        stream_in = inp.streams.video[0]
        stream_out = out.add_stream_from_template(stream_in)
        for packet in inp.demux(stream_in):
            if packet.dts is not None:
                packet.stream = stream_out
                out.mux(packet)
    return Path(dst)


def garble(path: Path, out: Path, seed: int = 0) -> Path:
    """Copy `path` to `out` with every video packet's payload replaced by noise: valid headers, garbage frames."""
    data = bytearray(Path(path).read_bytes())
    rng = np.random.default_rng(seed)
    with av.open(str(path)) as container:
        spans = [(p.pos, p.size) for p in container.demux(container.streams.video[0]) if p.size]
    for pos, size in spans:
        data[pos : pos + size] = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    Path(out).write_bytes(bytes(data))
    return Path(out)
