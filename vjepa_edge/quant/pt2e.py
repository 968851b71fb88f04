"""PT2E int8 schemes: ExecuTorch's XNNPACKQuantizer (static, dynamic) and CoreMLQuantizer (w8a8), passed through.

Flow (reference/edge-api.md 3.1): `torch.export` at the deployment input -> `prepare_pt2e` (observers) -> the
calibration clips -> `convert_pt2e` -> `torch.export` again: the quantized ExportedProgram the export targets lower.
QAT prepares with the quantizer's QAT config (`prepare_qat_pt2e`) and hands back a trainable GraphModule.

The model is copied first (`form`: for XNNPACK, the export form of `vjepa_edge.models.deploy`, so that the program
export lowers is the one quantized): an exported module shares the model's parameters, and QAT would train them.
QAT exports with a dynamic batch (training takes batches of clips); the quantized programs have batch 1.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.fx import GraphModule, Node

from vjepa_edge.errors import ConfigError
from vjepa_edge.models.inputs import InputSpec
from vjepa_edge.quant._program import ProgramModel, check_keep_float, export_program, load_program
from vjepa_edge.quant.base import Progress, QuantizedModel, SchemeImpl


class _Pt2eScheme(SchemeImpl):
    """The PT2E flow; subclasses say which quantizer annotates the graph."""

    def quantizer(self, *, qat: bool, keep_float: Sequence[str]) -> Any:
        """The library's quantizer for this scheme (`keep_float` modules left unannotated)."""
        raise NotImplementedError

    def annotating(self) -> contextlib.AbstractContextManager[None]:
        """What `prepare_pt2e` runs under (nothing, but for CoreMLQuantizer's pattern builder)."""
        return contextlib.nullcontext()

    def form(self, model: nn.Module) -> nn.Module:
        """The copy of the model that is exported and quantized (an exported module shares its parameters, and QAT
        would train them), in the form the scheme's backend lowers (`models.deploy.form_for`: XNNPACK's export
        form, so the program export lowers is the one quantized)."""
        from vjepa_edge.models.deploy import form_for

        return form_for(self.scheme.backend, model)

    def quantize(
        self,
        model: nn.Module,
        calibration: Iterable[Tensor] | None,
        *,
        keep_float: Sequence[str] = (),
        progress: Progress | None = None,
    ) -> QuantizedModel:
        from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

        check_keep_float(model, keep_float)
        if self.scheme.calibrated and calibration is None:
            raise ConfigError(f"scheme {self.scheme.name!r} calibrates its activations: pass calibration clips")
        spec: InputSpec = model.input_spec
        with self.annotating():
            prepared = prepare_pt2e(_exported(self.form(model)), self.quantizer(qat=False, keep_float=keep_float))
        if self.scheme.calibrated:
            _calibrate(prepared, calibration, progress)
        else:
            # Dynamic activations need no clips, but the weight observers record the weights in the forward:
            # without one pass, convert_pt2e quantizes every weight with default qparams (scale 1: garbage).
            _calibrate(prepared, [spec.example_inputs()[0]], None)
        return self._convert(prepared, spec, keep_float)

    def prepare_qat(self, model: nn.Module, *, keep_float: Sequence[str] = ()) -> nn.Module:
        from torchao.quantization.pt2e import allow_exported_model_train_eval, move_exported_model_to_train
        from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e

        check_keep_float(model, keep_float)
        _refuse_zero_batchnorm_weights(model)
        spec: InputSpec = model.input_spec
        with self.annotating():
            prepared = prepare_qat_pt2e(
                _exported_for_training(self.form(model)), self.quantizer(qat=True, keep_float=keep_float)
            )
        move_exported_model_to_train(prepared)
        allow_exported_model_train_eval(prepared)  # so a training loop's .train() / .eval() work on it
        prepared.input_spec = spec  # the clips it takes, for the caller's data and for `convert_qat`
        prepared.keep_float = tuple(keep_float)
        return prepared

    def convert_qat(self, prepared: nn.Module) -> QuantizedModel:
        from torchao.quantization.pt2e import move_exported_model_to_eval

        if not isinstance(prepared, GraphModule) or not isinstance(getattr(prepared, "input_spec", None), InputSpec):
            raise ConfigError(f"convert_qat takes the module prepare_qat made, got {type(prepared).__name__}")
        move_exported_model_to_eval(prepared)
        return self._convert(prepared, prepared.input_spec, getattr(prepared, "keep_float", ()))

    def load(self, folder: Path) -> QuantizedModel:
        import torch.ao.quantization.fx._decomposed  # noqa: F401  registers the quantized_decomposed ops

        return load_program(self.scheme, folder)

    def _convert(self, prepared: GraphModule, spec: InputSpec, keep_float: Sequence[str]) -> ProgramModel:
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

        converted = convert_pt2e(prepared)
        _drop_unused_attributes(converted)
        return ProgramModel(self.scheme, export_program(converted, spec), spec, keep_float)


