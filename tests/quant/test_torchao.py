"""torchao schemes (torchao-int8-dyn, torchao-int8-wo) on a tiny ViT and a tiny timm ViT.

torchao quantizes nn.Linear layers only; none of the registered timm students (all CNNs) has one, so the timm
student here is timm's own test ViT, and `problems` must name a CNN student as one these schemes cannot serve.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vjepa_edge.errors import ConfigError
from vjepa_edge.models.students import create_student
from vjepa_edge.quant import get_scheme
from vjepa_edge.quant._program import ProgramModel

SCHEMES = ["torchao-int8-dyn", "torchao-int8-wo"]
KEEP = ("blocks.0.mlp",)  # left in float in the ViT fixture


def _vit() -> nn.Module:
    torch.manual_seed(0)
    return create_student("vit_tiny", frames=4, size=32, patch_size=8, depth=1).eval()


def _clip(model: nn.Module, batch: int = 2, seed: int = 7) -> torch.Tensor:
    return torch.randn(model.input_spec.shape(batch), generator=torch.Generator().manual_seed(seed))


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return F.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()


def _int8_weights(q: ProgramModel) -> list[str]:
    """Names of the program's weights stored as int8 (torchao subclasses hold their int8 data as `qdata`)."""
    return [k for k, v in q.program.state_dict.items() if getattr(v, "qdata", v).dtype == torch.int8]


@pytest.fixture(scope="module")
def vit() -> nn.Module:
    return _vit()


@pytest.fixture(scope="module")
def timm_vit() -> nn.Module:
    torch.manual_seed(0)
    return create_student("timm/test_vit", frames=4, size=32).eval()  # 2x2x2 tokens, 24 linears


@pytest.fixture(scope="module", params=SCHEMES)
def vit_q(request: pytest.FixtureRequest, vit: nn.Module) -> ProgramModel:
    before = {k: v.clone() for k, v in vit.state_dict().items()}
    q = get_scheme(request.param).load().quantize(vit, None, keep_float=KEEP)
    assert all(torch.equal(v, vit.state_dict()[k]) for k, v in before.items()), "the input model was changed"
    return q


@pytest.mark.parametrize("name", SCHEMES)
def test_vit_and_timm_vit_are_close_to_fp32_and_quantized(name: str, vit: nn.Module, timm_vit: nn.Module) -> None:
    impl = get_scheme(name).load()
    for model in (vit, timm_vit):
        assert impl.problems(model) == []
        q = impl.quantize(model, None)
        x = _clip(model)
        with torch.no_grad():
            ref, out = model(x), q(x)
        assert 0.99 < _cosine(ref, out) < 1.0
        assert not torch.equal(ref, out)
        linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        assert len(_int8_weights(q)) == len(linears)


def test_cnn_student_is_named_a_problem() -> None:
    with torch.device("meta"):
        cnn = create_student("resnet18", frames=4, size=64)
    for name in SCHEMES:
        (problem,) = get_scheme(name).load().problems(cnn)
        assert "nn.Linear" in problem and "xnnpack-int8" in problem


def test_kept_module_stays_float(vit: nn.Module, vit_q: ProgramModel) -> None:
    weights = vit_q.program.state_dict
    for name in ("blocks.0.mlp.fc1.weight", "blocks.0.mlp.fc2.weight"):
        assert type(weights[name]) in (torch.Tensor, nn.Parameter) and weights[name].dtype == torch.float32
    assert sorted(_int8_weights(vit_q)) == [
        "blocks.0.attn.proj.weight",
        "blocks.0.attn.qkv.weight",
        "patch_embed.proj.weight",
    ]


def test_save_load_round_trip(tmp_path: Path, vit: nn.Module, vit_q: ProgramModel) -> None:
    files = vit_q.save(tmp_path / "q")
    loaded = get_scheme(vit_q.scheme.name).load().load(tmp_path / "q")
    x = _clip(vit, seed=3)
    assert torch.equal(loaded(x), vit_q(x))
    assert loaded.size_bytes == files[0].stat().st_size == vit_q.size_bytes
    assert loaded.keep_float == KEEP


@pytest.mark.slow  # a second interpreter imports torch and torchao again (~5-15 s)
def test_a_fresh_process_loads_the_program(tmp_path: Path, vit_q: ProgramModel) -> None:
    """Loading registers torchao's ops and allowlists its tensor subclasses itself (nothing imported before)."""
    if vit_q.scheme.name != SCHEMES[0]:
        pytest.skip("once is enough")
    vit_q.save(tmp_path / "q")
    code = (
        "import sys, torch; from vjepa_edge.quant import get_scheme; "
        f"q = get_scheme({vit_q.scheme.name!r}).load().load(sys.argv[1]); "
        "print(q(torch.zeros(q.input_spec.shape(1))).shape)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "q")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "torch.Size([1, 32, 192])" in out.stdout


def test_qat_prepare_train_convert() -> None:
    model = _vit()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    impl = get_scheme("torchao-int8-dyn").load()
    prepared = impl.prepare_qat(model)
    assert prepared.training and type(prepared.blocks[0].mlp.fc1).__name__ == "FakeQuantizedLinear"
    opt = torch.optim.AdamW(prepared.parameters(), lr=1e-4)
    for seed in (1, 2):
        x = _clip(model, seed=seed)
        loss = F.mse_loss(prepared(x), model(x).detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items()), "QAT trained the input model"
    q = impl.convert_qat(prepared)
    x = _clip(model, seed=5)
    with torch.no_grad():
        assert _cosine(model(x), q(x)) > 0.99
    assert len(_int8_weights(q)) == 5


def test_weight_only_has_no_qat_path() -> None:
    with pytest.raises(ConfigError, match="no QAT path"):
        get_scheme("torchao-int8-wo").load().prepare_qat(_vit())
