"""The export form (`vjepa_edge.models.deploy`) lowers to XNNPACK as one delegate partition with nothing outside,
fp32 and PT2E int8, runs in ExecuTorch's runtime with the training form's numbers, and is what xnnpack-fp32 lowers."""

from __future__ import annotations

import pytest
import torch

from vjepa_edge.models.arch import EncoderArch
from vjepa_edge.models.deploy import PARTITIONS, deploy_form
from vjepa_edge.models.layers import Attention
from vjepa_edge.models.vit import VisionTransformer


def _lower(program: torch.export.ExportedProgram):
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    from vjepa_edge.export.delegation import pte_delegation

    edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
    return edge, pte_delegation(edge.exported_program().graph_module)


def _run(edge, x: torch.Tensor) -> torch.Tensor:
    import executorch.kernels.quantized  # noqa: F401  (int8: q/dq kernels, should any stay outside)
    from executorch.runtime import Runtime

    data = edge.to_executorch().buffer  # kept alive: the loaded program reads from it
    program = Runtime.get().load_program(data)
    return program.load_method("forward").execute([x])[0]


def _pico(pos: str) -> VisionTransformer:
    return VisionTransformer(EncoderArch.from_size("vit_pico", pos=pos)).eval()


@pytest.mark.parametrize("pos", ["rope", "sincos"])
def test_fp32_export_form_is_one_partition(pos: str) -> None:
    model = _pico(pos)
    example = model.example_inputs(1)
    edge, report = _lower(torch.export.export(deploy_form(model), example))
    assert report["partitions"] == PARTITIONS == 1
    assert report["outside"] == {}  # no LayerNorm, unbind, SDPA guard, scalar mul or expand left out
    assert report["inside"].get("aten.bmm.default") == 2 * model.arch.depth  # attention is 3-D bmm, delegated
    assert report["flops_share_inside"] == 1.0
    x = torch.randn_like(example[0])
    with torch.no_grad():
        ref = model(x)  # the training form
    assert float((_run(edge, x) - ref).abs().max()) <= 1e-4


def test_int8_export_form_is_one_partition() -> None:
    """PT2E with XNNPACKQuantizer on linears (as vjepa_edge.quant.pt2e): one partition too; attention, LayerNorm
    statistics and the elementwise ops stay fp32 inside it."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        LINEAR_TARGETS,
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    model = _pico("rope")
    example = model.example_inputs(1)
    quantizer = XNNPACKQuantizer()
    for op in LINEAR_TARGETS:
        quantizer.set_operator_type(op, get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(torch.export.export(deploy_form(model), example).module(), quantizer)
    with torch.no_grad():
        for _ in range(4):
            prepared(torch.randn_like(example[0]))
    edge, report = _lower(torch.export.export(convert_pt2e(prepared), example))
    assert report["partitions"] == PARTITIONS
    assert report["outside"] == {}
    assert report["inside"].get("quantized_decomposed.quantize_per_tensor.default", 0) > 0  # it is int8
    x = torch.randn_like(example[0])
    with torch.no_grad():
        ref = model(x)
    cos = torch.nn.functional.cosine_similarity(_run(edge, x).flatten(), ref.flatten(), dim=0)
    assert float(cos) >= 0.995


def test_targets_export_their_form() -> None:
    """XNNPACK targets export the export form (same names and weights); Core ML and ONNX the training form, which
    they take whole themselves (SDPA and layer_norm, LayerNormalization)."""
    from vjepa_edge.export.targets import get_target
    from vjepa_edge.models.deploy import BmmAttention

    model = _pico("rope")
    for name in ("xnnpack-fp32", "xnnpack-int8"):
        form = get_target(name).load().export_form(model)
        assert type(form.blocks[0].attn) is BmmAttention and not form.training
        assert form.state_dict().keys() == model.state_dict().keys()
    for name in ("coreml-fp16", "onnx-fp32", "mlpackage-fp16"):
        assert get_target(name).load().export_form(model) is model
    assert type(model.blocks[0].attn) is Attention  # the caller's model keeps its training form