class XnnpackStatic(_Pt2eScheme):
    """`xnnpack-int8`: per-channel int8 weights, int8 activations calibrated on clips."""

    def quantizer(self, *, qat: bool, keep_float: Sequence[str]) -> Any:
        return _xnnpack_quantizer(is_dynamic=False, qat=qat, keep_float=keep_float)


class XnnpackDynamic(_Pt2eScheme):
    """`xnnpack-int8-dyn`: per-channel int8 weights; linear/conv inputs quantized per call (no calibration)."""

    def quantizer(self, *, qat: bool, keep_float: Sequence[str]) -> Any:
        return _xnnpack_quantizer(is_dynamic=True, qat=qat, keep_float=keep_float)


class CoreMLW8A8(_Pt2eScheme):
    """`coreml-int8`: CoreMLQuantizer, symmetric per-channel int8 weights and calibrated 8-bit activations."""

    def annotating(self) -> contextlib.AbstractContextManager[None]:
        return _fast_coreml_patterns()

    def quantizer(self, *, qat: bool, keep_float: Sequence[str]) -> Any:
        from coremltools.optimize.torch.quantization.quantization_config import (
            LinearQuantizerConfig,
            ModuleLinearQuantizerConfig,
            QuantizationScheme,
        )
        from executorch.backends.apple.coreml.quantizer import CoreMLQuantizer

        # edge-api 3.2 (ExecuTorch's own test config) without `milestones`: only coremltools' training-time
        # LinearQuantizer reads them, CoreMLQuantizer does not. The same config serves QAT (its observers are
        # FakeQuantize modules either way).
        w8a8 = ModuleLinearQuantizerConfig(
            quantization_scheme=QuantizationScheme.symmetric,
            activation_dtype=torch.quint8,
            weight_dtype=torch.qint8,
            weight_per_channel=True,
        )
        # A module-name config of None annotates that module's patterns with no quantization, so the global
        # config skips them: CoreMLQuantizer's own way to keep a module in float.
        kept: dict[str, Any] = {name: None for name in keep_float}
        return CoreMLQuantizer(LinearQuantizerConfig(global_config=w8a8, module_name_configs=kept))


def _xnnpack_quantizer(*, is_dynamic: bool, qat: bool, keep_float: Sequence[str]) -> Any:
    """XNNPACKQuantizer with the symmetric per-channel config on its linear and convolution patterns only.

    The quantizer's global config would also quantize every elementwise add, mul and cat to per-tensor int8:
    in a ViT that is the residual stream (whose outlier channels leave the small ones a few levels) and the
    RoPE rotation of q and k. Measured on the vit_s student of the embedded default (512 held-out clips): global
    config, feature cosine 0.9961 and grid-probe accuracy 46.7 % against 50.6 % in fp32; linear and conv only,
    0.99994 and 50.4 %. Those elementwise ops then run in fp32 (XNNPACK delegates them in fp32 too).
    """
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        CONV_TARGETS,
        CONV_TRANSPOSE_TARGETS,
        LINEAR_TARGETS,
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    config = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=is_dynamic, is_qat=qat)
    quantizer = XNNPACKQuantizer()
    for op in (*LINEAR_TARGETS, *CONV_TARGETS, *CONV_TRANSPOSE_TARGETS):
        quantizer.set_operator_type(op, config)
    if keep_float:
        # set_module_name refuses a None config; the filter function applies to every pattern.
        quantizer.set_filter_function(_outside(keep_float))
    return quantizer


def _outside(module_names: Sequence[str]) -> Callable[[Node], bool]:
    """A node filter: True for nodes that come from none of `module_names` (or their submodules)."""
    from torchao.quantization.pt2e.quantizer.utils import get_module_name_filter

    inside = [get_module_name_filter(name) for name in module_names]
    return lambda node: not any(f(node) for f in inside)


def _exported(model: nn.Module) -> GraphModule:
    """The model (a copy: `form`) exported at its deployment input."""
    model = model.eval()
    return export_program(model, model.input_spec).module()


def _exported_for_training(model: nn.Module) -> GraphModule:
    """The model (a copy: `form`) exported with a dynamic batch, so that QAT trains on batches of clips (and
    BatchNorm sees more than one clip's frames); `convert_qat` exports the result at batch 1 again."""
    from torch.export import Dim

    model = model.eval()
    example = model.input_spec.example_inputs(2)  # batch 1 would be specialised
    return torch.export.export(model, example, dynamic_shapes=({0: Dim("batch")},)).module()


