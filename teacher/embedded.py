"""The embedded teacher: `teacher/configs/physics.toml` pretrained once per machine and cached.

A distillation that needs the default teacher calls `embedded_teacher()`: the cached file is returned at
once; when there is none, it is pretrained first (with a message saying so and how long it takes), in a run
folder beside the cache that an interrupted first use resumes. The cache key is a hash of the config, so a
changed config never reuses an old teacher.

`EmbeddedTeacher` is the teacher source `embedded` of the library's registry
(`vjepa_edge.distill.teachers`, through this project's entry point): recipes with `teacher.path = "embedded"`
reach this module only through it.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from teacher.config import TeacherConfig, load_config
from vjepa_edge.distill.teachers import TeacherProvider
from vjepa_edge.models.arch import VJEPAArch
from vjepa_edge.runinfo import cache_root

log = logging.getLogger(__name__)

EMBEDDED = "physics"


def embedded_config() -> TeacherConfig:
    return load_config(EMBEDDED)


def embedded_teacher_path(config: TeacherConfig | None = None) -> Path:
    config = config or embedded_config()
    return cache_root() / "teachers" / f"{config.name}-{config.digest()}.safetensors"


def embedded_teacher(*, rebuild: bool = False, progress: bool = True, config: TeacherConfig | None = None) -> Path:
    """The cached embedded teacher's file, pretraining it first when it is not cached yet."""
    config = config or embedded_config()
    path = embedded_teacher_path(config)
    if path.is_file() and not rebuild:
        return path
    run_dir = path.with_suffix(".run")
    if rebuild and run_dir.exists():
        shutil.rmtree(run_dir)
    resume = (run_dir / "config.json").is_file()
    log.warning(
        "%s the embedded teacher (%s, %d steps); the time it takes is measured on this machine after its first "
        "steps. It is cached in %s and reused from then on",
        "Resuming the pretraining of" if resume else "No cached teacher yet: pretraining",
        config.name,
        config.optim.steps,
        path.parent,
    )
    from teacher.train import pretrain

    result = pretrain(config, run_dir, resume=resume, progress=progress)
    tmp = path.with_suffix(".tmp")
    shutil.copyfile(result.teacher, tmp)
    os.replace(tmp, path)
    log.warning("embedded teacher cached at %s", path)
    return path


class EmbeddedTeacher(TeacherProvider):
    """The teacher source `embedded`: `config` (default `teacher/configs/physics.toml`) pretrained on first use."""

    name = "embedded"

    def __init__(self, config: TeacherConfig | None = None) -> None:
        self.config = config or embedded_config()

    def arch(self) -> VJEPAArch:
        return self.config.arch()

    def cached(self) -> Path | None:
        path = embedded_teacher_path(self.config)
        return path if path.is_file() else None

    def path(self, *, progress: bool) -> Path:
        return embedded_teacher(progress=progress, config=self.config)

    def describe(self) -> str:
        c = self.config
        state = "cached" if self.cached() is not None else f"pretrained here on first use, {c.optim.steps} steps"
        return f"the embedded teacher: {c.name} ({state}; in {embedded_teacher_path(c).parent})"
