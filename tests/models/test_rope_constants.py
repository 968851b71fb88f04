"""A RoPE ViT keeps its configured grid's cos/sin tables as constants: exported programs compute no positions.

PT2E quantizers annotate whatever arithmetic a graph holds; traced integer position arithmetic made calibration
fail ("Tensor dtype mismatch! Expected: Long, Got: float"). The tables must also change nothing: same numbers as
computing them in the forward, same state dict.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.export import ExportedProgram

from vjepa_edge.models.layers import rope_table
from vjepa_edge.models.students import create_student
from vjepa_edge.models.vit import VisionTransformer

# Ops that computing positions needs (index -> frame/row/column -> angle -> cos/sin); none may be in the graph.
POSITION_OPS = ("arange", "cos", "sin", "div", "floor_divide", "remainder", "pow", "reciprocal")


def _tiny() -> VisionTransformer:
    torch.manual_seed(0)
    return create_student("vit_tiny", frames=4, size=32, patch_size=8, depth=2).eval()


def _computed_ops(ep: ExportedProgram) -> list[str]:
    return [str(n.target) for n in ep.graph.nodes if n.op == "call_function"]


def _integer_nodes(ep: ExportedProgram) -> list[str]:
    """Nodes that compute an integer tensor (positions are integers before they become angles)."""
    out = []
    for n in ep.graph.nodes:
        val = n.meta.get("val")
        if n.op == "call_function" and isinstance(val, torch.Tensor) and not val.dtype.is_floating_point:
            out.append(f"{n.name}: {n.target}")
    return out


def test_exported_full_clip_computes_no_positions() -> None:
    model = _tiny()
    (x,) = model.input_spec.example_inputs()
    ep = torch.export.export(model, (x,))
    ops = _computed_ops(ep)
    assert not [op for op in ops if any(f"aten.{p}" in op for p in POSITION_OPS)], ops
    assert not _integer_nodes(ep)
    # The tables are the program's constants (non-persistent buffers), equal to what the forward computed before.
    cos, sin = rope_table(torch.arange(math.prod(model.grid)), model.grid, model.arch.head_dim)
    assert torch.equal(ep.constants["rope_cos"], cos) and torch.equal(ep.constants["rope_sin"], sin)
    assert "rope_cos" not in ep.state_dict
    with torch.no_grad():
        assert torch.equal(ep.module()(x), model(x))


def test_exported_context_clip_only_gathers_table_rows() -> None:
    model = _tiny()
    (x,) = model.input_spec.example_inputs(batch=2)
    idx = torch.stack([torch.randperm(math.prod(model.grid))[:11].sort().values for _ in range(2)])
    ep = torch.export.export(model, (x, idx))
    ops = _computed_ops(ep)
    assert not [op for op in ops if any(f"aten.{p}" in op for p in POSITION_OPS)], ops
    with torch.no_grad():
        assert torch.equal(ep.module()(x, idx), model(x, idx))


def test_stored_tables_equal_computed_ones_bit_for_bit() -> None:
    model = _tiny()
    n = math.prod(model.grid)
    for k in (1, 5, n):
        idx = torch.stack([torch.randperm(n)[:k].sort().values for _ in range(3)])
        for ours, computed in zip(
            model.rope(model.grid, idx, idx.device), rope_table(idx, model.grid, model.arch.head_dim), strict=True
        ):
            assert torch.equal(ours, computed)


def test_other_input_size_computes_its_own_tables() -> None:
    model = _tiny()
    x = torch.randn(1, 3, 6, 40, 40)  # grid (3, 5, 5), not the configured (2, 4, 4)
    grid = model.token_grid(x)
    cos, _ = model.rope(grid, None, x.device)
    assert torch.equal(cos, rope_table(torch.arange(75), grid, model.arch.head_dim)[0])
    with torch.no_grad():
        assert model(x).shape == (1, 75, model.embed_dim)


def test_state_dict_is_unchanged_and_loads_strictly() -> None:
    model = _tiny()
    sd = model.state_dict()
    assert not [k for k in sd if "rope" in k]
    other = create_student("vit_tiny", frames=4, size=32, patch_size=8, depth=2)
    other.load_state_dict(sd, strict=True)
    (x,) = model.input_spec.example_inputs()
    with torch.no_grad():
        assert torch.equal(other.eval()(x), model(x))


@pytest.mark.parametrize("pos", ["rope", "sincos"])
def test_built_on_meta_the_tables_are_real(pos: str) -> None:
    """`load_vjepa` builds on meta and assigns the file's tensors; the tables are in no file, so they stay real."""
    with torch.device("meta"):
        model = create_student("vit_tiny", frames=4, size=32, patch_size=8, depth=1, pos=pos)
    assert hasattr(model, "rope_cos") == (pos == "rope")
    if pos == "rope":
        assert not model.rope_cos.is_meta and not model.rope_sin.is_meta
