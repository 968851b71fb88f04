"""Bad options of every command, one class at a time: non-finite numbers, zero and negative counts, output paths
that cannot be written or are of the wrong kind, options checked before the work they guard; `--json` still ends
with a JSON object on usage and internal errors; written files follow the umask; torchrun through the CLI."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import HF, V2
from tests.distill.conftest import make_teacher, tiny_recipe_dict, write_toml
from tests.torchrun import ROOT, run_two_processes
from vjepa_edge.cli import app

runner = CliRunner()


def _refused(args: list[str], *needles: str) -> str:
    """The command exits 1 with one error and a hint naming `needles`, and no traceback."""
    result = runner.invoke(app, args)
    out = result.output
    assert result.exit_code == 1, (args, out)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in out and "internal error" not in out, out
    assert out.count("error:") == 1 and "\nhint: " in out, out
    for needle in needles:
        assert needle in out, (needle, out)
    return out


@pytest.mark.parametrize(
    "args",
    [
        ["data", "info", "physics", "--fps", "nan"],
        ["data", "info", "physics", "--fps", "inf"],
        ["data", "preview", "physics", "--fps", "nan"],
        ["data", "preview", "physics", "--fps", "-inf"],
    ],
)
def test_non_finite_numbers(args: list[str], tmp_path: Path) -> None:
    _refused([*args, "--out", str(tmp_path / "p.png")] if "preview" in args else args, "fps=")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["teacher", "inspect", str(V2), "--frames", "0"], "--frames=0"),
        (["teacher", "inspect", str(V2), "--size", "-16"], "--size=-16"),
        (["teacher", "inspect", str(V2), "--size", "100000", "--frames", "100000"], "at most"),
        (["data", "preview", "physics", "--columns", "0"], "--columns=0"),
        (["data", "preview", "physics", "--clips", "-1"], "--clips=-1"),
        (["data", "info", "physics", "--frames", "0"], "frames=0"),
        (["data", "info", "physics", "--clips", "0"], "--clips=0"),
        (["teacher", "probe", str(V2), "--train-clips", "0"], "--train-clips=0"),
        (["teacher", "pretrain", "--steps", "0"], "--steps=0"),
    ],
)
def test_zero_and_negative_counts(args: list[str], needle: str, tmp_path: Path) -> None:
    if "preview" in args:
        args = [*args, "--out", str(tmp_path / "p.png")]
    if "pretrain" in args:
        args = [*args, "--out", str(tmp_path / "run")]
    _refused(args, needle)
    assert not (tmp_path / "p.png").exists() and not (tmp_path / "run").exists()


def test_unwritable_and_wrong_kind_out(tmp_path: Path) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    a_dir = tmp_path / "a_dir"
    a_dir.mkdir()
    _refused(["data", "preview", "physics", "--out", "/proc/x/sheet.png"], "cannot write")
    _refused(["data", "preview", "physics", "--out", str(a_dir)], "is a folder")
    _refused(["data", "preview", "physics", "--out", str(tmp_path / "sheet.gif")], "unknown file type")
    _refused(["data", "preview", "physics", "--out", str(a_file / "sheet.png")], "is a file")
    _refused(["validate", "vit_s", "--out", "/proc/x"], "cannot write")
    _refused(["distill", "--recipe", "vit_s", "--out", str(a_file)], "is a file; a folder is expected")
    _refused(["teacher", "pretrain", "--steps", "2", "--out", str(a_file)], "is a file; a folder is expected")
    _refused(["teacher", "pretrain", "--steps", "2", "--out", "/proc/x"], "cannot write")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_dir", "a_file"]  # no .tmp left behind
    assert list(a_dir.iterdir()) == []


def test_preview_writes_the_format_its_suffix_names(tmp_path: Path) -> None:
    out = tmp_path / "sheet.jpg"
    result = runner.invoke(app, ["data", "preview", "physics", "--clips", "1", "--columns", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:3] == b"\xff\xd8\xff"  # JPEG, not PNG bytes under a .jpg name


def test_probe_options_checked_before_features() -> None:
    t0 = time.perf_counter()
    _refused(["teacher", "probe", str(V2), "--labels", "colour"], "'colour'", "event")
    _refused(["teacher", "probe", str(V2), "--kind", "knn"], "--kind 'knn'")
    _refused(["teacher", "probe", str(V2), "--fps", "nan"], "--fps=nan")
    assert time.perf_counter() - t0 < 20
    _refused(["teacher", "probe", str(HF), "--part", "target_encoder"], "has no target_encoder")


def _main(*args: str, code: str = "") -> subprocess.CompletedProcess[str]:
    """`vjepa-edge ARGS` in a subprocess, after `code` (to plant a bug)."""
    prog = f"import sys; sys.argv = ['vjepa-edge', *{list(args)!r}]\n{code}\nfrom vjepa_edge.cli import main; main()"
    return subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_json_on_usage_and_internal_errors() -> None:
    r = _main("teacher", "inspect", "--frames", "x", str(V2), "--json")
    assert r.returncode == 2, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["kind"] == "UsageError"
    r = _main("teacher", "inspect", "--no-such-option", "--json")
    assert r.returncode == 2 and json.loads(r.stdout.strip().splitlines()[-1])["kind"] == "UsageError"
    bug = (
        "import vjepa_edge.models.summary as s\n"
        "def boom(*a, **k): raise RuntimeError('planted bug')\n"
        "s.inspect_checkpoint = boom"
    )
    r = _main("teacher", "inspect", str(V2), "--json", code=bug)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    last = json.loads(r.stdout.strip().splitlines()[-1])
    assert last["kind"] == "InternalError" and "planted bug" in last["error"]
    r = _main("list", "nothing", "--json")
    assert r.returncode == 1 and json.loads(r.stdout.strip().splitlines()[-1])["kind"] == "ConfigError"


def test_a_full_disk_is_one_clear_error_not_an_internal_one() -> None:
    """ENOSPC from a write (here planted in the command), or a library's error that wraps it (safetensors writes
    "No space left on device (os error 28)" into its message), is reported with what to free, exit code 1."""
    for raise_it in (
        "raise OSError(errno.ENOSPC, 'No space left on device', 'runs/x/report.json')",
        "raise RuntimeError('Error while serializing: I/O error: No space left on device (os error 28)')",
    ):
        bug = f"import errno, vjepa_edge.models.summary as s\ndef full(*a, **k): {raise_it}\n"
        bug += "s.inspect_checkpoint = full"
        r = _main("teacher", "inspect", str(V2), "--json", code=bug)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert "error: no space left on device" in r.stderr and "internal error" not in r.stderr
        last = json.loads(r.stdout.strip().splitlines()[-1])
        assert last["kind"] == "DiskFullError" and "free disk space" in last["hint"] and "--resume" in last["hint"]


def test_written_files_follow_the_umask(tmp_path: Path) -> None:
    """report.json, checkpoints, the student and images are group/world readable under umask 022 (not 0600)."""
    teacher = make_teacher(tmp_path / "teacher.safetensors")
    recipe = write_toml(
        tmp_path / "tiny.toml",
        tiny_recipe_dict(
            teacher, tmp_path / "cache", optim={"steps": 2, "warmup_steps": 1}, run={"checkpoint_every": 2}
        ),
    )
    old = os.umask(0o022)
    try:
        result = runner.invoke(
            app,
            ["distill", "--recipe", str(recipe), "--out", str(tmp_path / "run"), "--no-progress", "--no-deploy"],
        )
        assert result.exit_code == 0, result.output
        sheet = tmp_path / "sheet.png"
        assert runner.invoke(app, ["data", "preview", "physics", "--clips", "1", "--out", str(sheet)]).exit_code == 0
    finally:
        os.umask(old)
    written = [p for p in (tmp_path / "run").rglob("*") if p.is_file()] + [sheet]
    assert any(p.name == "report.json" for p in written) and any(p.name == "student.safetensors" for p in written)
    assert any(p.parent.parent.name == "checkpoints" for p in written)
    for p in written:
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, (p, oct(p.stat().st_mode))


@pytest.mark.slow  # DDP itself: tests/distill/test_distill.py::test_two_process_gloo_run_keeps_ranks_identical
def test_torchrun_distill_through_the_cli_exits_0_on_both_ranks(tmp_path: Path) -> None:
    teacher = make_teacher(tmp_path / "teacher.safetensors")
    recipe = write_toml(
        tmp_path / "tiny.toml",
        tiny_recipe_dict(
            teacher, tmp_path / "cache", optim={"steps": 4, "warmup_steps": 1}, run={"checkpoint_every": 2}
        ),
    )
    r = run_two_processes(
        "vjepa_edge",
        "distill",
        "--recipe",
        str(recipe),
        "--out",
        str(tmp_path / "run"),
        "--no-progress",
        "--no-deploy",
        module=True,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    assert (tmp_path / "run" / "report.json").is_file()
    assert r.stdout.count("distilled tiny") == 1  # rank 0 alone prints the result


def test_inspect_heads_for_a_width_outside_the_table(tmp_path: Path) -> None:
    from tests.models.test_num_heads import custom_model, write_official

    path = write_official(custom_model(), tmp_path / "w128.pth.tar")
    _refused(["teacher", "inspect", str(path)], "128", "--heads")
    result = runner.invoke(app, ["teacher", "inspect", str(path), "--heads", "4", "--json"])
    assert result.exit_code == 0, result.output
    arch = json.loads(result.output.strip().splitlines()[-1])["architecture"]
    assert (arch["width"], arch["heads"]) == (128, 4)
    _refused(["teacher", "inspect", str(path), "--heads", "3"], "num_heads=3")


def test_teacher_config_with_nan_lr_is_refused_before_pretraining(tmp_path: Path) -> None:
    from teacher.config import resolve_config_path

    text = resolve_config_path("physics").read_text().replace("\nlr = 3.5e-4", "\nlr = nan")
    assert "lr = nan" in text
    (tmp_path / "nan.toml").write_text(text)
    out = _refused(
        ["teacher", "pretrain", "--config", str(tmp_path / "nan.toml"), "--out", str(tmp_path / "run")], "optim.lr"
    )
    assert "physics.toml is a valid example" in out
    assert not (tmp_path / "run").exists()
