"""Export targets: a registry of names, each an artifact format, a backend, a precision and the scheme it needs.

A `Target` says what it makes (`suffix`: .pte, .mlpackage, .onnx), with which backend and at which precision,
which quantization schemes feed it (`schemes`, the default first; none for float targets), whether this Linux
machine can run the artifact (`runs_here`: otherwise verification is structural) and where its implementation
lives (`impl`, "module:Class", imported only when the target is used, so listing targets never imports
executorch, coremltools or onnxruntime). The implementation is a `TargetImpl` (`vjepa_edge.export.base`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Literal

from vjepa_edge.errors import ConfigError
from vjepa_edge.registry import Registry

Precision = Literal["fp32", "fp16", "int8"]
SUFFIXES = (".pte", ".mlpackage", ".onnx")


@dataclass(frozen=True, kw_only=True, slots=True)
class Target:
    """One registered export target."""

    name: str
    backend: str  # "xnnpack", "coreml", "vulkan", "qnn", "onnx"
    precision: Precision
    schemes: tuple[str, ...]  # registered quantization schemes that feed it, the default first; () for float targets
    suffix: str
    runs_here: bool  # this (Linux x86) machine can run the artifact, so verification is numerical
    impl: str  # "module:Class" of its TargetImpl
    description: str

    def __post_init__(self) -> None:
        p: list[str] = []
        if self.suffix not in SUFFIXES:
            p.append(f"suffix {self.suffix!r}: one of {', '.join(SUFFIXES)}")
        if self.precision != "int8" and self.schemes:
            p.append("a float target is fed by no quantization scheme")
        if ":" not in self.impl:
            p.append(f"impl {self.impl!r}: give 'module:Class'")
        if p:
            raise ConfigError(f"invalid export target {self.name!r}", problems=p)

    @property
    def scheme(self) -> str | None:
        """The default quantization scheme (None for float targets)."""
        return self.schemes[0] if self.schemes else None

    def load(self) -> Any:
        """The implementation, a `vjepa_edge.export.base.TargetImpl` (its backend is imported when it runs)."""
        module, _, cls = self.impl.partition(":")
        return getattr(importlib.import_module(module), cls)(self)


TARGETS: Registry[Target] = Registry("export target")


def register(target: Target) -> Target:
    return TARGETS.register(target.name, target)


_PTE = "vjepa_edge.export.executorch:PteTarget"
for _name, _backend, _precision, _schemes, _runs, _desc in (
    ("xnnpack-fp32", "xnnpack", "fp32", (), True, "ExecuTorch XNNPACK delegate (CPUs of phones and headsets)"),
    ("xnnpack-int8", "xnnpack", "int8", ("xnnpack-int8", "xnnpack-int8-dyn"), True, "ExecuTorch XNNPACK, PT2E int8"),
    ("coreml-fp16", "coreml", "fp16", (), False, "ExecuTorch Core ML delegate, fp16 (Apple; runs on macOS/iOS)"),
    ("coreml-int8", "coreml", "int8", ("coreml-int8",), False, "ExecuTorch Core ML delegate, PT2E w8a8"),
    ("vulkan-fp32", "vulkan", "fp32", (), False, "ExecuTorch Vulkan delegate (GPUs; no runtime in the Linux wheel)"),
):
    register(
        Target(
            name=_name,
            backend=_backend,
            precision=_precision,
            schemes=_schemes,
            suffix=".pte",
            runs_here=_runs,
            impl=_PTE,
            description=_desc,
        )
    )
register(
    Target(
        name="qnn-int8",
        backend="qnn",
        precision="int8",
        schemes=(),  # QnnQuantizer inside the target (it needs the SDK too): no registered quantize scheme
        suffix=".pte",
        runs_here=False,
        impl="vjepa_edge.export.qnn:QnnTarget",
        description="ExecuTorch Qualcomm QNN delegate (HTP NPU); needs the QNN SDK 2.37 (QNN_SDK_ROOT)",
    )
)
register(
    Target(
        name="mlpackage-fp16",
        backend="coreml",
        precision="fp16",
        schemes=(),
        suffix=".mlpackage",
        runs_here=False,
        impl="vjepa_edge.export.mlpackage:MlPackageTarget",
        description="standalone Core ML package (coremltools), fp16",
    )
)
register(
    Target(
        name="mlpackage-int8",
        backend="coreml",
        precision="int8",
        schemes=("coreml-int8-wo", "coreml-int8"),
        suffix=".mlpackage",
        runs_here=False,
        impl="vjepa_edge.export.mlpackage:MlPackageTarget",
        description="standalone Core ML package, int8 weights (fp16 compute), or w8a8 from coreml-int8",
    )
)
for _name, _precision, _schemes, _desc in (
    ("onnx-fp32", "fp32", (), "ONNX (opset 20) for ONNX Runtime on any CPU"),
    ("onnx-int8", "int8", ("onnx-int8",), "ONNX QDQ int8 for ONNX Runtime"),
):
    register(
        Target(
            name=_name,
            backend="onnx",
            precision=_precision,
            schemes=_schemes,
            suffix=".onnx",
            runs_here=True,
            impl="vjepa_edge.export.onnx:OnnxTarget",
            description=_desc,
        )
    )


def get_target(name: str) -> Target:
    """The target `name`; an unknown name raises RegistryError naming the closest ones and every valid one."""
    return TARGETS.get(name)


def list_targets(pattern: str = "*") -> list[str]:
    return TARGETS.names(pattern)


def check_target_scheme(target: Target, scheme: str | None) -> str | None:
    """The scheme that feeds `target`: `scheme` when given (it must be one of the target's), else its default."""
    if scheme is None:
        return target.scheme
    if scheme not in target.schemes:
        takes = ", ".join(target.schemes) or "none (a float target)"
        raise ConfigError(
            f"target {target.name!r} does not take scheme {scheme!r}",
            hint=f"schemes for {target.name}: {takes}",
        )
    return scheme
