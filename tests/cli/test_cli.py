"""The `vjepa-edge` command line, run as a user runs it (a subprocess) and through typer's runner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from tests.conftest import HF, V1, V2
from vjepa_edge.cli import app

runner = CliRunner()


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vjepa_edge", *args], capture_output=True, text=True, timeout=120)


def test_help_lists_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "distill" in result.output and "teacher" in result.output
    assert runner.invoke(app, ["teacher", "inspect", "--help"]).exit_code == 0


@pytest.mark.parametrize(
    ("path", "fmt", "version", "parts"),
    [
        (V1, "V-JEPA 1 checkpoint", "V-JEPA 1", [True, True, True]),
        (V2, "V-JEPA 2 checkpoint", "V-JEPA 2", [True, True, True]),
        (HF, "Hugging Face VJEPA2 directory", "V-JEPA 2", [True, False, True]),
    ],
)
def test_inspect_json(path: Path, fmt: str, version: str, parts: list[bool]) -> None:
    result = runner.invoke(app, ["teacher", "inspect", str(path), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output.strip().splitlines()[-1])
    assert (info["format"], info["version"]) == (fmt, version)
    arch = info["architecture"]
    assert (arch["width"], arch["depth"], arch["heads"], arch["tubelet"], arch["patch"]) == (48, 2, 3, 2, 16)
    assert arch["position_encoding"].startswith("3-D RoPE" if version == "V-JEPA 2" else "3-D sin-cos")
    assert list(info["parts"].values()) == parts
    assert info["input"]["frames"] == 4 and info["input"]["size"] == [48, 48] and info["input"]["tokens"] == 18
    assert info["input"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    # counted, not copied: encoder = tubelet + 2 blocks + norm
    expected_encoder = (48 * 1536 + 48) + 2 * (4 * 48 + 48 * 144 + 144 + 48 * 48 + 48 + 2 * 48 * 192 + 192 + 48) + 96
    assert info["parameters"]["encoder"] == expected_encoder


def test_inspect_human_output() -> None:
    result = runner.invoke(app, ["teacher", "inspect", str(V2)])
    assert result.exit_code == 0
    for needle in ("V-JEPA 2 checkpoint", "3-D RoPE", "width 48", "3 heads", "10 mask tokens", "18 tokens"):
        assert needle in result.output


def _bad_files(tmp: Path) -> dict[str, tuple[Path, str]]:
    data = V2.read_bytes()
    (tmp / "trunc.pt").write_bytes(data[: len(data) // 3])
    (tmp / "text.pt").write_text("not a checkpoint\n")
    ck = torch.load(V2, weights_only=True)
    ck["encoder"]["module.backbone.patch_embed.proj.weight"] = torch.zeros(100, 3, 2, 16, 16)
    torch.save({"encoder": ck["encoder"]}, tmp / "width.pt")
    return {
        "missing": (tmp / "missing.pt", "no such file"),
        "truncated": (tmp / "trunc.pt", "truncated or corrupt"),
        "not-a-checkpoint": (tmp / "text.pt", "not a PyTorch checkpoint"),
        "unknown-architecture": (tmp / "width.pt", "'patch_embed.proj.weight' has shape [100, 3, 2, 16, 16]"),
    }


@pytest.mark.parametrize("case", ["missing", "truncated", "not-a-checkpoint", "unknown-architecture"])
def test_bad_input_is_one_message_and_exit_1(tmp_path: Path, case: str) -> None:
    path, needle = _bad_files(tmp_path)[case]
    result = _run("teacher", "inspect", str(path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.startswith("error:") and needle in result.stderr.replace("\n", " ")
    assert "hint:" in result.stderr or case == "unknown-architecture"


def test_bad_input_under_json_ends_with_a_json_error(tmp_path: Path) -> None:
    result = _run("teacher", "inspect", str(tmp_path / "missing.pt"), "--json")
    assert result.returncode == 1
    err = json.loads(result.stdout.strip().splitlines()[-1])
    assert err["kind"] == "CheckpointError" and "no such file" in err["error"]
