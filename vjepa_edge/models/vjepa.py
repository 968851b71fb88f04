"""`VJEPA`: the encoder, the optional EMA target encoder and the optional predictor of one V-JEPA model."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from vjepa_edge.models.arch import VJEPAArch
from vjepa_edge.models.predictor import Predictor
from vjepa_edge.models.vit import VisionTransformer


@dataclass(frozen=True, kw_only=True, slots=True)
class Source:
    """Where a loaded model came from: the file, its format, and what was inferred rather than read."""

    path: str = ""
    format: str = "new"
    input_from: str = "architecture defaults"
    notes: tuple[str, ...] = field(default=())


class VJEPA(nn.Module):
    """`encoder`, `target_encoder` (or None) and `predictor` (or None), built from a `VJEPAArch`."""

    def __init__(self, arch: VJEPAArch, source: Source | None = None) -> None:
        super().__init__()
        self.arch = arch
        self.source = source or Source()
        self.encoder = VisionTransformer(arch.encoder)
        self.target_encoder = VisionTransformer(arch.encoder) if arch.target_encoder else None
        self.predictor = Predictor(arch.predictor, arch.encoder.grid) if arch.predictor else None

    @property
    def parts(self) -> list[str]:
        return [n for n in ("encoder", "target_encoder", "predictor") if getattr(self, n) is not None]
