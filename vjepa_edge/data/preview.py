"""A contact sheet of clips: one row per clip, evenly spaced frames left to right, a caption above each row."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pick(num_frames: int, columns: int) -> list[int]:
    return sorted({round(i * (num_frames - 1) / max(1, columns - 1)) for i in range(min(columns, num_frames))})


def contact_sheet(rows: list[tuple[np.ndarray, str]], *, columns: int = 8, cell: int = 96):
    """rows: (frames uint8 [T, H, W, 3], caption). Returns a PIL image."""
    from PIL import Image, ImageDraw

    caption_h, pad = 14, 4
    width = pad + columns * (cell + pad)
    height = pad + len(rows) * (caption_h + cell + pad)
    sheet = Image.new("RGB", (width, height), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    y = pad
    for frames, caption in rows:
        draw.text((pad, y), caption, fill=(235, 235, 235))
        y += caption_h
        t, h, w = frames.shape[:3]
        scale = cell / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        for col, k in enumerate(_pick(t, columns)):
            tile = Image.fromarray(np.ascontiguousarray(frames[k])).resize(size, Image.Resampling.NEAREST)
            sheet.paste(tile, (pad + col * (cell + pad), y))
            draw.text((pad + col * (cell + pad) + 2, y + 1), str(k), fill=(255, 255, 0))
        y += cell + pad
    return sheet


# The image formats a contact sheet is written in, by file suffix.
IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


def save_contact_sheet(rows: list[tuple[np.ndarray, str]], out: Path, **kw) -> Path:
    """Write the sheet atomically, in the format its suffix names (under the user's umask)."""
    from vjepa_edge.runinfo import atomic_open

    out = Path(out)
    with atomic_open(out) as f:
        contact_sheet(rows, **kw).save(f, format=IMAGE_FORMATS.get(out.suffix.lower(), "PNG"))
    return out
