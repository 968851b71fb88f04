"""ONNX targets: onnx-fp32 (torch.onnx dynamo export, opset 20, one file) and onnx-int8 (the QDQ program of the
onnx-int8 scheme, as onnxruntime's quantize_static wrote it). Both run on onnxruntime's CPU provider."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from vjepa_edge.errors import ConfigError, VerificationError
from vjepa_edge.export.base import Lowered, Signature, TargetImpl

if TYPE_CHECKING:
    from collections.abc import Sequence

    from torch.export import ExportedProgram

    from vjepa_edge.quant.base import QuantizedModel


def session(path: Path) -> Any:
    """An onnxruntime CPU session with as many threads as torch uses."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxTarget(TargetImpl):
    """An .onnx file for ONNX Runtime."""

    parts = ("encoder", "predictor")

    def lower(
        self, model: nn.Module, program: ExportedProgram, quantized: QuantizedModel | None, signature: Signature
    ) -> Lowered:
        import onnx

        if quantized is not None:
            data = getattr(quantized, "model_bytes", None)
            if data is None:
                raise ConfigError(f"scheme {quantized.scheme.name!r} made no ONNX program")
            return Lowered(data, onnx.load_from_string(data))
        from vjepa_edge.quant.onnx import export_fp32

        with tempfile.TemporaryDirectory(prefix="vjepa-edge-onnx-") as tmp:
            path = Path(tmp) / "model.onnx"
            # the encoder's InputSpec, or the signature itself (it makes example inputs as a spec does)
            proto, _ = export_fp32(model, signature.spec or signature, path)
            return Lowered(path.read_bytes(), proto)

    def write(self, lowered: Lowered, path: Path) -> None:
        Path(path).write_bytes(lowered.artifact)

    def cannot_run(self) -> str | None:
        return None

    def run(self, path: Path, inputs: Sequence[tuple[Tensor, ...]]) -> Tensor:
        sess = session(path)
        names = [i.name for i in sess.get_inputs()]
        outs = []
        for args in inputs:
            feed = {n: np.ascontiguousarray(t.detach().cpu().numpy()) for n, t in zip(names, args, strict=True)}
            outs.append(sess.run(None, feed)[0])
        return torch.from_numpy(np.concatenate(outs)).float()

    def structure(self, path: Path, lowered: Lowered, signature: Signature) -> dict[str, Any]:
        import onnx

        try:
            onnx.checker.check_model(str(path))
        except Exception as e:
            raise VerificationError(f"{path} is not a valid ONNX model: {e}") from None
        dims = [[d.dim_value for d in i.type.tensor_type.shape.dim] for i in lowered.graph.graph.input]
        if dims != signature.shapes:
            raise VerificationError(f"{path} takes inputs of shapes {dims}, not {signature.shapes}")
        return {"input": dims[0] if len(dims) == 1 else dims}

    def delegation(self, lowered: Lowered, program: ExportedProgram) -> dict[str, Any]:
        from vjepa_edge.export.delegation import onnx_ops

        return onnx_ops(lowered.graph)
