"""Output-path checks made before compute: folders vs files, existing files may be replaced, unwritable places."""

from __future__ import annotations

from pathlib import Path

from vjepa_edge.paths import out_dir_problems, out_file_problems


def test_an_existing_file_can_be_replaced(tmp_path: Path) -> None:
    old = tmp_path / "preview.png"
    old.write_bytes(b"old")
    assert out_file_problems(old, suffixes=(".png",)) == []
    assert out_file_problems(tmp_path / "new" / "deeper" / "x.png", suffixes=(".png",)) == []


def test_files_and_folders_are_not_confused(tmp_path: Path) -> None:
    a_file = tmp_path / "a.txt"
    a_file.write_text("x")
    assert "a folder is expected" in out_dir_problems(a_file)[0]
    assert "a file name is expected" in out_file_problems(tmp_path)[0]
    assert "is a file, so nothing can be created under it" in out_file_problems(a_file / "x.png")[0]
    assert "is a file, so nothing can be created under it" in out_dir_problems(a_file / "sub")[0]
    assert "unknown file type" in out_file_problems(tmp_path / "x.gif", suffixes=(".png",))[0]
    assert out_dir_problems(tmp_path) == [] and out_dir_problems(tmp_path / "new" / "run") == []
