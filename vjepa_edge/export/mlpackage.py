"""Standalone Core ML packages (.mlpackage) through coremltools: fp16, or int8 from a Core ML quantize scheme.

mlpackage-fp16: `vjepa_edge.quant.coreml.convert_fp16` (torch.export -> `run_decompositions` -> `ct.convert`,
mlprogram, iOS 17, fp16). mlpackage-int8: the package of scheme coreml-int8-wo (int8 weights, fp16 compute), or
the PT2E program of coreml-int8 converted the same way (w8a8). Core ML predicts only on macOS, so on Linux the
package is checked as a spec: it loads without compiling (`skip_model_load=True`), takes the student's input, and
its ML program holds the model's operations.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from vjepa_edge.errors import ConfigError, VerificationError
from vjepa_edge.export.base import Lowered, Signature, TargetImpl

if TYPE_CHECKING:
    from torch.export import ExportedProgram

    from vjepa_edge.quant.base import QuantizedModel


def _convert(program: ExportedProgram) -> Any:
    import coremltools as ct
    import torch

    # coremltools 9 has no converter for aten.alias (a full-range slice); a view of the same shape is the same
    # tensor (as `vjepa_edge.quant.coreml.convert_fp16` does).
    table = {torch.ops.aten.alias.default: lambda x: x.view(x.shape)}
    try:
        return ct.convert(
            program.run_decompositions(table),
            convert_to="mlprogram",
            minimum_deployment_target=ct.target.iOS17,
            compute_precision=ct.precision.FLOAT16,
        )
    except Exception as e:  # coremltools raises many kinds; all mean this program does not convert
        raise ConfigError(
            f"coremltools cannot convert this program: {type(e).__name__}: {e}",
            hint="for mlpackage-int8, try --scheme coreml-int8-wo (int8 weights)",
        ) from None


def mil_ops(spec: Any) -> Counter[str]:
    """Operations of the main function of an ML program spec, by type."""
    ops: Counter[str] = Counter()
    for fn in spec.mlProgram.functions.values():
        for block in fn.block_specializations.values():
            ops.update(op.type for op in block.operations)
    return ops


class MlPackageTarget(TargetImpl):
    """A .mlpackage folder for Core ML."""

    def lower(
        self, model: nn.Module, program: ExportedProgram, quantized: QuantizedModel | None, signature: Signature
    ) -> Lowered:
        if quantized is None:
            from vjepa_edge.quant.coreml import convert_fp16

            mlmodel, _ = convert_fp16(model, signature.spec)
        elif getattr(quantized, "mlmodel", None) is not None:  # coreml-int8-wo: coremltools made the package
            mlmodel = quantized.mlmodel
        elif getattr(quantized, "program", None) is not None:  # coreml-int8: a PT2E program
            mlmodel = _convert(quantized.program)
        else:
            raise ConfigError(f"scheme {quantized.scheme.name!r} made no Core ML program")
        return Lowered(mlmodel, mlmodel.get_spec())

    def write(self, lowered: Lowered, path: Path) -> None:
        """The package at `path` (a folder; `path` itself must not exist yet)."""
        from vjepa_edge.quant.coreml import save_package

        save_package(lowered.artifact, Path(path))

    def cannot_run(self) -> str | None:
        from vjepa_edge.quant.coreml import NOT_MACOS

        return NOT_MACOS

    def structure(self, path: Path, lowered: Lowered, signature: Signature) -> dict[str, Any]:
        import coremltools as ct

        try:
            loaded = ct.models.MLModel(str(path), skip_model_load=True)
        except Exception as e:
            raise VerificationError(f"{path} is not a readable Core ML package: {e}") from None
        pb = loaded.get_spec()
        inputs = pb.description.input
        shape = list(inputs[0].type.multiArrayType.shape) if inputs else []
        if [shape] * len(inputs) != signature.shapes:
            raise VerificationError(f"{path} takes {len(inputs)} inputs of {shape}, not {signature.shapes}")
        ops = mil_ops(pb)
        if not any(op in ops for op in ("linear", "matmul", "conv")):
            raise VerificationError(f"{path}: its ML program holds no linear, matmul or conv operation")
        return {"input": shape, "ops": sum(ops.values()), "spec_version": pb.specificationVersion}

    def delegation(self, lowered: Lowered, program: ExportedProgram) -> dict[str, Any]:
        ops = mil_ops(lowered.graph)
        return {"ops": sum(ops.values()), "by_type": dict(sorted(ops.items(), key=lambda kv: -kv[1]))}
