"""An exported artifact as a frozen encoder: clips in, tokens out, computed by the artifact's own runtime.

`ArtifactEncoder(path)` runs the `.pte` through the ExecuTorch runtime or the `.onnx` through onnxruntime (the
target's `TargetImpl.run`, one batch-1 call per clip, as a device runs it) and looks like any encoder to the
probes (`vjepa_edge.eval.probe.extract_features`: a module with `token_grid`). So the accuracy of what ships is
measured on what ships, not on the eager module it came from. The artifact's target, student and input come from
the `export_report.json` that `vjepa-edge export` wrote beside it; an artifact this machine cannot run (Core ML,
Vulkan, QNN) is refused with the reason.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from vjepa_edge.errors import ConfigError


class ArtifactEncoder(nn.Module):
    """Tokens [B, N, D] of clips [B, C, T, H, W] from an exported encoder artifact, run by its runtime."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        from vjepa_edge.export.artifacts import find_artifacts
        from vjepa_edge.models.inputs import InputSpec

        (artifact,) = find_artifacts(path)
        if artifact.target is None or artifact.input_shape is None:
            raise ConfigError(
                f"{artifact.path} has no entry in the export_report.json beside it",
                hint="run it through `vjepa-edge export`, which records its target and input",
            )
        self.path = artifact.path
        self.target = artifact.target
        self.impl = artifact.target.load()
        reason = self.impl.cannot_run()
        if reason:
            raise ConfigError(
                f"cannot run {self.path} here: {reason}",
                hint="run it on its device, or export a target this machine runs (xnnpack-*, onnx-*)",
            )
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
