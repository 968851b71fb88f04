"""coreml-int8-wo: coremltools writes an .mlpackage whose Linear/Conv weights are int8 (the kept layer's stay fp16),
the Linux emulation rounds the weights exactly as coremltools did and stays close to fp32, and the package
round-trips through its folder (a loaded package cannot run off macOS and says so)."""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from vjepa_edge.errors import ConfigError
from vjepa_edge.models.students import create_student
from vjepa_edge.quant.coreml import PACKAGE, WEIGHT_THRESHOLD, CoreMLProgram, int8_weight
from vjepa_edge.quant.schemes import get_scheme
from vjepa_edge.runinfo import file_mode

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:coremltools")
LINUX_ONLY = pytest.mark.skipif(platform.system() == "Darwin", reason="Core ML itself runs there, not the emulation")

# resnet18: its convolutions are folded with their BatchNorms by coremltools (the weight const is renamed)
KEEP = {"vit": "blocks.1.mlp.fc2", "resnet18": "backbone.layer1.0.conv1"}
MIN_COSINE = 0.99


@dataclass
class Quantized:
    name: str
    model: nn.Module
    program: CoreMLProgram
    folder: Path


def _student(name: str) -> nn.Module:
    torch.manual_seed(0)
    if name == "vit":
        return create_student("vit_tiny", frames=4, size=32, patch_size=8, depth=2).eval()
    model = create_student(name, frames=4, size=64).eval()
    # BatchNorms as training leaves them, so that the fold scales every channel differently (timm's zero_init_last
    # gammas would fold to all-zero weights, which coremltools drops).
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.running_var.uniform_(0.5, 2.0)
                m.running_mean.normal_(0, 0.1)
    return model


@pytest.fixture(scope="module", params=["vit", "resnet18"])
def quantized(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Quantized:
    model = _student(request.param)
    program = get_scheme("coreml-int8-wo").load().quantize(model, None, keep_float=(KEEP[request.param],))
    folder = tmp_path_factory.mktemp(request.param)
    program.save(folder)
    return Quantized(request.param, model, program, folder)


def _stored_int8(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Weight const name -> (int8 codes, scales) as written in the package, read back through coremltools."""
    import coremltools as ct
    import coremltools.optimize as cto

    mlmodel = ct.models.MLModel(str(folder / PACKAGE), skip_model_load=True)
    meta = cto.coreml.get_weights_metadata(mlmodel, weight_threshold=0)
    out = {}
    for weight in meta.values():
        for op in weight.child_ops:
            if op.op_type == "constexpr_affine_dequantize":  # iOS17's int8 weight: data, scale, zero point
                names = op.params_name_mapping
                out[op.name.removesuffix("_quantized")] = (meta[names["quantized_data"]].val, meta[names["scale"]].val)
    return out


def _layers(model: nn.Module) -> list[str]:
    """The Linear/Conv layers whose weights Core ML quantizes."""
    kinds = nn.Linear | nn.modules.conv._ConvNd
    return [n for n, m in model.named_modules() if isinstance(m, kinds) and m.weight.numel() > WEIGHT_THRESHOLD]


def test_package_weights_are_int8_except_the_kept_layer(quantized: Quantized) -> None:
    stored = _stored_int8(quantized.folder)
    weights = quantized.program.weights
    assert set(stored) == set(weights.values())
    assert sorted(weights) == sorted(n for n in _layers(quantized.model) if n != KEEP[quantized.name])
    assert all(q.dtype == np.int8 and s.dtype == np.float16 for q, s in stored.values())
    if quantized.name == "vit":  # a parameter's const keeps its name: the kept weight is there, in fp16
        import coremltools as ct
        import coremltools.optimize as cto

        mlmodel = ct.models.MLModel(str(quantized.folder / PACKAGE), skip_model_load=True)
        kept = cto.coreml.get_weights_metadata(mlmodel)["p_blocks_1_mlp_fc2_weight_to_fp16"]
        assert kept.val.dtype == np.float16 and [op.op_type for op in kept.child_ops] == ["linear"]


def test_emulation_rounds_weights_as_coremltools_did(quantized: Quantized) -> None:
    stored = _stored_int8(quantized.folder)
    for module, const in quantized.program.weights.items():
        codes, scale = int8_weight(quantized.model.get_submodule(module).weight)
        want_codes, want_scale = (torch.from_numpy(a) for a in stored[const])
        if quantized.name == "vit":  # Linear weights are quantized as they are: the same codes, bit for bit
            assert torch.equal(codes, want_codes) and torch.equal(scale, want_scale.flatten()), module
        else:  # a conv folded with its BatchNorm: codes off by one at most, where the fold's fp16 rounding tips them
            off = (codes.int() - want_codes.int()).abs()
            assert off.max() <= 1 and (off == 0).float().mean() > 0.95, module


@LINUX_ONLY
def test_emulated_program_is_close_to_fp32(quantized: Quantized) -> None:
    program = quantized.program
    x = torch.randn(quantized.model.input_spec.shape(2), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = quantized.model(x)
    out = program(x)
    assert out.shape == ref.shape and out.dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(out.flatten(1), ref.flatten(1)).min() > MIN_COSINE
    assert not torch.allclose(out, ref, atol=1e-6)  # the weights were rounded
    assert program.emulated and "emulated on Linux" in program.note


@LINUX_ONLY
def test_save_load_round_trip(quantized: Quantized) -> None:
    folder = quantized.folder
    files = quantized.program.save(folder)  # a second save replaces the package
    assert [f.name for f in files] == [PACKAGE, "quant.json"]
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temp folder left behind
    modes = {p.stat().st_mode & 0o777 for p in (folder / PACKAGE).rglob("*") if p.is_file()}
    assert modes == {file_mode()}
    meta = json.loads((folder / "quant.json").read_text())
    assert meta["scheme"] == "coreml-int8-wo" and meta["weights"] == quantized.program.weights
    loaded = get_scheme("coreml-int8-wo").load().load(folder)
    assert loaded.size_bytes == quantized.program.size_bytes > 0
    assert loaded.weights == quantized.program.weights and not loaded.emulated
    with pytest.raises(ConfigError, match="Core ML runs only on macOS"):
        loaded(torch.zeros(quantized.model.input_spec.shape(1)))


def test_refusals(tmp_path: Path) -> None:
    impl = get_scheme("coreml-int8-wo").load()
    with pytest.raises(ConfigError, match=r"did you mean .*blocks\.1\.mlp\.fc2"):
        impl.quantize(_student("vit"), None, keep_float=("blocks.1.mlp.fc3",))
    with pytest.raises(ConfigError, match=f"missing {PACKAGE}, quant.json"):
        impl.load(tmp_path)
