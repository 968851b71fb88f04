"""PT2E schemes (xnnpack-int8, xnnpack-int8-dyn, coreml-int8) on a tiny ViT and a tiny timm CNN.

Each scheme quantizes once per model (module fixtures); the tests then check closeness to fp32 and that something
was quantized, the save -> load round trip, modules kept in float, QAT, and the safe loading of programs.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vjepa_edge.errors import CheckpointError, ConfigError
from vjepa_edge.models.students import create_student
from vjepa_edge.quant import get_scheme
from vjepa_edge.quant._program import PROGRAM_FILE, ProgramModel
from vjepa_edge.runinfo import file_mode

# CoreMLQuantizer builds ~400 pattern graphs once per process (~15 s here): `-m "not slow"` leaves it out.
SCHEMES = ["xnnpack-int8", "xnnpack-int8-dyn", pytest.param("coreml-int8", marks=pytest.mark.slow)]
NAMES = ["xnnpack-int8", "xnnpack-int8-dyn", "coreml-int8"]
KEEP = ("blocks.0.mlp", "blocks.0.attn.proj")  # left in float in the ViT fixture: a whole MLP and one linear
# Compared by name: the op library is registered only once a PT2E module is imported.
DQ_TENSOR = "quantized_decomposed.dequantize_per_tensor.default"
DQ_CHANNEL = "quantized_decomposed.dequantize_per_channel.default"


def _is_dq(node: object) -> bool:
    return isinstance(node, torch.fx.Node) and str(node.target) in (DQ_TENSOR, DQ_CHANNEL)


def _vit() -> nn.Module:
    torch.manual_seed(0)
    return create_student("vit_tiny", frames=4, size=32, patch_size=8, depth=1).eval()  # 2x4x4 tokens, 1 block


def _clips(model: nn.Module, n: int, batch: int = 2, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(model.input_spec.shape(batch), generator=g) for _ in range(n)]


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return F.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()


@pytest.fixture(scope="module")
def vit() -> nn.Module:
    return _vit()


@pytest.fixture(scope="module")
def resnet() -> nn.Module:
    torch.manual_seed(0)
    return create_student("resnet18", frames=4, size=64).eval()  # 2x2x2 tokens


@pytest.fixture(scope="module", params=SCHEMES)
def vit_q(request: pytest.FixtureRequest, vit: nn.Module) -> ProgramModel:
    before = {k: v.clone() for k, v in vit.state_dict().items()}
    calls: list[int] = []
    q = get_scheme(request.param).load().quantize(vit, _clips(vit, 2, batch=1), keep_float=KEEP, progress=calls.append)
    assert all(torch.equal(v, vit.state_dict()[k]) for k, v in before.items()), "the input model was changed"
    assert calls == ([1, 1] if q.scheme.calibrated else [])
    return q


@pytest.fixture(scope="module", params=SCHEMES)
def resnet_q(request: pytest.FixtureRequest, resnet: nn.Module) -> ProgramModel:
    return get_scheme(request.param).load().quantize(resnet, _clips(resnet, 2, batch=1))


def _check_close_and_quantized(model: nn.Module, q: ProgramModel) -> float:
    (x,) = _clips(model, 1, batch=2, seed=7)
    with torch.no_grad():
        ref, out = model(x), q(x)
    assert out.shape == ref.shape
    cos = _cosine(ref, out)
    assert 0.99 < cos < 1.0, f"{q.scheme.name}: cosine {cos:.6f} to fp32"
    assert not torch.equal(ref, out)
    weights_dq = [n for n in q.program.graph.nodes if str(n.target) == DQ_CHANNEL]
    assert weights_dq, "no per-channel int8 weights in the program"
    return cos


def test_vit_is_close_to_fp32_and_quantized(vit: nn.Module, vit_q: ProgramModel) -> None:
    _check_close_and_quantized(vit, vit_q)


def test_timm_cnn_is_close_to_fp32_and_quantized(resnet: nn.Module, resnet_q: ProgramModel) -> None:
    _check_close_and_quantized(resnet, resnet_q)


def test_save_load_round_trip(tmp_path: Path, vit: nn.Module, vit_q: ProgramModel) -> None:
    files = vit_q.save(tmp_path / "q")
    assert [f.name for f in files] == [PROGRAM_FILE, "quant.json"]
    assert all(f.stat().st_mode & 0o777 == file_mode() for f in files)
    assert not [p for p in (tmp_path / "q").iterdir() if p not in files], "a temp file was left behind"
    loaded = get_scheme(vit_q.scheme.name).load().load(tmp_path / "q")
    (x,) = _clips(vit, 1, batch=2, seed=3)
    assert torch.equal(loaded(x), vit_q(x))
    assert loaded.size_bytes == vit_q.size_bytes == files[0].stat().st_size
    assert loaded.keep_float == KEEP and loaded.input_spec == vit.input_spec


def _kept(name: str) -> bool:
    return any(name == k or name.startswith(k + ".") for k in KEEP)


def test_program_holds_int8_weights_not_float_copies(vit: nn.Module, vit_q: ProgramModel) -> None:
    """convert_pt2e leaves the float weights registered; the program must not carry them besides the int8 ones."""
    linears = [name for name, m in vit.named_modules() if isinstance(m, nn.Linear) and not _kept(name)]
    tensors = {**vit_q.program.state_dict, **vit_q.program.constants}
    assert not [name for name in linears if f"{name}.weight" in tensors]
    # int8: the linear weights, and for the static scheme the RoPE tables (XNNPACKQuantizer annotates their mul).
    assert sum(t.dtype == torch.int8 for t in tensors.values()) >= len(linears)
    kept = sum(p.numel() * 4 for name, p in vit.named_parameters() if _kept(name.rpartition(".")[0]))
    rest = sum(p.numel() * 4 for p in vit.parameters()) - kept
    assert sum(t.numel() * t.element_size() for t in tensors.values()) < kept + 0.5 * rest


def _linear_with_weight(q: ProgramModel, fqn: str) -> torch.fx.Node:
    """The linear node whose weight is the parameter `fqn` (directly or through a dequantize)."""
    sig = q.program.graph_signature
    placeholders = {**sig.inputs_to_parameters, **sig.inputs_to_buffers, **sig.inputs_to_lifted_tensor_constants}
    for node in q.program.graph.nodes:
        if node.target != torch.ops.aten.linear.default:
            continue
        w = node.args[1]
        source = w.args[0] if _is_dq(w) else w
        if placeholders.get(source.name) == fqn:
            return node
    raise AssertionError(f"no linear reads {fqn}")


def test_kept_modules_have_no_quantize_around_their_linears(vit: nn.Module, vit_q: ProgramModel) -> None:
    kept = [name for name, m in vit.named_modules() if isinstance(m, nn.Linear) and _kept(name)]
    assert len(kept) == 3
    for name in kept:
        node = _linear_with_weight(vit_q, f"{name}.weight")
        assert not _is_dq(node.args[0]) and not _is_dq(node.args[1]), name
        assert vit_q.program.state_dict[f"{name}.weight"].dtype == torch.float32


# xnnpack-int8-dyn shares this path with xnnpack-int8 (only the quantizer's config differs): left out for time.
@pytest.mark.slow  # tests/quant/test_qat.py runs the QAT fine-tune in the default suite
@pytest.mark.parametrize("name", [SCHEMES[0], SCHEMES[2]])
def test_qat_prepare_train_convert(name: str) -> None:
    model = _vit()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    impl = get_scheme(name).load()
    prepared = impl.prepare_qat(model)
    assert prepared.input_spec == model.input_spec
    prepared.eval()  # a training loop's mode switches work on the exported module
    prepared.train()
    opt = torch.optim.AdamW(prepared.parameters(), lr=1e-4)
    for x in _clips(model, 2, batch=3):  # any batch: QAT exports with a dynamic one
        loss = F.mse_loss(prepared(x), model(x).detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert not torch.equal(
        dict(prepared.named_parameters())["blocks.0.attn.qkv.weight"], before["blocks.0.attn.qkv.weight"]
    )
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items()), "QAT trained the input model"
    q = impl.convert_qat(prepared)
    (x,) = _clips(model, 1, seed=5)
    with torch.no_grad():
        assert _cosine(model(x), q(x)) > 0.99


def test_qat_refuses_batchnorm_weights_of_zero(resnet: nn.Module) -> None:
    """timm's zero_init_last: PT2E QAT would divide by them (NaN from the first step)."""
    with pytest.raises(ConfigError, match="BatchNorm") as e:
        get_scheme("xnnpack-int8").load().prepare_qat(resnet)
    assert "without --qat" in e.value.hint


