"""Core ML weight-only int8 (scheme "coreml-int8-wo"): an fp16 ML program with int8 symmetric per-channel weights.

`torch.export` -> `coremltools.convert` (mlprogram, iOS17, fp16 compute) -> `linear_quantize_weights` (int8,
"linear_symmetric", per output channel). Only the weights of Linear and convolution layers above coremltools'
size threshold (2048 elements) are quantized, each named in the config: a global config would also round every
other large constant (RoPE tables, position embeddings) to int8. `keep_float` modules keep their fp16 weights.

Weights are matched to layers by the name of their const (a parameter's: "p_blocks_0_mlp_fc1_weight_to_fp16") or
else of the op using it, the fx node it was converted from (a convolution folded with its BatchNorm is named after
the BatchNorm node, whose input is the convolution), and the shapes must agree.

Core ML predicts only on macOS (coremltools has no runtime on Linux). Off macOS the program runs as an emulation,
`emulated` True: the fp32 student with the same int8 rounding of the same weights (q = round(w / s) clamped to
[-127, 127], s = max|w| per output channel / 127, computed in fp16 as coremltools does on the fp16 weights), run in
torch, in fp32 (Core ML's fp16 activations are not emulated). The codes are those in the package, bit for bit, for
a Linear; for a convolution that coremltools folded with its BatchNorm, a code can be off by one where the fp16
rounding of the folded weight tips it (tests/quant/test_coreml.py checks both). A program loaded from disk has no
fp32 student, hence no emulation.

coremltools is imported inside functions: importing this module stays lean.
"""

from __future__ import annotations

import copy
import logging
import os
import platform
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from vjepa_edge.errors import ConfigError
from vjepa_edge.models.inputs import InputSpec
from vjepa_edge.quant._program import check_keep_float
from vjepa_edge.quant.base import Progress, QuantizedModel, SchemeImpl
from vjepa_edge.quant.onnx import META_FILE, read_meta
from vjepa_edge.runinfo import file_mode, write_json

if TYPE_CHECKING:
    import coremltools as ct
    from torch.export import ExportedProgram

    from vjepa_edge.quant.schemes import Scheme

log = logging.getLogger(__name__)

PACKAGE = "model.mlpackage"
WEIGHT_THRESHOLD = 2048  # coremltools' default: smaller weights stay fp16 (not worth a scale per channel)
WEIGHT_OPS = ("linear", "conv")  # MIL ops whose const `weight` is a layer's weight
BATCH_NORMS = ("aten._native_batch_norm_legit_no_training.default", "aten.batch_norm.default")
NOT_MACOS = "Core ML runs only on macOS (coremltools has no Core ML runtime on Linux)"


def on_macos() -> bool:
    return platform.system() == "Darwin"


# ----------------------------------------------------------------------------- the int8 rounding


def int8_weight(weight: Tensor) -> tuple[Tensor, Tensor]:
    """coremltools' "linear_symmetric" int8 per-channel rounding of a layer weight [out, ...]: (int8 codes, fp16
    scales [out]). Done in fp16 on the fp16 weight, op for op as `coremltools.optimize._utils.
    quantize_weight_by_dtype`, so the codes are the ones in the package."""
    w = weight.detach().to(torch.float16)
    max_abs = w.abs().amax(dim=tuple(range(1, w.dim())), keepdim=True)
    scale = (max_abs - (-max_abs)) / 254  # (max - min) / (127 - (-127)), in fp16
    safe = torch.where(scale == 0, torch.ones_like(scale), scale)  # an all-zero row: codes 0
    q = torch.round(w / safe).clamp(-127, 127).to(torch.int8)
    return q, scale.flatten()


def dequantize(q: Tensor, scale: Tensor) -> Tensor:
    """fp32 weights of int8 codes and fp16 scales, rounded to fp16 as Core ML's dequantization produces them."""
    shape = (-1,) + (1,) * (q.dim() - 1)
    return (q.to(torch.float16) * scale.reshape(shape)).float()


@torch.no_grad()
def emulation(model: nn.Module, modules: Sequence[str]) -> nn.Module:
    """A copy of `model` (fp32) whose `modules` weights went through the int8 rounding."""
    twin = copy.deepcopy(model).eval()
    for name in modules:
        weight = twin.get_submodule(name).weight
        weight.copy_(dequantize(*int8_weight(weight)))
    return twin


# ----------------------------------------------------------------------------- the program


