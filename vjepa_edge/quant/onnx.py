"""ONNX Runtime static int8 (scheme "onnx-int8"): torch.onnx (dynamo) export, then onnxruntime's `quantize_static`.

The student is exported once in fp32 at batch 1 and the fixed input shape of its `input_spec`; onnxruntime's
`quant_pre_process` (shape inference + basic graph fusions) prepares it when it can; `quantize_static` writes a QDQ
program with per-channel int8 weights and activations calibrated (MinMax) on the calibration clips, which are fed
one clip at a time (a batch of B is B feeds). The program runs on onnxruntime's CPU provider, one clip per run.

Choices, measured on a random 12-block ViT-Ti (4 frames, 32 px, patch 8), calibrated on 16 physics clips, token
cosine to fp32 on 16 others, on a 2-core AVX-512 VNNI x86 host (times interleaved, medians of 40 runs):
- Activations QUInt8, weights QInt8, reduce_range off: `quantize_static`'s docstring advice for x86 with VNNI (U8S8
  is the x86 integer-GEMM path; with VNNI nothing saturates). The cosine is the same as with QInt8 activations
  (0.999724 both: asymmetric int8 and uint8 are the same grid shifted by 128), and QUInt8 runs faster (14.4 vs
  18.5 ms per clip).
- Conv, MatMul, Gemm and Softmax are quantized. The first three have integer kernels on the CPU provider. Softmax
  is there for its output, the attention MatMul's input: onnxruntime gives a quantized Softmax the fixed range
  [0, 1], where the calibrated range (a max of 0.04 on near-uniform attention) clips the probabilities of other
  clips: cosine 0.9871 without it, 0.9997 with it. Quantizing every op (LayerNorm, GELU, Add too) only adds Q->DQ
  round trips: 0.9971, and no faster.

`keep_float` modules are found in the graph through the module path the dynamo exporter writes on every node
(metadata `pkg.torch.onnx.name_scopes`). The exporter's optimizer folds a BatchNorm into the Conv before it and the
fused node keeps only the BatchNorm's path, so Conv -> BatchNorm pairs are read from the graph before optimizing.
`quant_pre_process` drops the metadata but keeps node names (a fused node is named "<first node>/<Fusion>"), so
nodes are mapped to modules before pre-processing and found again by name.
"""

from __future__ import annotations

import ast
import json
import logging
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from vjepa_edge.errors import ConfigError
from vjepa_edge.models.inputs import InputSpec
from vjepa_edge.quant._program import check_keep_float
from vjepa_edge.quant.base import Progress, QuantizedModel, SchemeImpl
from vjepa_edge.runinfo import atomic_open, write_json

if TYPE_CHECKING:
    import onnx
    import onnxruntime

    from vjepa_edge.quant.schemes import Scheme

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
META_FILE = "quant.json"
OPSET = 20  # torch.onnx's default; per-channel QDQ needs 13 or more
QUANTIZED_OPS = ("Conv", "MatMul", "Gemm", "Softmax")  # see the module docstring
SCOPES_KEY = "pkg.torch.onnx.name_scopes"  # ['', 'blocks.0', 'blocks.0.mlp', 'blocks.0.mlp.fc2', 'linear_4']


# ----------------------------------------------------------------------------- shared by the scheme modules


def has_weights(module: nn.Module) -> bool:
    """Whether `module` holds a Linear or a convolution (what a scheme quantizes), itself or below."""
    return any(isinstance(m, nn.Linear | nn.modules.conv._ConvNd) for m in module.modules())


def read_meta(folder: Path, scheme: Scheme, program: str, keys: Sequence[str]) -> dict[str, Any]:
    """The `quant.json` of a program folder written by `scheme` (with `keys`); ConfigError when it is missing,
    of another scheme or lacks a key."""
    meta, prog = folder / META_FILE, folder / program
    hint = f"pass the folder `vjepa-edge quantize --scheme {scheme.name}` wrote (it holds {program} and {META_FILE})"
    if not meta.is_file() or not prog.exists():
        missing = ", ".join(p.name for p in (prog, meta) if not p.exists())
        raise ConfigError(f"no {scheme.name} program in {folder}: missing {missing}", hint=hint)
    try:
        data = json.loads(meta.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"unreadable {meta}: {e}", hint=hint) from None
    if not isinstance(data, dict) or data.get("scheme") != scheme.name:
        found = data.get("scheme") if isinstance(data, dict) else None
        raise ConfigError(f"{meta} is a program of scheme {found!r}, not {scheme.name!r}", hint=hint)
    missing = [k for k in keys if k not in data]
    if missing:
        raise ConfigError(f"{meta} lacks {', '.join(map(repr, missing))}", hint=hint)
    return data