def test_calibrated_scheme_refuses_missing_clips(vit: nn.Module) -> None:
    with pytest.raises(ConfigError, match="calibration"):
        get_scheme("xnnpack-int8").load().quantize(vit, None)


def test_unknown_keep_float_name_names_the_closest(vit: nn.Module) -> None:
    with pytest.raises(ConfigError, match="blocks.0.mlp.fc2"):
        get_scheme("xnnpack-int8-dyn").load().quantize(vit, None, keep_float=["blocks.0.mlp.fc3"])


@pytest.mark.slow
def test_fast_coreml_patterns_equal_the_library_ones() -> None:
    """The non-strict pattern builder gives the graphs of CoreMLQuantizer's own (strict) one, on a sample."""
    from executorch.backends.apple.coreml.quantizer import _coreml_quantizer_utils as utils

    from vjepa_edge.quant import pt2e

    def build_all() -> list[torch.fx.GraphModule]:
        return [
            utils.get_conv_bn_pattern(2, F.relu, True),
            utils.get_linear_pattern(F.gelu, False),
            utils.get_binary_op_act_pattern(torch.add, F.relu, False),
        ]

    library = build_all()
    with pt2e._fast_coreml_patterns():
        fast = build_all()
    assert utils._get_aten_graph_module is not pt2e._cached_pattern_graph  # restored
    for a, b in zip(library, fast, strict=True):
        assert _normalized(a) == _normalized(b)