class CoreMLProgram(QuantizedModel):
    """A Core ML ML program (`ct.models.MLModel`), run by Core ML on macOS and by its emulation elsewhere."""

    def __init__(
        self,
        scheme: Scheme,
        mlmodel: ct.models.MLModel,
        spec: InputSpec,
        *,
        keep_float: Sequence[str] = (),
        weights: dict[str, str] | None = None,
        emulator: nn.Module | None = None,
        unmapped: int = 0,
    ) -> None:
        self.scheme, self.mlmodel, self.input_spec = scheme, mlmodel, spec
        self.keep_float = tuple(keep_float)
        self.weights = dict(weights or {})  # quantized module -> its MIL weight const
        self.emulator = emulator
        self.emulated = not on_macos() and emulator is not None
        self.note = self._note(unmapped)

    def _note(self, unmapped: int) -> str:
        if on_macos():
            return ""
        if self.emulator is None:
            return f"{NOT_MACOS}; a program loaded from disk has no emulation (it needs the fp32 student)"
        note = "emulated on Linux: int8 weight rounding of the Core ML program applied in torch, fp32 compute"
        if unmapped:
            note += f" ({unmapped} quantized weights not matched to a layer are left fp32)"
        return note

    def __call__(self, x: Tensor) -> Tensor:
        want = self.input_spec.shape(1)[1:]
        if x.dim() != 5 or tuple(x.shape[1:]) != want:
            raise ValueError(f"expected clips [B, {', '.join(map(str, want))}], got shape {list(x.shape)}")
        if on_macos():
            return self._predict(x)
        if self.emulator is None:
            raise ConfigError(
                f"{NOT_MACOS}, and this program was loaded from disk: no Linux emulation",
                hint="run it on a Mac, or quantize again from the student to get the emulation",
            )
        with torch.no_grad():
            return self.emulator(x.float()).float()

    def _predict(self, x: Tensor) -> Tensor:
        """Core ML itself, one clip per call (the program has batch 1)."""
        name = self.mlmodel.get_spec().description.input[0].name
        outs = []
        for clip in x.detach().to("cpu", torch.float32).numpy():
            result = self.mlmodel.predict({name: clip[None]})
            outs.append(torch.from_numpy(next(iter(result.values()))).float())
        return torch.cat(outs)

    def save(self, folder: Path) -> list[Path]:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = save_package(self.mlmodel, folder / PACKAGE)
        meta = {
            "scheme": self.scheme.name,
            "input": self.input_spec.to_dict(),
            "batch": 1,
            "keep_float": list(self.keep_float),
            "weights": self.weights,
        }
        return [path, write_json(folder / META_FILE, meta)]

    @property
    def size_bytes(self) -> int:
        root = Path(self.mlmodel.package_path)
        return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def save_package(mlmodel: ct.models.MLModel, path: Path) -> Path:
    """Write the .mlpackage folder beside `path`, then rename it onto `path`. A folder cannot replace a non-empty
    one in one rename: an old package is renamed aside first and removed after (readers may briefly see none)."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.stem}.", suffix=".tmp.mlpackage", dir=path.parent))
    old = tmp.with_name(tmp.name.replace(".tmp.", ".old."))
    try:
        mlmodel.save(str(tmp))  # replaces the empty temp folder with a copy of the package
        _umask_modes(tmp)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, old):
            if leftover.exists():
                shutil.rmtree(leftover)
    return path


def _umask_modes(root: Path) -> None:
    """Files and folders with the modes a plain `open`/`mkdir` gives under the umask (coremltools' temp package
    is 0700/0600, and copytree keeps that): execute wherever read is allowed, on folders."""
    fmode = file_mode()
    dmode = fmode | (fmode & 0o444) >> 2
    os.chmod(root, dmode)
    for dirpath, dirs, files in os.walk(root):
        for d in dirs:
            os.chmod(os.path.join(dirpath, d), dmode)
        for f in files:
            os.chmod(os.path.join(dirpath, f), fmode)


# ----------------------------------------------------------------------------- conversion and weight names


def convert_fp16(model: nn.Module, spec: InputSpec) -> tuple[ct.models.MLModel, ExportedProgram]:
    """The fp16 ML program of `model` at batch 1, and the ExportedProgram it was converted from."""
    import coremltools as ct

    # coremltools 9 has no converter for aten.alias (what a full-range slice such as x[:, :, :T] exports to);
    # a view of the same shape is the same tensor.
    table = {torch.ops.aten.alias.default: lambda x: x.view(x.shape)}
    try:
        ep = torch.export.export(model, spec.example_inputs(1)).run_decompositions(table)
        mlmodel = ct.convert(
            ep,
            convert_to="mlprogram",
            minimum_deployment_target=ct.target.iOS17,
            compute_precision=ct.precision.FLOAT16,
        )
    except Exception as e:  # torch.export and coremltools raise many kinds; all mean this student does not convert
        raise ConfigError(
            f"coremltools cannot convert this student: {e}", hint="try another scheme (`vjepa-edge list schemes`)"
        ) from None
    return mlmodel, ep


def fx_modules(ep: ExportedProgram) -> dict[str, str]:
    """fx node name -> the module of the layer it computes; a BatchNorm node maps to the convolution it follows
    (coremltools folds the BatchNorm into that convolution and names the fused op after the BatchNorm)."""
    out: dict[str, str] = {}
    for node in ep.graph.nodes:
        stack = node.meta.get("nn_module_stack")
        if stack:
            out[node.name] = list(stack.values())[-1][0]
    for node in ep.graph.nodes:
        source = node.args[0] if node.args else None
        if str(node.target) in BATCH_NORMS and getattr(source, "name", None) in out and "conv" in str(source.target):
            out[node.name] = out[source.name]
    return out


def weight_consts(
    mlmodel: ct.models.MLModel, ep: ExportedProgram, model: nn.Module
) -> tuple[dict[str, str], list[str]]:
    """The const weights of the program's linear/conv ops above the size threshold: {const name: module} of those
    matched to a Linear/Conv module of `model` (same shape), and the names of those that were not."""
    params = {p: fqn.removesuffix(".weight") for p, fqn in ep.graph_signature.inputs_to_parameters.items()}
    by_node = fx_modules(ep)
    layers = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear | nn.modules.conv._ConvNd)}
    found: dict[str, str] = {}
    unmatched: list[str] = []
    for op in mlmodel._mil_program.functions["main"].operations:
        weight = op.inputs.get("weight") if op.op_type in WEIGHT_OPS else None
        if weight is None or weight.op is None or weight.op.op_type != "const" or weight.val.size <= WEIGHT_THRESHOLD:
            continue
        const = weight.op.name
        # Named after its parameter ("p_blocks_0_mlp_fc1_weight_to_fp16"), or else after the op that uses it.
        name = params.get(const.removesuffix("_to_fp16")) or by_node.get(op.name.removesuffix("_cast_fp16"))
        layer = layers.get(name or "")
        if layer is not None and tuple(layer.weight.shape) == tuple(weight.shape):
            found[const] = name
        else:
            unmatched.append(const)
    return found, unmatched


# ----------------------------------------------------------------------------- the scheme


class CoreMLWeightOnly(SchemeImpl):
    """coremltools `linear_quantize_weights`: int8 symmetric per-channel weights, fp16 activations."""

    def quantize(
        self,
        model: nn.Module,
        calibration: Iterable[Tensor] | None,
        *,
        keep_float: Sequence[str] = (),
        progress: Progress | None = None,
    ) -> CoreMLProgram:
        import coremltools.optimize as cto

        check_keep_float(model, keep_float)
        spec = model.input_spec
        mlmodel, ep = convert_fp16(model, spec)
        found, unmatched = weight_consts(mlmodel, ep, model)
        _check_kept(model, keep_float, found)
        kept = {c for c, m in found.items() if _inside(m, keep_float)}
        config = cto.coreml.OpLinearQuantizerConfig(
            mode="linear_symmetric", dtype="int8", granularity="per_channel", weight_threshold=WEIGHT_THRESHOLD
        )
        # Unmatched weights are quantized too (the program is what coremltools makes), but not emulated.
        names = {c: config for c in [*found, *unmatched] if c not in kept}
        quantized = cto.coreml.linear_quantize_weights(mlmodel, cto.coreml.OptimizationConfig(op_name_configs=names))
        if unmatched:
            log.warning("%d Core ML weights matched no layer: the Linux emulation leaves them fp32", len(unmatched))
        weights = {m: c for c, m in found.items() if c not in kept}
        return CoreMLProgram(
            self.scheme,
            quantized,
            spec,
            keep_float=keep_float,
            weights=weights,
            emulator=emulation(model, list(weights)),
            unmapped=len(unmatched),
        )

    def load(self, folder: Path) -> CoreMLProgram:
        import coremltools as ct

        folder = Path(folder)
        meta = read_meta(folder, self.scheme, PACKAGE, ("input", "keep_float", "weights"))
        # Off macOS the package cannot be compiled (no Core ML runtime): read it without loading it.
        mlmodel = ct.models.MLModel(str(folder / PACKAGE), skip_model_load=not on_macos())
        return CoreMLProgram(
            self.scheme,
            mlmodel,
            InputSpec.from_dict(meta["input"]),
            keep_float=meta["keep_float"],
            weights=meta["weights"],
        )


def _inside(module: str, names: Iterable[str]) -> bool:
    return any(module == n or module.startswith(n + ".") for n in names)


def _check_kept(model: nn.Module, keep_float: Sequence[str], found: dict[str, str]) -> None:
    """Every weight Core ML would quantize inside a `keep_float` module must be matched to its layer, or it cannot
    be kept in fp16."""
    matched = set(found.values())
    lost = []
    for name in keep_float:
        layers = [f"{name}.{n}".rstrip(".") for n, m in model.get_submodule(name).named_modules() if _quantizable(m)]
        lost += [layer for layer in layers if layer not in matched]
    if lost:
        raise ConfigError(
            f"keep_float: the Core ML weight of {', '.join(map(repr, lost))} could not be matched to its layer, so it "
            "cannot be kept in fp16",
            hint="leave that layer out of keep_float (only weights matched to their layer can be kept)",
        )


def _quantizable(module: nn.Module) -> bool:
    """A layer whose weight Core ML would quantize (a Linear or convolution above the size threshold)."""
    return isinstance(module, nn.Linear | nn.modules.conv._ConvNd) and module.weight.numel() > WEIGHT_THRESHOLD
