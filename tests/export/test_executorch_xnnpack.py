"""A tiny V-JEPA encoder built by this code lowers to ExecuTorch with the XNNPACK delegate and runs in
ExecuTorch's runtime with the same numbers as eager: proof that the locked torch/executorch pair works and
that the model code (Linear tubelet embedding, SDPA, RoPE) lowers."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from vjepa_edge.models.arch import EncoderArch
from vjepa_edge.models.vit import VisionTransformer


@pytest.mark.slow  # tests/export/test_export.py runs every exported .pte against eager in the default suite
@pytest.mark.parametrize("pos", ["rope", "sincos"])
def test_encoder_runs_in_executorch_xnnpack(pos: str) -> None:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from executorch.runtime import Runtime

    model = VisionTransformer(EncoderArch.from_size("vit_pico", pos=pos)).eval()
    example = model.example_inputs(batch=1)
    program = to_edge_transform_and_lower(
        torch.export.export(model, example), partitioner=[XnnpackPartitioner()]
    ).to_executorch()
    ops = Counter(str(n.target) for n in program.exported_program().graph_module.graph.nodes if n.op == "call_function")
    assert ops["executorch_call_delegate"] > 0  # linears and attention run inside XNNPACK
    assert not any("convolution" in op for op in ops)  # no Conv3d reached the program

    method = Runtime.get().load_program(program.buffer).load_method("forward")
    x = torch.randn_like(example[0])  # a fresh input, not the one the program was traced with
    out = method.execute([x])[0]
    with torch.no_grad():
        ref = model(x)
    assert out.shape == ref.shape == (1, 18, 48)
    assert float((out - ref).abs().max()) <= 1e-4
