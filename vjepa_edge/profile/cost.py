"""The cost of one inference: FLOPs split into dense and attention work, weight and activation bytes.

`model_cost(model, example_inputs, precision=...)` runs the model once on meta tensors (no real compute: shapes
only) under a `TorchDispatchMode` that sees every aten operator. FLOPs use torch's own formulas
(`torch.utils.flop_counter.flop_registry`: mm, addmm, bmm, baddbmm, convolution, SDPA kernels), the same that
`vjepa_edge.export.delegation` uses, with SDPA forced to its math kernel so its two matmuls are seen. Only matrix
products and convolutions count, as in `FlopCounterMode` (softmax, norms and elementwise ops are 0).

A matrix product or convolution is *dense* when an operand derives from the weights alone (a parameter or
buffer, or a view, transpose or cast of one: `linear` reaches aten as `t(weight)` then `addmm`), and *attention*
when both operands are activations (QK^T and AV, linear attention's K^T V). Accelerators run the two at very
different efficiency once the token count grows (reference/edge.md 5.1, observation 2), so the estimator keeps
them apart. Activation traffic is the sum of the sizes of every operator output that is not a view and not
derived from weights alone, at the precision's activation width: a rough count of the bytes written once.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from vjepa_edge.errors import ConfigError

if TYPE_CHECKING:  # torch is imported where a model is counted: the estimator reads costs without it
    import torch
    from torch import nn

CostPrecision = Literal["fp32", "fp16", "w8a16", "w8a8"]
# Bytes per weight and per activation element: w8a8 is int8 weights and activations (the int8 export targets);
# w8a16 is Qualcomm's 8-bit weights with 16-bit activations.
WIDTHS: dict[str, tuple[int, int]] = {"fp32": (4, 4), "fp16": (2, 2), "w8a16": (1, 2), "w8a8": (1, 1)}
ALIASES = {"int8": "w8a8"}  # an export target's precision names its cost precision


@dataclass(frozen=True, kw_only=True, slots=True)
class Cost:
    """What one inference of a model costs, independent of any device."""

    dense_flops: float  # matmuls and convolutions with a weight operand (2 per multiply-accumulate)
    attn_flops: float  # matmuls of two activations: QK^T and AV (and K^T V of linear attention)
    weight_bytes: float  # parameters at the precision's weight width
    activation_bytes: float  # operator outputs written once, at the precision's activation width
    tokens: int  # the longest query sequence of an attention matmul (0 for a model without attention)
    params: int
    ops: int = 0  # aten operators that compute on activations (views left out): a proxy of kernel launches
    precision: CostPrecision = "fp32"

    def __post_init__(self) -> None:
        p: list[str] = []
        for name in ("dense_flops", "attn_flops", "weight_bytes", "activation_bytes"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                p.append(f"{name}={v!r}: need a finite number, 0 or more")
        for name in ("tokens", "params", "ops"):
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
                p.append(f"{name}={v!r}: need an integer, 0 or more")
        if self.precision not in WIDTHS:
            p.append(f"precision={self.precision!r}: one of {', '.join(WIDTHS)}")
        if self.dense_flops + self.attn_flops <= 0:
            p.append("no FLOPs: a model with neither matmuls nor convolutions cannot be estimated")
        if p:
            raise ConfigError("invalid cost", problems=p)

    @property
    def flops(self) -> float:
        return self.dense_flops + self.attn_flops

    @property
    def bytes(self) -> float:
        return self.weight_bytes + self.activation_bytes

    def at(self, precision: CostPrecision) -> Cost:
        """The same work at another precision (bytes rescaled; FLOPs unchanged); "int8" means w8a8."""
        precision = ALIASES.get(precision, precision)
        if precision not in WIDTHS:
            raise ConfigError(f"precision={precision!r}: one of {', '.join(WIDTHS)}")
        (w0, a0), (w1, a1) = WIDTHS[self.precision], WIDTHS[precision]
        return Cost(
            dense_flops=self.dense_flops,
            attn_flops=self.attn_flops,
            weight_bytes=self.weight_bytes * w1 / w0,
            activation_bytes=self.activation_bytes * a1 / a0,
            tokens=self.tokens,
            params=self.params,
            ops=self.ops,
            precision=precision,
        )

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


_MATMULS = {"mm", "addmm", "bmm", "baddbmm", "convolution", "_convolution", "matmul"}


@functools.cache
def _cost_mode() -> type:
    """The dispatch mode class (built on first use, so importing this module does not import torch)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten
    from torch.utils.flop_counter import flop_registry
    from torch.utils.weak import WeakIdKeyDictionary

    class CostMode(TorchDispatchMode):
        """Counts FLOPs and activation elements of every aten op; tracks which tensors derive from weights alone."""

        def __init__(self, weights: Sequence[torch.Tensor]) -> None:
            super().__init__()
            self.weight_derived = WeakIdKeyDictionary()
            for w in weights:
                self.weight_derived[w] = True
            self.dense = 0
            self.attn = 0
            self.act_elems = 0
            self.tokens = 0
            self.ops = 0

        def _is_weight(self, t: Any) -> bool:
            return isinstance(t, torch.Tensor) and t in self.weight_derived

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 (torch's signature)
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            inputs = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
            outputs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
            if inputs and all(self._is_weight(t) for t in inputs):  # views, casts, products of weights alone
                for t in outputs:
                    self.weight_derived[t] = True
                return out
            packet = func._overloadpacket
            flops = int(flop_registry[packet](*args, **kwargs, out_val=out)) if packet in flop_registry else 0
            if flops:
                operands = [a for a in args if isinstance(a, torch.Tensor)]
                if packet.__name__ in _MATMULS and any(self._is_weight(t) for t in operands):
                    self.dense += flops
                else:  # two activations (QK^T, AV), or a fused attention kernel
                    self.attn += flops
                    shape = outputs[0].shape if outputs else ()
                    if packet.__name__ in _MATMULS and len(shape) >= 2:
                        self.tokens = max(self.tokens, int(shape[-2]))
            if not func.is_view:
                self.act_elems += sum(t.numel() for t in outputs)
                self.ops += 1
            return out

    return CostMode


def _meta(t: Any) -> Any:
    return t.to("meta") if hasattr(t, "to") and hasattr(t, "numel") else t


def model_cost(
    model: nn.Module, example_inputs: tuple[Any, ...], *, precision: CostPrecision = "fp32", meta: bool = True
) -> Cost:
    """Count one forward of `model` on `example_inputs` (positional). With `meta` (the default) the weights and
    inputs are swapped for meta tensors through `torch.func.functional_call`, so nothing is computed and the model is
    not copied; a model that keeps plain (unregistered) tensors cannot run on meta: pass `meta=False` to count it on
    its real tensors instead (slow for big inputs)."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils._pytree import tree_map

    precision = ALIASES.get(precision, precision)
    if precision not in WIDTHS:
        raise ConfigError(f"precision={precision!r}: one of {', '.join(WIDTHS)}")
    params = dict(model.named_parameters(remove_duplicate=False))
    buffers = dict(model.named_buffers(remove_duplicate=False))
    n_params = sum(p.numel() for p in {id(p): p for p in params.values()}.values())
    state = {**params, **buffers}
    if meta:
        state = {k: _meta(v) for k, v in state.items()}
        example_inputs = tree_map(_meta, example_inputs)
    mode = _cost_mode()(list(state.values()))
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), mode:
        if meta:
            torch.func.functional_call(model, state, tuple(example_inputs), strict=False, tie_weights=True)
        else:
            model(*example_inputs)
    w_bytes, a_bytes = WIDTHS[precision]
    return Cost(
        dense_flops=float(mode.dense),
        attn_flops=float(mode.attn),
        weight_bytes=float(n_params * w_bytes),
        activation_bytes=float(mode.act_elems * a_bytes),
        tokens=mode.tokens,
        params=n_params,
        ops=mode.ops,
        precision=precision,
    )