def clip_feeds(calibration: Iterable[Tensor], spec: InputSpec, progress: Progress | None) -> Iterator[np.ndarray]:
    """Each calibration clip alone ([1, C, T, H, W] float32), calling `progress(1)` after each batch's last clip."""
    want = spec.shape(1)[1:]
    for batch in calibration:
        if batch.dim() != 5 or tuple(batch.shape[1:]) != want:
            raise ConfigError(
                f"calibration batch of shape {list(batch.shape)}: this student takes [B, {', '.join(map(str, want))}]",
                hint="make calibration clips with the student's input_spec (frames, size)",
            )
        clips = batch.detach().to("cpu", torch.float32).numpy()
        for i in range(len(clips)):
            yield np.ascontiguousarray(clips[i : i + 1])
        if progress is not None:
            progress(1)


class ClipReader:
    """Calibration feeds for `quantize_static`: an onnxruntime `CalibrationDataReader` by its subclass hook (any
    class with `get_next`), so that this module does not import onnxruntime."""

    def __init__(self, input_name: str, feeds: Iterator[np.ndarray]) -> None:
        self.input_name, self.feeds = input_name, feeds

    def get_next(self) -> dict[str, np.ndarray] | None:
        clip = next(self.feeds, None)
        return None if clip is None else {self.input_name: clip}


# ----------------------------------------------------------------------------- the program


class OnnxProgram(QuantizedModel):
    """A QDQ int8 ONNX program (bytes of `model.onnx`) for the fixed input of `spec`, batch 1."""

    emulated = False
    note = ""

    def __init__(
        self,
        scheme: Scheme,
        model_bytes: bytes,
        spec: InputSpec,
        *,
        keep_float: Sequence[str] = (),
        excluded_nodes: Sequence[str] = (),
    ) -> None:
        self.scheme, self.model_bytes, self.input_spec = scheme, model_bytes, spec
        self.keep_float, self.excluded_nodes = tuple(keep_float), tuple(excluded_nodes)
        self._session: onnxruntime.InferenceSession | None = None

    def session(self) -> onnxruntime.InferenceSession:
        """The CPU session (made on first use, with as many threads as torch uses)."""
        if self._session is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            options.inter_op_num_threads = 1
            self._session = ort.InferenceSession(self.model_bytes, options, providers=["CPUExecutionProvider"])
        return self._session

    def graph(self) -> onnx.ModelProto:
        import onnx

        return onnx.load_from_string(self.model_bytes)

    def __call__(self, x: Tensor) -> Tensor:
        want = self.input_spec.shape(1)[1:]
        if x.dim() != 5 or tuple(x.shape[1:]) != want:
            raise ValueError(f"expected clips [B, {', '.join(map(str, want))}], got shape {list(x.shape)}")
        session = self.session()
        name = session.get_inputs()[0].name
        clips = x.detach().to("cpu", torch.float32).numpy()
        # The program has the fixed batch 1 it was exported with: one run per clip.
        outs = [session.run(None, {name: np.ascontiguousarray(clips[i : i + 1])})[0] for i in range(len(clips))]
        return torch.from_numpy(np.concatenate(outs)).float()

    def save(self, folder: Path) -> list[Path]:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / MODEL_FILE
        with atomic_open(path) as f:
            f.write(self.model_bytes)
        meta = {
            "scheme": self.scheme.name,
            "input": self.input_spec.to_dict(),
            "batch": 1,
            "opset": OPSET,
            "keep_float": list(self.keep_float),
            "excluded_nodes": list(self.excluded_nodes),
        }
        return [path, write_json(folder / META_FILE, meta)]

    @property
    def size_bytes(self) -> int:
        return len(self.model_bytes)


# ----------------------------------------------------------------------------- export and node names


def export_fp32(model: nn.Module, spec: InputSpec, path: Path) -> tuple[onnx.ModelProto, dict[str, set[str]]]:
    """The fp32 graph of `model` at batch 1 (one file, weights inside), also written to `path`, and the modules
    of its nodes (`node_modules`)."""
    import onnx

    try:
        program = torch.onnx.export(
            model,
            spec.example_inputs(1),
            dynamo=True,
            external_data=False,
            opset_version=OPSET,
            optimize=False,
            verbose=False,  # else it prints its steps to stdout
        )
        folds = folded_norms(program.model_proto)  # seen before the optimizer folds BatchNorms into convolutions
        program.optimize()  # what optimize=True does; quant_pre_process's shape inference needs it
    except Exception as e:  # the exporter raises many kinds; all mean this student does not export
        raise ConfigError(
            f"torch.onnx.export cannot export this student: {e}", hint="try another scheme (`vjepa-edge list schemes`)"
        ) from None
    proto = program.model_proto
    onnx.save(proto, str(path))
    return proto, node_modules(proto, folds)


