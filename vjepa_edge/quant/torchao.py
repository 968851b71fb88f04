"""torchao int8 schemes: `quantize_` with Int8DynamicActivationIntxWeightConfig (8da8w) or Int8WeightOnlyConfig.

`quantize_` swaps the weights of a deep copy's `nn.Linear` layers for torchao tensor subclasses; the copy is then
exported at the deployment input. The program holds plain int8 tensors and torchao's quant ops, so it is saved as
`program.pt2` and loads without unpickling code or rebuilding the fp32 architecture (a `torch.save`d state dict of
the subclasses loads with `weights_only=True` too, but only into a model built and quantized the same way first).
QAT (8da8w): torchao's `QATConfig(base, step="prepare")`, training by the caller, then `step="convert"`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from vjepa_edge.errors import ConfigError
from vjepa_edge.models.inputs import InputSpec
from vjepa_edge.quant._program import ProgramModel, check_keep_float, export_program, load_program
from vjepa_edge.quant.base import Progress, QuantizedModel, SchemeImpl


class _TorchaoScheme(SchemeImpl):
    """quantize_ with one base config; subclasses name it."""

    def config(self) -> Any:
        raise NotImplementedError

    def problems(self, model: nn.Module) -> list[str]:
        if not any(isinstance(m, nn.Linear) for m in model.modules()):
            return [
                f"{self.scheme.name} quantizes nn.Linear layers only and {type(model).__name__} has none "
                "(a convolutional backbone would stay float); use a PT2E scheme such as xnnpack-int8"
            ]
        return super().problems(model)

    def quantize(
        self,
        model: nn.Module,
        calibration: Iterable[Tensor] | None,
        *,
        keep_float: Sequence[str] = (),
        progress: Progress | None = None,
    ) -> QuantizedModel:
        from torchao.quantization import quantize_

        check_keep_float(model, keep_float)
        spec: InputSpec = model.input_spec
        copied = copy.deepcopy(model).eval()
        quantize_(copied, self.config(), filter_fn=_linear_outside(keep_float))
        return ProgramModel(self.scheme, export_program(copied, spec), spec, keep_float)

    def load(self, folder: Path) -> QuantizedModel:
        import torchao.quantization  # noqa: F401  registers torchao's quant ops, which the program calls

        return load_program(self.scheme, folder)


class TorchaoDynamic(_TorchaoScheme):
    """`torchao-int8-dyn`: int8 per-channel weights, int8 per-token activations at run time (8da8w)."""

    def config(self) -> Any:
        import torch
        from torchao.quantization import Int8DynamicActivationIntxWeightConfig
        from torchao.quantization.granularity import PerAxis

        # PerAxis(0): one scale per output channel, the XNNPACK-compatible 8da8w (edge-api fact 7).
        return Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int8, weight_granularity=PerAxis(0))

    def prepare_qat(self, model: nn.Module, *, keep_float: Sequence[str] = ()) -> nn.Module:
        from torchao.quantization import quantize_
        from torchao.quantization.qat import QATConfig

        check_keep_float(model, keep_float)
        copied = copy.deepcopy(model)
        quantize_(copied, QATConfig(self.config(), step="prepare"), filter_fn=_linear_outside(keep_float))
        copied.keep_float = tuple(keep_float)
        return copied.train()

    def convert_qat(self, prepared: nn.Module) -> QuantizedModel:
        from torchao.quantization import quantize_
        from torchao.quantization.qat import QATConfig

        spec = getattr(prepared, "input_spec", None)
        if not isinstance(spec, InputSpec):
            raise ConfigError(f"convert_qat takes the module prepare_qat made, got {type(prepared).__name__}")
        kept = tuple(getattr(prepared, "keep_float", ()))
        prepared.eval()
        quantize_(prepared, QATConfig(self.config(), step="convert"), filter_fn=_linear_outside(kept))
        return ProgramModel(self.scheme, export_program(prepared, spec), spec, kept)


class TorchaoWeightOnly(_TorchaoScheme):
    """`torchao-int8-wo`: int8 per-row weights, fp32 compute."""

    def config(self) -> Any:
        from torchao.quantization import Int8WeightOnlyConfig

        return Int8WeightOnlyConfig()


def _linear_outside(module_names: Sequence[str]) -> Callable[[nn.Module, str], bool]:
    """quantize_'s filter: the Linear layers that are not in (or under) any of `module_names`."""

    def keep(name: str) -> bool:
        return any(name == k or name.startswith(k + ".") for k in module_names)

    return lambda module, fqn: isinstance(module, nn.Linear) and not keep(fqn)