def _calibrate(prepared: GraphModule, calibration: Iterable[Tensor] | None, progress: Progress | None) -> None:
    """Run the clips through the observers, one clip at a time (the program's batch is 1)."""
    batches = 0
    with torch.no_grad():
        for clips in calibration or ():
            for i in range(clips.shape[0]):
                prepared(clips[i : i + 1])
            batches += 1
            if progress is not None:
                progress(1)
    if not batches:
        raise ConfigError("no calibration clips: the activation ranges would be undefined")


def _drop_unused_attributes(gm: GraphModule) -> None:
    """Remove parameters and buffers no node reads. convert_pt2e folds each quantized weight into a new int8
    constant but leaves the float parameter registered, and export would store both (about 5x the int8 size)."""
    used = {str(n.target) for n in gm.graph.nodes if n.op == "get_attr"}
    called = [str(n.target) + "." for n in gm.graph.nodes if n.op == "call_module"]  # their tensors are read inside
    named = [*gm.named_parameters(remove_duplicate=False), *gm.named_buffers(remove_duplicate=False)]
    for name, _ in named:
        if name not in used and not any(name.startswith(prefix) for prefix in called):
            owner, _, leaf = name.rpartition(".")
            delattr(gm.get_submodule(owner), leaf)


def _refuse_zero_batchnorm_weights(model: nn.Module) -> None:
    """PT2E QAT folds each BatchNorm into its conv and divides the conv output by weight/std: a weight of exactly 0
    gives NaN from the first step. timm initialises the last BatchNorm of each residual block to 0
    (zero_init_last), so an undistilled CNN student has hundreds of them."""
    zero = [
        name
        for name, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None and bool((m.weight == 0).any())
    ]
    if zero:
        raise ConfigError(
            f"PT2E QAT divides by each BatchNorm weight, and {len(zero)} BatchNorm layers have weights of exactly 0 "
            f"(e.g. {', '.join(zero[:3])}; timm's zero_init_last in an untrained student)",
            hint="distill the student first, or quantize it without --qat",
        )


# ----------------------------------------------------------------------------- CoreMLQuantizer speed-up

_PATTERNS: dict[Any, GraphModule] = {}


@contextlib.contextmanager
def _fast_coreml_patterns() -> Iterator[None]:
    """Build CoreMLQuantizer's pattern graphs with non-strict export, once per process.

    CoreMLQuantizer re-exports about 400 tiny pattern graphs with strict (dynamo) `torch.export` on every
    annotate: ~70 s on 2 cores, whatever the model. Non-strict export gives the same graphs (compared node by node
    for all of them with executorch 1.5.1 / torch 2.13; tests/quant/test_pt2e.py checks a sample) in ~14 s, and
    they are kept for the next call in the process (QAT, other models). Leaves the library as it was afterwards.
    """
    try:
        from executorch.backends.apple.coreml.quantizer import _coreml_quantizer_utils as utils
    except ImportError:
        yield
        return
    original = getattr(utils, "_get_aten_graph_module", None)
    if original is None:  # another executorch: its own builder, unchanged
        yield
        return
    utils._get_aten_graph_module = _cached_pattern_graph
    try:
        yield
    finally:
        utils._get_aten_graph_module = original


def _cached_pattern_graph(pattern: nn.Module, example_inputs: tuple[Tensor, ...], is_cuda: bool = False) -> GraphModule:
    if is_cuda:  # never asked for by CoreMLQuantizer; the library's own path
        from torchao.quantization.pt2e.utils import _get_aten_graph_module_for_pattern

        return _get_aten_graph_module_for_pattern(pattern, example_inputs, is_cuda)
    key = _pattern_key(pattern, example_inputs)
    if key not in _PATTERNS:
        _PATTERNS[key] = pattern_graph(pattern, example_inputs)
    # The matcher rewrites the pattern graph's output in place: every caller gets its own copy.
    return copy.deepcopy(_PATTERNS[key])


def _pattern_key(pattern: nn.Module, example_inputs: tuple[Tensor, ...]) -> Any:
    """A pattern is a local class whose forward closes over the ops it chains (functions, ints, bools)."""
    forward = type(pattern).forward
    cells = tuple(c.cell_contents for c in forward.__closure__ or ())
    return forward.__code__, cells, tuple((tuple(t.shape), t.dtype) for t in example_inputs)


def pattern_graph(pattern: nn.Module, example_inputs: tuple[Tensor, ...]) -> GraphModule:
    """torchao's `_get_aten_graph_module_for_pattern` with `strict=False` (same post-processing)."""
    gm = torch.export.export(pattern, example_inputs, strict=False).module()
    gm.graph.eliminate_dead_code()
    # ep.module() adds copy_ nodes for mutated inputs (in-place activations); patterns do without them.
    for node in list(gm.graph.nodes):
        if node.op == "call_function" and node.target == torch.ops.aten.copy_.default and not node.users:
            gm.graph.erase_node(node)
    gm.graph.eliminate_dead_code()
    gm.recompile()
    return gm
