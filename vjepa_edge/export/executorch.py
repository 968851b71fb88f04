"""ExecuTorch .pte targets: XNNPACK, Core ML and Vulkan delegates, each with its own partitioner (passed through).

`to_edge_transform_and_lower(program, partitioner=[...])` then `to_executorch()` (edge-api 1.1). The program is
the student's fp32 ExportedProgram, or the quantized program of the target's PT2E scheme (`ProgramModel.program`);
for XNNPACK the export stage exports the model's export form (`export_form`, `vjepa_edge.models.deploy`: the same
numbers, in operators XNNPACK delegates, so the delegate is one partition instead of one per LayerNorm and SDPA).
Lowering can take over the program's constants (Core ML does), so a copy is lowered and the caller's program
stays usable. The artifact runs in ExecuTorch's Python runtime where its backend is registered (the Linux wheel
registers XNNPACK, QNN and OpenVINO, not Core ML or Vulkan: fact 9); quantized kernels are registered first
(`executorch.kernels.quantized`) for int8 programs whose q/dq ops stay outside the delegate (fact 8).
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from vjepa_edge.errors import ConfigError, VerificationError
from vjepa_edge.export.base import Lowered, Signature, TargetImpl

if TYPE_CHECKING:
    from collections.abc import Sequence

    from torch.export import ExportedProgram

    from vjepa_edge.quant.base import QuantizedModel

log = logging.getLogger(__name__)

BACKEND_IDS = {"xnnpack": "XnnpackBackend", "coreml": "CoreMLBackend", "vulkan": "VulkanBackend", "qnn": "QnnBackend"}
# Backends whose fp32 program is exported from the model's export form (`vjepa_edge.models.deploy`: attention as 3-D
# bmm, LayerNorm in elementwise ops), which XNNPACK delegates whole. Core ML keeps SDPA and layer_norm whole itself.


def partitioner(backend: str) -> Any:
    """The backend's own partitioner, default settings (Core ML: fp16 compute, iOS 17 as the quantize scheme)."""
    if backend == "xnnpack":
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

        return XnnpackPartitioner()
    if backend == "coreml":
        import coremltools as ct
        from executorch.backends.apple.coreml.compiler import CoreMLBackend
        from executorch.backends.apple.coreml.partition import CoreMLPartitioner

        specs = CoreMLBackend.generate_compile_specs(
            minimum_deployment_target=ct.target.iOS17, compute_precision=ct.precision.FLOAT16
        )
        return CoreMLPartitioner(compile_specs=specs)
    if backend == "vulkan":
        from executorch.backends.vulkan.partitioner.vulkan_partitioner import VulkanPartitioner

        return VulkanPartitioner()
    raise ConfigError(f"no ExecuTorch partitioner for backend {backend!r}")


def lower_program(program: ExportedProgram, backend: str, fp32: ExportedProgram | None = None) -> Lowered:
    """`program` lowered with the backend's partitioner: the ExecutorchProgramManager, the edge graph and its
    delegation report (made before `to_executorch`, which rewrites the edge graph in place). `fp32`: the fp32
    program whose FLOPs the report counts too."""
    from executorch.exir import to_edge_transform_and_lower

    from vjepa_edge.export.delegation import pte_delegation

    try:
        edge = to_edge_transform_and_lower(copy.deepcopy(program), partitioner=[partitioner(backend)])
        graph = edge.exported_program().graph_module
        delegation = pte_delegation(graph, fp32)
        program_manager = edge.to_executorch()
    except Exception as e:  # the lowering stack raises many kinds; all mean this student does not lower here
        raise ConfigError(
            f"ExecuTorch cannot lower this student to {backend}: {type(e).__name__}: {e}",
            hint="try another target (`vjepa-edge list targets`)",
        ) from None
    return Lowered(program_manager, graph, delegation)


def registered_backends() -> list[str]:
    from executorch.runtime import Runtime

    return list(Runtime.get().backend_registry.registered_backend_names)


class PteTarget(TargetImpl):
    """A .pte with one delegate: XNNPACK, Core ML or Vulkan."""

    parts = ("encoder", "predictor")

    @property
    def backend_id(self) -> str:
        return BACKEND_IDS[self.target.backend]

    def export_form(self, model: nn.Module) -> nn.Module:
        """XNNPACK: the model's export form (`vjepa_edge.models.deploy`, one delegate partition); others: the model."""
        from vjepa_edge.models.deploy import FORM_BACKENDS, deploy_form

        return deploy_form(model).eval() if self.target.backend in FORM_BACKENDS else model

    def lower(
        self, model: nn.Module, program: ExportedProgram, quantized: QuantizedModel | None, signature: Signature
    ) -> Lowered:
        source = program
        if quantized is not None:
            source = getattr(quantized, "program", None)
            if source is None:
                raise ConfigError(
                    f"scheme {quantized.scheme.name!r} made no ExportedProgram for {self.target.name}",
                    hint=f"schemes for {self.target.name}: {', '.join(self.target.schemes)}",
                )
        return lower_program(source, self.target.backend, program)

    def write(self, lowered: Lowered, path: Path) -> None:
        with open(path, "wb") as f:
            lowered.artifact.write_to_file(f)

    def cannot_run(self) -> str | None:
        backends = registered_backends()
        if self.backend_id in backends:
            return None
        return (
            f"{self.backend_id} is not registered in this ExecuTorch runtime (registered: {', '.join(backends)}); "
            f"{self.target.backend} .pte files are made on Linux and run on their devices"
        )

    def run(self, path: Path, inputs: Sequence[tuple[Tensor, ...]]) -> Tensor:
        from executorch.runtime import Runtime

        if self.target.precision == "int8":
            import executorch.kernels.quantized  # noqa: F401  q/dq kernels for ops left outside the delegate
        method = Runtime.get().load_program(Path(path)).load_method("forward")
        outs = [method.execute([t.contiguous() for t in args])[0] for args in inputs]
        return torch.cat([o.float() for o in outs])

    def structure(self, path: Path, lowered: Lowered, signature: Signature) -> dict[str, Any]:
        """The file parses as an ExecuTorch program taking the signature's inputs, and the delegate holds the
        graph: at least one partition of the target's backend, no other backend."""
        from executorch.exir.backend.utils import get_delegates
        from executorch.runtime import Runtime

        try:
            meta = Runtime.get().load_program(Path(path)).metadata("forward")
        except Exception as e:  # a truncated or foreign file
            raise VerificationError(f"{path} is not a loadable ExecuTorch program: {e}") from None
        sizes = [list(meta.input_tensor_meta(i).sizes()) for i in range(meta.num_inputs())]
        if sizes != signature.shapes:
            raise VerificationError(f"{path} takes inputs of shapes {sizes}, not {signature.shapes}")
        gm = lowered.graph
        ids = [getattr(gm, call.target).backend_id for call in get_delegates(gm.graph)]
        if not ids or set(ids) != {self.backend_id}:
            raise VerificationError(
                f"{path}: the {self.backend_id} delegate holds none of the graph (delegates: {ids or 'none'})"
            )
        return {"input": sizes[0] if len(sizes) == 1 else sizes, "partitions": len(ids), "backend": self.backend_id}

    def delegation(self, lowered: Lowered, program: ExportedProgram) -> dict[str, Any]:
        return lowered.delegation
