"""Tiny artifacts for the measurement tests, made once per test session: the export tests' tiny student (48 wide,
2 blocks, 4 frames at 32 px) lowered to an XNNPACK .pte in its training form (so LayerNorm runs outside the
delegate and the breakdown has rows of both kinds) and exported to ONNX; an ETDump of the .pte run on this
machine; a Core ML .pte of one Linear (made on Linux, runnable only on Apple devices)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import torch

from tests.export.conftest import tiny_student

_ROOT: list[Path] = []  # the session's folder, set by the first test that asks


def root(factory) -> Path:
    """A folder kept for the whole test session (`factory`: pytest's tmp_path_factory)."""
    if not _ROOT:
        _ROOT.append(factory.mktemp("tiny-artifacts"))
    return _ROOT[0]


@cache
def _pte(folder: Path) -> Path:
    from vjepa_edge.export.executorch import lower_program

    model = tiny_student()
    program = torch.export.export(model, model.input_spec.example_inputs(1))
    path = folder / "tiny.pte"
    with open(path, "wb") as f:
        lower_program(program, "xnnpack").artifact.write_to_file(f)
    return path


@cache
def _onnx(folder: Path) -> Path:
    from vjepa_edge.quant.onnx import export_fp32

    model = tiny_student()
    path = folder / "tiny.onnx"
    export_fp32(model, model.input_spec, path)
    return path


@cache
def _coreml(folder: Path) -> Path:
    from vjepa_edge.export.executorch import lower_program

    model = torch.nn.Linear(8, 8).eval()
    path = folder / "linear-coreml.pte"
    with open(path, "wb") as f:
        lower_program(torch.export.export(model, (torch.randn(1, 8),)), "coreml").artifact.write_to_file(f)
    return path


def tiny_pte(factory) -> Path:
    return _pte(root(factory))


def tiny_onnx(factory) -> Path:
    return _onnx(root(factory))


def coreml_pte(factory) -> Path:
    return _coreml(root(factory))


def host_etdump(pte: Path, path: Path, executions: int) -> Path:
    """Run `pte` `executions` times here with the event tracer on and write its ETDump to `path`: what
    executor_runner writes on a device."""
    from executorch.runtime import Runtime

    program = Runtime.get().load_program(pte, enable_etdump=True, debug_buffer_size=0)
    method = program.load_method("forward")
    x = torch.randn(*tiny_student().input_spec.shape(1))
    for _ in range(executions):
        method.execute([x])
    program.write_etdump_result_to_file(str(path), str(path.with_suffix(".debug")))
    return path
