"""qnn-int8: ExecuTorch's Qualcomm QNN delegate (Hexagon NPU). It needs Qualcomm's SDK, which is not on this machine.

ExecuTorch 1.5.1 is built against the Qualcomm AI Engine Direct (QNN) SDK 2.37 (2.37.0.250724). Whatever starts a
QNN backend calls `setup_qnn_sdk()`, which trusts `QNN_SDK_ROOT` when it is set and otherwise, on Linux x86,
downloads the SDK from softwarecenter.qualcomm.com (edge-api 1.5). This target never gets there without an SDK:
`check` reads `QNN_SDK_ROOT` itself, before anything of executorch.backends.qualcomm is imported, and refuses with
what to install and how to point at it. With an SDK the QnnQuantizer + QnnPartitioner flow is not built yet (it
could not be tried here).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from vjepa_edge.errors import ConfigError, NotBuiltError
from vjepa_edge.export.base import Lowered, Signature, TargetImpl

if TYPE_CHECKING:
    from torch.export import ExportedProgram

    from vjepa_edge.quant.base import QuantizedModel

SDK_VERSION = "2.37.0.250724"  # executorch 1.5.1's backends/qualcomm/scripts/download_qnn_sdk.py
SDK_LIB = Path("lib") / "x86_64-linux-clang"
SDK_LIBRARY = SDK_LIB / "libQnnHtp.so"  # the HTP backend library the AOT compiler loads


def sdk_problem(env: dict[str, str] | None = None) -> str | None:
    """Why no usable QNN SDK is configured (None when QNN_SDK_ROOT names one); reads the environment only."""
    env = dict(os.environ if env is None else env)
    root = env.get("QNN_SDK_ROOT")
    if not root:
        return "QNN_SDK_ROOT is not set" if root is None else "QNN_SDK_ROOT is set but empty"
    if not (Path(root) / SDK_LIBRARY).is_file():
        return f"QNN_SDK_ROOT={root} holds no {SDK_LIBRARY} (not a QNN SDK for Linux x86)"
    return None


def sdk_hint() -> str:
    return (
        f"install Qualcomm AI Engine Direct (QNN) SDK {SDK_VERSION} (the version ExecuTorch 1.5.1 is built against, "
        "from Qualcomm's software center), then `export QNN_SDK_ROOT=/path/to/qairt/"
        f"{SDK_VERSION}` and `export LD_LIBRARY_PATH=$QNN_SDK_ROOT/{SDK_LIB}:$LD_LIBRARY_PATH`; "
        "vjepa-edge never downloads it"
    )


class QnnTarget(TargetImpl):
    """qnn-int8: refused without the SDK; not built with one."""

    def check(self) -> None:
        problem = sdk_problem()
        if problem is not None:
            raise ConfigError(f"target qnn-int8 needs the Qualcomm QNN SDK {SDK_VERSION}: {problem}", hint=sdk_hint())
        raise NotBuiltError(
            "target qnn-int8: lowering with QnnQuantizer and QnnPartitioner is not built yet (no SDK to try it on)",
            hint="export xnnpack-int8 for Qualcomm CPUs meanwhile",
        )

    def lower(
        self, model: nn.Module, program: ExportedProgram, quantized: QuantizedModel | None, signature: Signature
    ) -> Lowered:
        self.check()
        raise AssertionError("unreachable: check() refuses")

    def write(self, lowered: Lowered, path: Path) -> None:
        raise AssertionError("unreachable: check() refuses")

    def structure(self, path: Path, lowered: Lowered, signature: Signature) -> dict[str, Any]:
        raise AssertionError("unreachable: check() refuses")

    def delegation(self, lowered: Lowered, program: ExportedProgram) -> dict[str, Any]:
        raise AssertionError("unreachable: check() refuses")
