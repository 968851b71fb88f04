"""Clips per second of the two clip sources, measured side by side in one run.

    uv run python bench/data_throughput.py [--frames 16] [--size 64] [--batches 12]

Rows: the embedded physics generator, and PyAV decoding of real H.264 files (320x240, 30 fps, 6 s: the
benchmark encodes them first, from physics renders, so it needs no data). Each source runs in-process and
through a 2-worker DataLoader, with the training transform (random-resized crop, flip, normalise) at the
clip size of the default recipe. The last column is each row's rate over the in-process generator's, so
the figures stay comparable on a shared, noisy machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vjepa_edge.data.config import ClipSpec
from vjepa_edge.data.loader import ClipLoader
from vjepa_edge.data.physics import generate_clip
from vjepa_edge.data.sources import open_source


def encode_videos(folder: Path, count: int, seconds: float = 6.0, fps: int = 30) -> None:
    """H.264 files of physics scenes (a real codec on real motion), 320x240."""
    for i in range(count):
        frames = generate_clip(i, frames=int(seconds * fps), size=(240, 320), fps=fps).frames
        with av.open(str(folder / f"clip{i:02d}.mp4"), mode="w") as container:
            stream = container.add_stream("libx264", rate=Fraction(fps))
            stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
            stream.options = {"preset": "veryfast", "crf": "23"}
            for f in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)


def clips_per_second(source: str, spec: ClipSpec, *, workers: int, batches: int, batch_size: int) -> float:
    dataset = open_source(source, spec=spec, train=True, length=batches * batch_size * 4)
    loader = ClipLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers)

    def batches_forever():
        epoch = 0
        while True:
            loader.set_epoch(epoch)
            yield from loader
            epoch += 1

    it = batches_forever()
    next(it)  # worker start-up and first batch are not throughput
    start, n = time.perf_counter(), 0
    for _ in range(batches):
        n += len(next(it)["clip"])
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=ClipSpec().frames)
    parser.add_argument("--size", type=int, default=ClipSpec().size)
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    spec = ClipSpec(frames=args.frames, size=args.size)
    print(
        f"clip: {spec.frames} frames at {spec.size}x{spec.size}, frame step {spec.frame_step}; "
        f"batches of {args.batch_size}, {args.batches} timed batches per row"
    )
    with tempfile.TemporaryDirectory() as tmp:
        encode_videos(Path(tmp), count=48)
        rows = []
        for name, source in (("physics generator", "physics"), ("PyAV decode, H.264 320x240", tmp)):
            for workers in (0, 2):
                rate = clips_per_second(source, spec, workers=workers, batches=args.batches, batch_size=args.batch_size)
                rows.append((name, workers, rate))
    base = rows[0][2]
    print(f"{'source':<28} {'workers':>7} {'clips/s':>9} {'vs generator':>13}")
    for name, workers, rate in rows:
        print(f"{name:<28} {workers:>7} {rate:>9.1f} {rate / base:>12.2f}x")


if __name__ == "__main__":
    main()
