"""Every bad recipe is refused by `validate` and by `distill` the same way, before any compute: exit code 1, one
error with a hint, no traceback, within seconds, no run folder left behind and no embedded teacher pretrained
(the cache starts empty, so a late check would start an hour of pretraining on a slow CPU)."""

from __future__ import annotations

import math
import os
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.conftest import V2
from vjepa_edge.cli import app
from vjepa_edge.distill.recipe import resolve_recipe_path

runner = CliRunner()


def _value(v: Any) -> str:
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return repr(v)


def _write(path: Path, data: dict[str, Any]) -> Path:
    lines = [f"{k} = {_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for k, table in data.items():
        if isinstance(table, dict):
            lines.append(f"[{k}]")
            lines += [f"{kk} = {_value(vv)}" for kk, vv in table.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _files(tmp: Path) -> dict[str, Path]:
    (tmp / "text.pt").write_text("not a checkpoint\n")
    (tmp / "empty_dir").mkdir()
    data = V2.read_bytes()
    (tmp / "truncated.pth.tar").write_bytes(data[: len(data) // 3])
    (tmp / "no_videos").mkdir()
    (tmp / "not_videos").mkdir()
    for i in range(3):
        (tmp / "not_videos" / f"clip{i}.mp4").write_bytes(os.urandom(2048))
    return {k: tmp / k for k in ("text.pt", "empty_dir", "truncated.pth.tar", "no_videos", "not_videos")}


# case -> (sections to change in recipes/vit_s.toml, file keys for teacher/data, words the error must contain)
CASES: dict[str, tuple[dict[str, dict[str, Any]], dict[str, str], tuple[str, ...]]] = {
    "size-not-divisible-by-patch": ({"student": {"size": 72}}, {}, ("72", "patch")),
    "frames-not-divisible-by-tubelet": ({"student": {"frames": 7}}, {}, ("7", "tubelet")),
    "student-frames-do-not-divide-teacher": ({"student": {"frames": 12}}, {}, ("student.frames=12", "16 frames")),
    "lr-nan": ({"optim": {"lr": math.nan}}, {}, ("optim.lr", "nan")),
    "lr-inf": ({"optim": {"lr": math.inf}}, {}, ("optim.lr", "inf")),
    "fps-nan": ({"data": {"fps": math.nan}}, {}, ("data.fps", "nan")),
    "size-huge": ({"student": {"size": 100000}}, {}, ("size=100000", "at most")),
    "batch-larger-than-clips": ({"data": {"clips": 8, "batch_size": 16}}, {}, ("batch_size=16", "clips=8")),
    "teacher-text-file": ({}, {"teacher": "text.pt"}, ("text.pt", "not a PyTorch checkpoint")),
    "teacher-empty-folder": ({}, {"teacher": "empty_dir"}, ("empty_dir",)),
    "teacher-truncated": ({}, {"teacher": "truncated.pth.tar"}, ("truncated.pth.tar", "truncated")),
    "data-empty-folder": ({}, {"data": "no_videos"}, ("no_videos", "no videos")),
    "data-not-videos": ({}, {"data": "not_videos"}, ("not_videos", "none of its 3 videos")),
}


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("VJEPA_EDGE_CACHE", str(cache))
    return cache


@pytest.mark.parametrize("case", list(CASES))
def test_bad_recipe_refused_by_validate_and_distill_before_compute(
    case: str, tmp_path: Path, empty_cache: Path
) -> None:
    changes, files, needles = CASES[case]
    data = tomllib.loads(resolve_recipe_path("vit_s").read_text())
    for section, values in changes.items():
        data[section] = {**data.get(section, {}), **values}
    recipe = _write(tmp_path / "bad.toml", data)
    paths = _files(tmp_path)
    extra = [arg for key, name in files.items() for arg in (f"--{key}", str(paths[name]))]
    run = tmp_path / "run"
    for command in (["validate", str(recipe)], ["distill", "--recipe", str(recipe), "--out", str(run)]):
        t0 = time.perf_counter()
        result = runner.invoke(app, [*command, *extra])
        seconds = time.perf_counter() - t0
        out = result.output
        assert result.exit_code == 1, (command[0], out)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        assert "Traceback" not in out and "internal error" not in out
        assert "error:" in out and "\nhint: " in out, out
        for needle in needles:
            assert needle in out, (command[0], needle, out)
        assert seconds < 30, f"{command[0]} took {seconds:.0f} s: it computed before refusing"
        assert not run.exists(), "a refused start left a run folder"
        assert not (empty_cache / "teachers").exists(), "the embedded teacher was pretrained before the check"
        assert not (empty_cache / "clips").exists(), "clips were rendered before the check"
