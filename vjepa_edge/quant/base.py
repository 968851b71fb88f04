"""What every quantization scheme implements, so the quantize command, sensitivity, QAT and export treat them alike.

A `SchemeImpl` turns an fp32 student encoder (an `nn.Module` with `.input_spec`, taking [B, C, T, H, W] clips and
returning [B, N, D] tokens) into a `QuantizedModel` with the library's own quantizer; the model runs on clips
(where the backend runs on this machine), saves its program into a folder and loads it back.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from torch import Tensor, nn

from vjepa_edge.errors import ConfigError

if TYPE_CHECKING:
    from vjepa_edge.models.inputs import InputSpec
    from vjepa_edge.quant.schemes import Scheme

Progress = Callable[[int], None]  # called with the number of calibration batches just done


class QuantizedModel(ABC):
    """A quantized student program of one scheme, made for one fixed input (`input_spec`, batch 1)."""

    scheme: Scheme
    input_spec: InputSpec

    @abstractmethod
    def __call__(self, x: Tensor) -> Tensor:
        """Tokens [B, N, D] (float32) of clips [B, C, T, H, W], computed by the quantized program. Raises
        `ConfigError` when the backend cannot run on this machine (`scheme.runs_here` is False)."""

    @abstractmethod
    def save(self, folder: Path) -> list[Path]:
        """Write the program into `folder` atomically; returns the files written (what export reads next)."""

    @property
    @abstractmethod
    def size_bytes(self) -> int:
        """Bytes of the serialized program (weights included)."""


class SchemeImpl(ABC):
    """The implementation of a registered `Scheme` (`Scheme.load()` makes one)."""

    def __init__(self, scheme: Scheme) -> None:
        self.scheme = scheme

    def problems(self, model: nn.Module) -> list[str]:
        """Why this scheme cannot quantize `model` (empty when it can); checked before any work. Every program is
        made for one fixed input, the model's `input_spec`; schemes add their own limits."""
        from vjepa_edge.models.inputs import InputSpec

        if not isinstance(getattr(model, "input_spec", None), InputSpec):
            return ["it has no input_spec (the fixed input shape its program is made for)"]
        return []

    @abstractmethod
    def quantize(
        self,
        model: nn.Module,
        calibration: Iterable[Tensor] | None,
        *,
        keep_float: Sequence[str] = (),
        progress: Progress | None = None,
    ) -> QuantizedModel:
        """Quantize `model` (fp32, eval mode, left unchanged). `calibration`: clips [B, C, T, H, W] for the schemes
        that calibrate activations (None for the others). `keep_float`: names of modules (as in
        `model.named_modules()`, e.g. "blocks.3.mlp.fc2") left in float."""

    def prepare_qat(self, model: nn.Module, *, keep_float: Sequence[str] = ()) -> nn.Module:
        """A trainable copy of `model` with fake quantization (for `--qat`); its forward takes the same clips.
        `keep_float` modules get no fake quantization (and stay float after `convert_qat`)."""
        raise ConfigError(f"scheme {self.scheme.name!r} has no QAT path")

    def convert_qat(self, prepared: nn.Module) -> QuantizedModel:
        """The quantized program of a model `prepare_qat` made and that was fine-tuned since."""
        raise ConfigError(f"scheme {self.scheme.name!r} has no QAT path")

    @abstractmethod
    def load(self, folder: Path) -> QuantizedModel:
        """The program `QuantizedModel.save` wrote into `folder` (safe loading: no pickled code is executed)."""
