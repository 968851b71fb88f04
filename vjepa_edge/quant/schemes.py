"""Quantization schemes: a registry of names, each resolving to a library's own quantizer (passed through).

A `Scheme` says what it is (backend, method, whether it calibrates activations, whether `--qat` applies) and
where its implementation lives (`impl`, "module:Class", imported only when the scheme is used, so listing schemes
never imports executorch, coremltools or onnxruntime). The implementation is a `SchemeImpl` (`vjepa_edge.quant.base`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Literal

from vjepa_edge.errors import ConfigError
from vjepa_edge.registry import Registry

Backend = Literal["xnnpack", "coreml", "torchao", "onnx"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Scheme:
    """One registered int8 scheme."""

    name: str
    backend: Backend
    method: str  # the library call it passes through, in words ("PT2E + XNNPACKQuantizer, static")
    calibrated: bool  # activations are calibrated on clips
    qat: bool  # `--qat` can fine-tune with fake quantization before converting
    runs_here: bool  # its quantized program can be run on this (Linux) machine to measure it
    targets: tuple[str, ...]  # the export targets that take this scheme's program
    impl: str  # "module:Class" of its SchemeImpl
    description: str

    def load(self) -> Any:
        """The implementation, a `vjepa_edge.quant.base.SchemeImpl` (imported now, so its backend library is
        imported only when the scheme is used; base imports this module, not the reverse)."""
        module, _, cls = self.impl.partition(":")
        return getattr(importlib.import_module(module), cls)(self)


SCHEMES: Registry[Scheme] = Registry("quantization scheme")


def register(scheme: Scheme) -> Scheme:
    return SCHEMES.register(scheme.name, scheme)


register(
    Scheme(
        name="xnnpack-int8",
        backend="xnnpack",
        method="PT2E static: ExecuTorch XNNPACKQuantizer, per-channel int8 weights, calibrated int8 activations",
        calibrated=True,
        qat=True,
        runs_here=True,
        targets=("xnnpack-int8",),
        impl="vjepa_edge.quant.pt2e:XnnpackStatic",
        description="the default for phones and headsets (ExecuTorch XNNPACK)",
    )
)
register(
    Scheme(
        name="xnnpack-int8-dyn",
        backend="xnnpack",
        method="PT2E dynamic: ExecuTorch XNNPACKQuantizer, per-channel int8 weights, int8 activations at run time",
        calibrated=False,
        qat=True,
        runs_here=True,
        targets=("xnnpack-int8",),
        impl="vjepa_edge.quant.pt2e:XnnpackDynamic",
        description="no calibration; activations quantized per call",
    )
)
register(
    Scheme(
        name="coreml-int8",
        backend="coreml",
        method="PT2E: ExecuTorch CoreMLQuantizer, w8a8 per-channel (attention matmuls included)",
        calibrated=True,
        qat=True,
        runs_here=True,
        targets=("coreml-int8", "mlpackage-int8"),
        impl="vjepa_edge.quant.pt2e:CoreMLW8A8",
        description="Apple Neural Engine (Core ML delegate or .mlpackage)",
    )
)
register(
    Scheme(
        name="coreml-int8-wo",
        backend="coreml",
        method="coremltools linear_quantize_weights: int8 symmetric per-channel weights, fp16 activations",
        calibrated=False,
        qat=False,
        runs_here=False,
        targets=("mlpackage-int8",),
        impl="vjepa_edge.quant.coreml:CoreMLWeightOnly",
        description="Core ML weight-only int8 (half the size of fp16; compute stays fp16)",
    )
)
register(
    Scheme(
        name="torchao-int8-dyn",
        backend="torchao",
        method="torchao quantize_: Int8DynamicActivationIntxWeightConfig (int8 per-channel weights, 8da8w)",
        calibrated=False,
        qat=True,
        runs_here=True,
        targets=(),
        impl="vjepa_edge.quant.torchao:TorchaoDynamic",
        description="PyTorch deployment (and ExecuTorch's own 8da8w path)",
    )
)
register(
    Scheme(
        name="torchao-int8-wo",
        backend="torchao",
        method="torchao quantize_: Int8WeightOnlyConfig (int8 per-row weights, fp32 compute)",
        calibrated=False,
        qat=False,
        runs_here=True,
        targets=(),
        impl="vjepa_edge.quant.torchao:TorchaoWeightOnly",
        description="PyTorch deployment, weight-only",
    )
)
register(
    Scheme(
        name="onnx-int8",
        backend="onnx",
        method="onnxruntime quantize_static: QDQ, per-channel int8 weights, calibrated int8 activations",
        calibrated=True,
        qat=False,
        runs_here=True,
        targets=("onnx-int8",),
        impl="vjepa_edge.quant.onnx:OnnxStatic",
        description="ONNX Runtime on any CPU",
    )
)


def get_scheme(name: str) -> Scheme:
    return SCHEMES.get(name)


def list_schemes(pattern: str = "*") -> list[str]:
    return SCHEMES.names(pattern)


def schemes_for_target(target: str) -> list[str]:
    return [name for name, s in SCHEMES.items() if target in s.targets]


def check_scheme(name: str, *, target: str | None = None, qat: bool = False) -> Scheme:
    """The scheme `name`, refused before any work when it cannot serve `target` or `--qat`; the error names the
    schemes that can."""
    scheme = get_scheme(name)
    if target is not None and target not in scheme.targets:
        valid = schemes_for_target(target)
        feeds = ", ".join(scheme.targets) or "none"
        raise ConfigError(
            f"scheme {name!r} does not feed the export target {target!r} (it feeds: {feeds})",
            hint=f"schemes for {target}: {', '.join(valid) or 'none'}",
        )
    if qat and not scheme.qat:
        valid = [n for n, s in SCHEMES.items() if s.qat]
        raise ConfigError(f"scheme {name!r} has no QAT path", hint=f"--qat works with: {', '.join(valid)}")
    return scheme
