"""`vjepa-edge data info` and `data preview` on the physics source, a folder with bad files, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.data.videos import encode_video
from vjepa_edge.cli import app
from vjepa_edge.data.physics import EVENTS

runner = CliRunner()


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    """As a user runs it: a subprocess through the console entry point's error handling."""
    return subprocess.run([sys.executable, "-m", "vjepa_edge", *args], capture_output=True, text=True, timeout=300)


def _json(*args: str) -> dict:
    r = runner.invoke(app, [*args, "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Two labelled classes of good videos, plus an empty file and a corrupt one."""
    root = tmp_path_factory.mktemp("videos")
    encode_video(root / "cats" / "a", codec="h264", frames=20, size=(64, 48), fps=10)
    encode_video(root / "cats" / "b", codec="vp9", frames=20, size=(80, 60), fps=24)
    encode_video(root / "dogs" / "c", codec="mpeg4", frames=20, size=(64, 48), fps=30)
    (root / "dogs" / "empty.mp4").write_bytes(b"")
    (root / "dogs" / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    return root


def test_info_physics_json_has_every_label() -> None:
    info = _json("data", "info", "physics", "--clips", "70")
    assert info["clips"] == 70 and info["unreadable"] == []
    assert set(info["label_sets"]["event"]) == set(EVENTS)
    assert sum(info["label_sets"]["event"].values()) == 70
    assert info["resolutions"] == {"64x64": 70}


def test_info_folder_lists_unreadable_files(folder: Path) -> None:
    info = _json("data", "info", str(folder))
    assert info["clips"] == 5 and info["readable"] == 3
    bad = {Path(u["path"]).name: u["reason"] for u in info["unreadable"]}
    assert set(bad) == {"empty.mp4", "corrupt.mp4"} and "empty" in bad["empty.mp4"]
    assert info["labels"] == {"cats": 2, "dogs": 3}
    assert info["resolutions"] == {"64x48": 2, "80x60": 1}
    table = _run("data", "info", str(folder))
    assert table.returncode == 0 and "corrupt.mp4" in table.stdout and "unreadable" in table.stdout


def test_preview_physics_and_folder(tmp_path: Path, folder: Path) -> None:
    out = tmp_path / "p.png"
    r = _run("data", "preview", "physics", "--out", str(out), "--clips", "2", "--columns", "4", "--size", "48")
    assert r.returncode == 0, r.stderr
    img = np.asarray(Image.open(out))
    assert img.ndim == 3 and img.std() > 10  # pictures, not a blank sheet
    summary = _json("data", "preview", str(folder), "--out", str(tmp_path / "f.png"), "--clips", "5")
    assert summary["rows"] == 3 and len(summary["skipped"]) == 2
    summary = _json("data", "preview", "physics", "--voe", "--clips", "1", "--out", str(tmp_path / "v.png"))
    assert summary["rows"] == 2 and (tmp_path / "v.png").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["data", "info", "/no/such/dir"], "no such data source"),
        (["data", "info", "physics", "--size", "4"], "size=4"),
        (["data", "preview", "/no/such.csv"], "no such data source"),
        (["data", "preview", "physics", "--frames", "2", "--voe"], "at least 8 frames"),
    ],
)
def test_bad_input_one_error_exit_1(args: list[str], message: str) -> None:
    r = runner.invoke(app, args)
    assert r.exit_code == 1
    assert message in r.output and "Traceback" not in r.output


def test_bad_input_in_a_subprocess() -> None:
    r = _run("data", "info", "/no/such/dir")
    assert r.returncode == 1 and "no such data source" in r.stderr and "Traceback" not in r.stderr


def test_info_all_unreadable_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "x.mp4").write_bytes(b"not a video at all" * 100)
    r = runner.invoke(app, ["data", "info", str(tmp_path)])
    assert r.exit_code == 1 and "none of the 1 videos" in r.output
