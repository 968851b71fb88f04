"""Teacher sources: the registry finds `embedded` through its entry point without the library importing `teacher`,
the embedded source knows its architecture without pretraining, and an unknown name says what is registered."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vjepa_edge.distill import teachers
from vjepa_edge.distill.teachers import (
    TeacherProvider,
    get_teacher_source,
    is_teacher_source,
    list_teacher_sources,
    register_teacher_source,
)
from vjepa_edge.errors import RegistryError

ROOT = Path(__file__).resolve().parents[2]


def test_importing_every_library_module_leaves_teacher_unimported():
    code = (
        "import pkgutil, sys, vjepa_edge\n"
        "for m in pkgutil.walk_packages(vjepa_edge.__path__, 'vjepa_edge.'):\n"
        "    if not m.name.endswith('__main__'):\n"  # running the CLI is not importing it
        "        __import__(m.name)\n"
        "from vjepa_edge.distill.teachers import list_teacher_sources\n"
        "assert 'embedded' in list_teacher_sources()\n"  # reading the entry points imports no source
        "print(sorted(n for n in sys.modules if n == 'teacher' or n.startswith('teacher.')))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout


def test_the_embedded_source_knows_its_architecture_without_pretraining():
    from teacher.config import load_config

    cache = Path(os.environ["VJEPA_EDGE_CACHE"])  # the test session's cache (tests/conftest.py)
    source = get_teacher_source("embedded")
    assert isinstance(source, TeacherProvider) and source.name == "embedded"
    assert source.arch() == load_config("physics").arch()
    assert source.cached() is None
    assert "embedded" in source.describe() and "first use" in source.describe()
    assert not (cache / "teachers").exists()  # nothing was pretrained or written


def test_an_unknown_source_names_the_close_ones():
    assert "embedded" in list_teacher_sources() and is_teacher_source("embedded")
    with pytest.raises(RegistryError, match="embedded") as err:
        get_teacher_source("embeded")
    assert "Did you mean" in err.value.message
    assert not is_teacher_source("embeded")


class _FileTeacher(TeacherProvider):
    name = "fixture"

    def __init__(self, path: Path) -> None:
        self.file = path

    def arch(self):
        from vjepa_edge.models.checkpoint import load_vjepa

        return load_vjepa(self.file).arch

    def cached(self) -> Path | None:
        return self.file

    def path(self, *, progress: bool) -> Path:
        return self.file


def test_a_registered_source_is_what_a_recipe_names(tmp_path, teacher_file, monkeypatch):
    from tests.distill.conftest import tiny_recipe
    from vjepa_edge.distill.train import resolve_teacher

    monkeypatch.setattr(teachers, "_registry", None)  # a fresh registry, dropped again after the test
    register_teacher_source("fixture", lambda: _FileTeacher(teacher_file))
    recipe = tiny_recipe(teacher_file, tmp_path / "cache").replace(teacher={"path": "fixture"})
    assert resolve_teacher(recipe, progress=False) == teacher_file
    register_teacher_source("broken", lambda: object())
    with pytest.raises(RegistryError, match="not a TeacherProvider"):
        get_teacher_source("broken")
