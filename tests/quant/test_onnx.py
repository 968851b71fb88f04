"""onnx-int8: onnxruntime static QDQ int8 of a tiny ViT and a timm student stays close to fp32 while really
quantizing, keeps the named layers in float, and round-trips through its folder (model.onnx + quant.json)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from vjepa_edge.errors import ConfigError
from vjepa_edge.models.students import create_student
from vjepa_edge.quant.onnx import OnnxProgram, clip_feeds
from vjepa_edge.quant.schemes import get_scheme
from vjepa_edge.runinfo import file_mode

KEEP = {"vit": "blocks.1.mlp.fc2", "resnet18": "backbone.layer4.1.conv2"}
MIN_COSINE = 0.99


@dataclass
class Quantized:
    model: nn.Module
    program: OnnxProgram
    progress: list[int]
    batches: int


def _student(name: str) -> nn.Module:
    torch.manual_seed(0)
    if name == "vit":  # two blocks: export time, not the depth, is what this test pays for
        return create_student("vit_tiny", frames=4, size=32, patch_size=8, depth=2).eval()
    return create_student(name, frames=4, size=64).eval()


@pytest.fixture(scope="module", params=["vit", "resnet18"])
def quantized(request: pytest.FixtureRequest) -> Quantized:
    model = _student(request.param)
    g = torch.Generator().manual_seed(1)
    calibration = [torch.randn(model.input_spec.shape(2), generator=g) for _ in range(3)]  # batches of 2
    progress: list[int] = []
    program = (
        get_scheme("onnx-int8")
        .load()
        .quantize(model, calibration, keep_float=(KEEP[request.param],), progress=progress.append)
    )
    return Quantized(model, program, progress, len(calibration))


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a.flatten(1), b.flatten(1)).min().item()


def test_int8_is_close_to_fp32_and_really_quantized(quantized: Quantized) -> None:
    x = torch.randn(quantized.model.input_spec.shape(3), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = quantized.model(x)
    out = quantized.program(x)
    assert out.shape == ref.shape and out.dtype == torch.float32
    assert _cosine(out, ref) > MIN_COSINE
    assert not torch.allclose(out, ref, atol=1e-5)  # something was quantized
    ops = Counter(n.op_type for n in quantized.program.graph().graph.node)
    assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > 0


def test_progress_once_per_calibration_batch(quantized: Quantized) -> None:
    assert quantized.progress == [1] * quantized.batches


def test_keep_float_layer_has_float_weights(quantized: Quantized) -> None:
    graph = quantized.program.graph().graph
    made_by = {out: node.op_type for node in graph.node for out in node.output}
    layers = [n for n in graph.node if n.op_type in ("MatMul", "Gemm", "Conv")]
    int8 = {n.name: made_by.get(n.input[0]) == made_by.get(n.input[1]) == "DequantizeLinear" for n in layers}
    kept = [n for n in layers if n.name in quantized.program.excluded_nodes]
    assert len(kept) == 1  # the one Linear / Conv of the kept module
    # Its input and weight are float. (A bias can be one initializer shared with other layers: the exporter's
    # optimizer merges equal tensors, e.g. the zero biases of a fresh model, and onnxruntime quantizes it once.)
    assert made_by.get(kept[0].input[0]) != "DequantizeLinear" and made_by.get(kept[0].input[1]) != "DequantizeLinear"
    assert sum(int8.values()) == len(layers) - 1  # every other layer runs in int8


def test_save_load_round_trip(quantized: Quantized, tmp_path: Path) -> None:
    impl = get_scheme("onnx-int8").load()
    files = quantized.program.save(tmp_path)
    assert [f.name for f in files] == ["model.onnx", "quant.json"]
    assert (tmp_path / "model.onnx").stat().st_size == quantized.program.size_bytes
    assert all((f.stat().st_mode & 0o777) == file_mode() for f in files)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left behind
    meta = json.loads((tmp_path / "quant.json").read_text())
    assert meta["scheme"] == "onnx-int8" and meta["keep_float"] == list(quantized.program.keep_float)
    loaded = impl.load(tmp_path)
    x = torch.randn(quantized.model.input_spec.shape(1))
    assert torch.equal(loaded(x), quantized.program(x))
    assert loaded.input_spec == quantized.program.input_spec
    assert loaded.excluded_nodes == quantized.program.excluded_nodes


def test_refusals_before_any_export(tmp_path: Path) -> None:
    impl = get_scheme("onnx-int8").load()
    model = _student("vit")
    with pytest.raises(ConfigError, match="calibration clips"):
        impl.quantize(model, None)
    with pytest.raises(ConfigError, match=r"did you mean .*blocks\.1\.mlp\.fc2"):
        impl.quantize(model, [torch.zeros(model.input_spec.shape(1))], keep_float=("blocks.1.mlp.fc3",))
    with pytest.raises(ConfigError, match="missing model.onnx, quant.json"):
        impl.load(tmp_path)
    (tmp_path / "model.onnx").write_bytes(b"")
    (tmp_path / "quant.json").write_text(json.dumps({"scheme": "coreml-int8-wo"}))
    with pytest.raises(ConfigError, match="scheme 'coreml-int8-wo', not 'onnx-int8'"):
        impl.load(tmp_path)


def test_calibration_feeds_are_single_clips_of_the_input_spec() -> None:
    spec = _student("vit").input_spec
    done: list[int] = []
    feeds = list(clip_feeds([torch.zeros(spec.shape(3)), torch.zeros(spec.shape(1))], spec, done.append))
    assert len(feeds) == 4 and all(f.shape == spec.shape(1) and f.dtype == np.float32 for f in feeds)
    assert done == [1, 1]
    with pytest.raises(ConfigError, match="calibration batch of shape"):
        list(clip_feeds([torch.zeros(1, 3, 4, 64, 64)], spec, None))
