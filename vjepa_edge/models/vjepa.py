"""`VJEPA`: the encoder, the optional EMA target encoder and the optional predictor of one V-JEPA model."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from vjepa_edge.errors import ConfigError
from vjepa_edge.models.arch import EncoderArch, VJEPAArch
from vjepa_edge.models.inputs import InputSpec
from vjepa_edge.models.predictor import Predictor
from vjepa_edge.models.students import build_encoder


@dataclass(frozen=True, kw_only=True, slots=True)
class Source:
    """Where a loaded model came from: the file, its format, and what was inferred rather than read."""

    path: str = ""
    format: str = "new"
    input_from: str = "architecture defaults"
    notes: tuple[str, ...] = field(default=())


PARTS = ("encoder", "target_encoder", "predictor")


class VJEPA(nn.Module):
    """`encoder`, plus `target_encoder` and `predictor` where the architecture (or the file) has them.

    A part the model does not have raises an AttributeError that says which parts it holds, so
    `getattr(model, "target_encoder", None)` works and a direct call fails with a readable message.
    """

    def __init__(self, arch: VJEPAArch, source: Source | None = None, *, encoder: nn.Module | None = None) -> None:
        """Build every part of `arch`; `encoder`, when given, is used as the encoder instead of a new one."""
        super().__init__()
        self.arch = arch
        self.source = source or Source()
        if encoder is not None and getattr(encoder, "arch", None) != arch.encoder:
            raise ConfigError("the given encoder's arch record differs from arch.encoder")
        self.encoder = encoder if encoder is not None else build_encoder(arch.encoder)
        if arch.target_encoder:
            self.target_encoder = build_encoder(arch.encoder)
        if arch.predictor is not None:
            self.predictor = Predictor(arch.predictor, arch.encoder.grid)

    @property
    def input_spec(self) -> InputSpec:
        """The encoder's input contract (the target encoder and the predictor share its grid)."""
        return self.encoder.input_spec

    @property
    def parts(self) -> list[str]:
        return [n for n in PARTS if n in self._modules]

    def __getattr__(self, name: str):  # nn.Module keeps parts in _modules, so every part access comes here
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name not in PARTS:
                raise
            raise AttributeError(
                f"this model has no {name} (it holds: {', '.join(self.parts)}; source: {self.source.format})"
            ) from None


def student_model(encoder: nn.Module) -> VJEPA:
    """An encoder-only VJEPA around a student (not a copy), so `save_vjepa` stores it and `load_vjepa` rebuilds it."""
    a = encoder.arch
    version = "vjepa1" if isinstance(a, EncoderArch) and a.pos == "sincos" else "vjepa2"
    return VJEPA(VJEPAArch(version=version, encoder=a), encoder=encoder)
