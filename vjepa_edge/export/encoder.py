"""Exported artifacts run by their own runtime as the modules they came from: an encoder, and a predictor.

`ArtifactEncoder(path)` runs the `.pte` through the ExecuTorch runtime or the `.onnx` through onnxruntime (the
target's `TargetImpl.run`, one batch-1 call per clip, as a device runs it) and looks like any encoder to the
probes (`vjepa_edge.eval.probe.extract_features`: a module with `token_grid`). So the accuracy of what ships is
measured on what ships, not on the eager module it came from. The artifact's target, student and input come from
the `export_report.json` that `vjepa-edge export` wrote beside it; an artifact this machine cannot run (Core ML,
Vulkan, QNN) is refused with the reason.

`PredictorArtifact(path)` runs an exported predictor (`vjepa-edge export --part predictor`) the same way: context
tokens and indices in, teacher-space predictions out, for the surprise of the shipped model
(`vjepa_edge.eval.surprise.student_surprise_model(run, encoder=..., predictor=PredictorArtifact(path))`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from torch import Tensor, nn

from vjepa_edge.errors import ConfigError

if TYPE_CHECKING:
    from vjepa_edge.export.artifacts import Artifact
    from vjepa_edge.export.base import TargetImpl


def _runnable(path: str | Path, part: str) -> tuple[Artifact, TargetImpl]:
    """The exported `part` at `path` (with its export report entry) and its target's runner, or a ConfigError."""
    from vjepa_edge.export.artifacts import find_artifacts

    (artifact,) = find_artifacts(path)
    if artifact.target is None or artifact.input_shape is None or artifact.entry is None:
        raise ConfigError(
            f"{artifact.path} has no entry in the export_report.json beside it",
            hint="run it through `vjepa-edge export`, which records its target and input",
        )
    if artifact.entry.get("part", "encoder") != part:
        raise ConfigError(
            f"{artifact.path} is an exported {artifact.entry.get('part')}, not an exported {part}",
            hint=f"pass the {part} artifact (`vjepa-edge export RUN --part {part}` writes it)",
        )
    impl = artifact.target.load()
    reason = impl.cannot_run()
    if reason:
        raise ConfigError(
            f"cannot run {artifact.path} here: {reason}",
            hint="run it on its device, or export a target this machine runs (xnnpack-*, onnx-*)",
        )
    return artifact, impl


class ArtifactEncoder(nn.Module):
    """Tokens [B, N, D] of clips [B, C, T, H, W] from an exported encoder artifact, run by its runtime."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        from vjepa_edge.models.inputs import InputSpec

        artifact, self.impl = _runnable(path, "encoder")
        self.path = artifact.path
        self.target = artifact.target
        entry = artifact.entry or {}
        self.input_spec = InputSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in entry["input"].items()})
        self.input_shape = tuple(artifact.input_shape)

    def token_grid(self, clip: Tensor) -> tuple[int, int, int]:
        return self.input_spec.grid

    def forward(self, clip: Tensor) -> Tensor:
        if tuple(clip.shape[1:]) != self.input_shape[1:]:
            raise ConfigError(
                f"{self.path.name} takes clips of shape {list(self.input_shape[1:])}, got {list(clip.shape[1:])}"
            )
        return self.impl.run(self.path, [(clip[i : i + 1].float(),) for i in range(clip.shape[0])])


class PredictorArtifact(nn.Module):
    """Predictions [B, M, D_teacher] from an exported predictor (predictor + projector, `PredictorModule`) run by
    its runtime: context tokens [B, K, D], context_idx [B, K], target_idx [B, M], one batch-1 call per sample.

    K and M were fixed at export by its context choice (`--context`, default `first-half`; the report's
    `predictor` entry): a split of other sizes is refused with what the artifact takes. The index values are
    inputs, so any K context and M target positions of its grid can be asked for."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        artifact, self.impl = _runnable(path, "predictor")
        self.path = artifact.path
        self.target = artifact.target
        info = artifact.entry.get("predictor") or {}
        try:
            self.context_tokens, self.target_tokens = int(info["context_tokens"]), int(info["target_tokens"])
            self.context_name, self.grid = str(info["context"]), tuple(info["grid"])
        except (KeyError, TypeError, ValueError):
            raise ConfigError(
                f"the export report of {self.path} has no predictor entry (context, grid, token counts)",
                hint="export the predictor again with `vjepa-edge export RUN --part predictor`",
            ) from None

    def check_split(self, context_tokens: int, target_tokens: int) -> None:
        """Refuse a split of K context and M target tokens that the artifact was not exported for."""
        if (context_tokens, target_tokens) != (self.context_tokens, self.target_tokens):
            t, h, w = self.grid
            raise ConfigError(
                f"{self.path.name} predicts {self.target_tokens} target tokens from {self.context_tokens} context "
                f"tokens (its '{self.context_name}' split of the {t}x{h}x{w} grid), not {target_tokens} from "
                f"{context_tokens}",
                hint=f"use the split it was exported for (context_steps={self.context_tokens // (h * w)}), or export "
                "the predictor again with the --context that gives yours",
            )

    def forward(self, tokens: Tensor, context_idx: Tensor, target_idx: Tensor) -> Tensor:
        self.check_split(context_idx.shape[1], target_idx.shape[1])
        inputs = [
            (tokens[i : i + 1].float().contiguous(), context_idx[i : i + 1].long(), target_idx[i : i + 1].long())
            for i in range(tokens.shape[0])
        ]
        return self.impl.run(self.path, inputs)
