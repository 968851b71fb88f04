"""teacher/: V-JEPA pretraining, from one laptop CPU to many GPUs (torchrun, DDP or FSDP2).

`teacher` imports `vjepa_edge`; the library never imports `teacher` (only the CLI's `teacher` command group
does, inside its commands). Distillation reaches the embedded teacher through the teacher source `embedded`,
an entry point (pyproject.toml) to `teacher.embedded.EmbeddedTeacher`.
"""

from teacher.config import TeacherConfig, load_config

__all__ = ["TeacherConfig", "load_config"]