def _normalized(gm: torch.fx.GraphModule) -> list[tuple]:
    index = {n: i for i, n in enumerate(gm.graph.nodes)}

    def refs(a: object) -> object:
        return torch.fx.node.map_arg(a, lambda n: ("node", index[n]))

    return [(n.op, str(n.target), refs(n.args), refs(n.kwargs)) for n in gm.graph.nodes]


class _Evil:
    def __reduce__(self) -> tuple:
        return (os.system, ("touch /tmp/vjepa-edge-pwned",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_load_refuses_an_archive_that_would_unpickle_code(tmp_path: Path, vit_q: ProgramModel) -> None:
    if vit_q.scheme.name != NAMES[0]:
        pytest.skip("once is enough")
    folder = tmp_path / "q"
    (program, _) = vit_q.save(folder)
    with zipfile.ZipFile(program) as z:
        members = {n: z.read(n) for n in z.namelist()}
    sample = next(n for n in members if n.endswith(".pt"))
    members[sample] = pickle.dumps(_Evil())
    with zipfile.ZipFile(program, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    with pytest.raises(CheckpointError, match="weights_only"):
        get_scheme(NAMES[0]).load().load(folder)
    assert not Path("/tmp/vjepa-edge-pwned").exists()


def test_load_refuses_another_schemes_program(tmp_path: Path, vit_q: ProgramModel) -> None:
    vit_q.save(tmp_path / "q")
    other = next(s for s in NAMES if s != vit_q.scheme.name)
    with pytest.raises(ConfigError, match=vit_q.scheme.name):
        get_scheme(other).load().load(tmp_path / "q")
