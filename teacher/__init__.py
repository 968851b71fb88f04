"""teacher/: V-JEPA pretraining, from one laptop CPU to many GPUs (torchrun, DDP or FSDP2).

`teacher` imports `vjepa_edge`; `vjepa_edge` never imports `teacher` at module level.
"""

from teacher.config import TeacherConfig, load_config

__all__ = ["TeacherConfig", "load_config"]
