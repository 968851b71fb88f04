"""`vjepa-edge distill`: teacher -> small ViT student (the main job)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vjepa_edge.cli._common import fail
from vjepa_edge.errors import NotBuiltError


def distill(
    recipe: Annotated[str, typer.Option(help="Recipe name (recipes/NAME.toml) or path, e.g. vit_s.")],
    teacher: Annotated[Path | None, typer.Option(help="Teacher checkpoint (anything load_vjepa reads).")] = None,
    data: Annotated[str | None, typer.Option(help="Data source: physics, a directory, a CSV or a video.")] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder to write.")] = None,
) -> None:
    """Distill a V-JEPA teacher into a small ViT student."""
    fail(
        NotBuiltError(
            f"distillation (--recipe {recipe}) is not built yet in this version of vjepa-edge",
            hint="what works today: 'vjepa-edge teacher inspect PATH' loads and describes V-JEPA 1/2 and HF "
            "checkpoints",
        )
    )