def _scopes(node: onnx.NodeProto) -> list[str]:
    """The module paths a node was traced in, outermost first (its exporter name scopes, the op's name left out)."""
    for prop in node.metadata_props:
        if prop.key == SCOPES_KEY:
            scopes = ast.literal_eval(prop.value)  # a printed list of strings
            # "blocks.0@1": the second call of a module; the module is still blocks.0
            return [s.split("@")[0] for s in scopes[:-1] if s]
    return []


def folded_norms(proto: onnx.ModelProto) -> dict[str, str]:
    """BatchNorm module -> the convolution module feeding it: the exporter's optimizer folds the BatchNorm into the
    Conv node, which then carries only the BatchNorm's name scope."""
    made_by = {out: node for node in proto.graph.node for out in node.output}
    out = {}
    for node in proto.graph.node:
        source = made_by.get(node.input[0]) if node.input else None
        if node.op_type == "BatchNormalization" and source is not None and source.op_type == "Conv":
            norm, conv = _scopes(node), _scopes(source)
            if norm and conv:
                out[norm[-1]] = conv[-1]
    return out


def node_modules(proto: onnx.ModelProto, folds: dict[str, str]) -> dict[str, set[str]]:
    """Node name -> every module it computes part of (a Conv with a folded BatchNorm: the convolution's too)."""
    out = {}
    for node in proto.graph.node:
        scopes = set(_scopes(node))
        if node.op_type == "Conv":
            scopes |= {folds[s] for s in scopes if s in folds}
        out[node.name] = scopes
    return out


def pre_process(src: Path, dst: Path) -> Path:
    """onnxruntime's `quant_pre_process` output, or `src` where it fails on this graph (quantization still works,
    with fewer fusions)."""
    from onnxruntime.quantization import quant_pre_process

    try:
        quant_pre_process(str(src), str(dst))
    except Exception as e:  # symbolic shape inference refuses some graphs; the raw export still quantizes
        log.warning("quant_pre_process failed on this graph (%s); quantizing the graph as exported", e)
        return src
    return dst if dst.is_file() else src


def excluded_nodes(
    model: nn.Module, keep_float: Sequence[str], modules_of: dict[str, set[str]], graph: onnx.ModelProto
) -> list[str]:
    """Names of the nodes of `graph` traced inside the `keep_float` modules (for `nodes_to_exclude`)."""
    out: list[str] = []
    for name in keep_float:
        # A fused node ("node_MatMul_130/MatMulAddFusion") is found under the name of the node it started from.
        nodes = [
            n for n in graph.graph.node if name in modules_of.get(n.name, modules_of.get(n.name.split("/")[0], ()))
        ]
        if not any(n.op_type in QUANTIZED_OPS for n in nodes) and has_weights(model.get_submodule(name)):
            raise ConfigError(
                f"keep_float: found no ONNX node of module {name!r} (its layers carry no exporter name scope here)",
                hint="name a Linear or Conv module, or leave keep_float empty",
            )
        out += [n.name for n in nodes if n.name not in out]
    return out


# ----------------------------------------------------------------------------- the scheme


class OnnxStatic(SchemeImpl):
    """onnxruntime `quantize_static`, QDQ, per-channel int8 weights, calibrated uint8 activations."""

    def quantize(
        self,
        model: nn.Module,
        calibration: Iterable[Tensor] | None,
        *,
        keep_float: Sequence[str] = (),
        progress: Progress | None = None,
    ) -> OnnxProgram:
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

        if calibration is None:
            raise ConfigError(f"scheme {self.scheme.name!r} calibrates activations: it needs calibration clips")
        check_keep_float(model, keep_float)
        spec = model.input_spec
        with tempfile.TemporaryDirectory(prefix="vjepa-edge-onnx-") as tmp:
            raw, out = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
            proto, modules_of = export_fp32(model, spec, raw)
            src = pre_process(raw, Path(tmp) / "pre.onnx")
            graph = proto if src == raw else _load(src)
            exclude = excluded_nodes(model, keep_float, modules_of, graph)
            quantize_static(
                str(src),
                str(out),
                calibration_data_reader=ClipReader(graph.graph.input[0].name, clip_feeds(calibration, spec, progress)),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(QUANTIZED_OPS),
                per_channel=True,
                reduce_range=False,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=exclude,
            )
            data = out.read_bytes()
        return OnnxProgram(self.scheme, data, spec, keep_float=keep_float, excluded_nodes=exclude)

    def load(self, folder: Path) -> OnnxProgram:
        folder = Path(folder)
        meta = read_meta(folder, self.scheme, MODEL_FILE, ("input", "keep_float", "excluded_nodes"))
        return OnnxProgram(
            self.scheme,
            (folder / MODEL_FILE).read_bytes(),
            InputSpec.from_dict(meta["input"]),
            keep_float=meta["keep_float"],
            excluded_nodes=meta["excluded_nodes"],
        )


def _load(path: Path) -> onnx.ModelProto:
    import onnx

    return onnx.load(str(path))
