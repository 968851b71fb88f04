"""What every export target implements, so that `vjepa_edge.export.run` chains the same stages for all of them.

A `TargetImpl` lowers a program (the fp32 ExportedProgram of the exported part, the student encoder or its
predictor, or the quantized program of the target's scheme) into a `Lowered` artifact, writes it to a path, runs
it on inputs where this machine can, checks its structure where it cannot, and describes what runs inside the
backend's delegate. A `Signature` says what the artifact takes (one clip for the encoder; tokens and indices for
the predictor).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from vjepa_edge.errors import ConfigError

if TYPE_CHECKING:
    from torch.export import ExportedProgram

    from vjepa_edge.export.targets import Target
    from vjepa_edge.models.inputs import InputSpec
    from vjepa_edge.quant.base import QuantizedModel


@dataclass(frozen=True)
class Signature:
    """The inputs of an artifact at batch 1: their names and an example of each (shape and dtype). `spec`: the
    clip contract of an encoder (None for a part that takes no clip, the predictor)."""

    names: tuple[str, ...]
    example: tuple[Tensor, ...]
    spec: InputSpec | None = None

    @classmethod
    def of_spec(cls, spec: InputSpec) -> Signature:
        return cls(("clip",), spec.example_inputs(1), spec)

    @property
    def shapes(self) -> list[list[int]]:
        return [list(t.shape) for t in self.example]

    def example_inputs(self, batch: int = 1) -> tuple[Tensor, ...]:
        """As `InputSpec.example_inputs`, so exporters that take a spec take a signature too (batch 1 only)."""
        if batch != 1:
            raise ConfigError(f"an artifact's signature is fixed at batch 1, not {batch}")
        return self.example


@dataclass
class Lowered:
    """A lowered artifact in memory: `artifact` is the backend's own object (an ExecutorchProgramManager, an ONNX
    model's bytes, a Core ML MLModel); `graph` what the delegation report reads (an edge program, an ONNX proto)."""

    artifact: Any
    graph: Any = None
    delegation: dict[str, Any] = field(default_factory=dict)  # filled where the graph changes after lowering
    notes: list[str] = field(default_factory=list)


class TargetImpl(ABC):
    """The implementation of a registered `Target` (`Target.load()` makes one)."""

    parts: tuple[str, ...] = ("encoder",)  # the parts (`vjepa_edge.export.parts`) this target exports

    def __init__(self, target: Target) -> None:
        self.target = target

    def check(self) -> None:
        """Refuse before any work when this target cannot be made on this machine (a missing SDK)."""
        return None

    def export_form(self, model: nn.Module) -> nn.Module:
        """What the export stage exports for this target: `model` (its training form), or a module with the same
        numbers written in operators the backend takes whole (XNNPACK: `vjepa_edge.models.deploy.deploy_form`)."""
        return model

    @abstractmethod
    def lower(
        self, model: nn.Module, program: ExportedProgram, quantized: QuantizedModel | None, signature: Signature
    ) -> Lowered:
        """Lower the part: `program` is its fp32 ExportedProgram at batch 1 (`model` the eager module it came
        from), `quantized` the program of the target's scheme for int8 targets (None for float ones)."""

    @abstractmethod
    def write(self, lowered: Lowered, path: Path) -> None:
        """Write the artifact to `path` (a temporary path beside the final one: the caller renames it)."""

    def cannot_run(self) -> str | None:
        """Why this machine cannot run the artifact (None: it can, and `run` computes its outputs)."""
        return None if self.target.runs_here else f"{self.target.backend} does not run on this machine"

    def run(self, path: Path, inputs: Sequence[tuple[Tensor, ...]]) -> Tensor:
        """Outputs (float32) of the artifact at `path`, one call per input tuple (batch 1 each), concatenated
        along the batch: [len(inputs), N, D]."""
        raise NotImplementedError(self.cannot_run() or "")

    @abstractmethod
    def structure(self, path: Path, lowered: Lowered, signature: Signature) -> dict[str, Any]:
        """A structural check of the artifact at `path` (it loads, takes the signature's inputs, the backend holds
        the graph); raises VerificationError when it fails, else returns what it checked."""

    @abstractmethod
    def delegation(self, lowered: Lowered, program: ExportedProgram) -> dict[str, Any]:
        """What runs inside the backend and what outside (operators, partitions, FLOPs where counted)."""
