"""The export form of our encoders and predictors: the same weights, written in operators XNNPACK delegates.

`deploy_form(model)` returns a deep copy in which every `Attention` is a `BmmAttention` and every `nn.LayerNorm`
a `DelegateLayerNorm`. Both are subclasses that own the very same parameters, so module names and state-dict keys
are unchanged (official checkpoints load into either form; PT2E `keep_float` module filters still match) and the
numbers agree with the training form to float32 rounding (tests/models/test_deploy.py: <= 1e-5 max abs).
The training form stays as it is: fused `F.scaled_dot_product_attention` (flash attention on the GPU) and the
native LayerNorm kernel.

Why (ExecuTorch 1.5.1, XnnpackPartitioner; reference/edge-api.md facts 1, 5, 6 and 1.2): in the training form,
  - `F.scaled_dot_product_attention` decomposes into `mul.Scalar` x2 (the scale), a NaN guard
    (`eq`/`full_like`/`logical_not`/`any`/`where`) and a 4-D matmul whose `expand_copy` copies q, k, the
    attention map and v: none of these is delegated;
  - `unbind` (q/k/v, and the RoPE pairs) becomes `select_copy`/`squeeze_copy`, not delegated;
  - `native_layer_norm` has no XNNPACK config;
and each operator left outside splits the delegate. The export form writes
  - attention as explicit 3-D `torch.bmm` on (B*heads, N, head_dim) with `softmax` on the last dim;
  - q, k, v and the RoPE pairs apart with reshapes and slices that keep their dimension;
  - the 1/sqrt(head_dim) scale as `mul.Tensor` by a constant tensor on q. Folding it into the q rows of the qkv
    weight would cost nothing in float but shrinks q against k and v in the per-tensor int8 scale that static
    PT2E gives the qkv output (1/8 of the range for head_dim 64: three bits of q lost);
  - LayerNorm as mean / sub / mul / rsqrt / add, the two means as a matrix product with a constant [C, 1]
    column of 1/C: XNNPACK's `mean.dim` only pools 4-D tensors over dims (2, 3), and a matmul by a constant
    is neither an `nn.Linear` nor an `aten.linear`, so no quantizer annotates it (the statistics stay fp32).

Measured on a randomly initialised vit_small at 16 frames x 64 px, tubelet 4 (64 tokens), XnnpackPartitioner with
its defaults, fp32 and PT2E static int8 (XNNPACKQuantizer on linears, as `vjepa_edge.quant.pt2e`):
  training form: 73 partitions; outside: squeeze_copy 84, expand_copy 48, native_layer_norm 25, mul.Scalar 24,
                 logical_not 24, eq/full_like/any/where 12 each (fp32 and int8 alike);
  export form:    1 partition, no operator outside (fp32 and int8); the same outputs (max abs 1.2e-6 in eager).
The .pte latency (ExecuTorch runtime, 2 threads, median of 15 after 3 warm-up, on a shared, loaded 2-core AMD EPYC):
fp32 53-55 -> 46-48 ms, int8 30-32 -> 23-24 ms (two runs, rounds interleaved). Everything else (`TubeletEmbed`, the
position embedding, GELU, the residual adds) was already delegated.
tests/export/test_export_form.py pins `PARTITIONS` on vit_pico.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor, nn

from vjepa_edge.models.layers import Attention

PARTITIONS = 1  # XNNPACK partitions of an encoder in export form (fp32 and PT2E int8), measured


def rotate_pairs(x: Tensor) -> Tensor:
    """(-x2, x1) for each adjacent channel pair (x1, x2) of the last dim, written with slices that keep their
    dimension (no `unbind`, so no `select_copy` / `squeeze_copy` outside the delegate). `apply_rope`'s rotation."""
    pairs = x.unflatten(-1, (-1, 2))
    rotated = torch.cat((-pairs[..., 1:], pairs[..., :1]), dim=-1)
    return rotated.flatten(-2)


def rope_sliced(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """`layers.apply_rope` with the pairs taken apart by slices (same numbers)."""
    if cos.dtype != x.dtype:
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return x * cos + rotate_pairs(x) * sin


class BmmAttention(Attention):
    """`Attention` computed as 3-D `bmm` -> `softmax(-1)` -> `bmm`; the same parameters (qkv, proj)."""

    def __init__(self, dim: int, num_heads: int, *, qkv_bias: bool = True) -> None:
        super().__init__(dim, num_heads, qkv_bias=qkv_bias)
        head_dim = dim // num_heads
        # A tensor, not a Python float: `q * float` exports as `mul.Scalar`, which XNNPACK does not delegate.
        self.register_buffer("scale", torch.tensor([1.0 / math.sqrt(head_dim)]), persistent=False)

    @classmethod
    def of(cls, attn: Attention) -> BmmAttention:
        """The export form of `attn`, sharing its parameters."""
        dim = attn.qkv.in_features
        with torch.device(attn.qkv.weight.device):
            new = cls(dim, attn.num_heads, qkv_bias=attn.qkv.bias is not None)
        new.qkv, new.proj = attn.qkv, attn.proj
        new.scale = new.scale.to(attn.qkv.weight.dtype)
        new.train(attn.training)
        return new

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor] | None = None) -> Tensor:
        B, N, C = x.shape
        H = self.num_heads
        hd = C // H
        # [B, 3H, N, hd]: q heads, k heads, v heads. Rank 5 at most (Core ML takes no more), slices keep their dim.
        qkv = self.qkv(x).reshape(B, N, 3, H, hd).permute(0, 2, 3, 1, 4).reshape(B, 3 * H, N, hd)
        qk, v = qkv[:, : 2 * H], qkv[:, 2 * H :]
        if rope is not None:
            qk = rope_sliced(qk, *rope)  # q and k rotated together: the tables broadcast over their 2H heads
        q = (qk[:, :H] * self.scale).reshape(B * H, N, hd)
        k = qk[:, H:].reshape(B * H, N, hd)
        attn = torch.bmm(q, k.transpose(1, 2)).softmax(dim=-1)
        out = torch.bmm(attn, v.reshape(B * H, N, hd))
        return self.proj(out.reshape(B, H, N, hd).transpose(1, 2).reshape(B, N, C))


class DelegateLayerNorm(nn.LayerNorm):
    """`nn.LayerNorm` over the last dim, written as matmul-means, sub, mul, rsqrt and add; the same parameters."""

    def __init__(self, dim: int, eps: float, elementwise_affine: bool = True, bias: bool = True) -> None:
        super().__init__(dim, eps=eps, elementwise_affine=elementwise_affine, bias=bias)
        self.register_buffer("mean_col", torch.full((dim, 1), 1.0 / dim), persistent=False)
        self.register_buffer("eps_t", torch.tensor([eps]), persistent=False)

    @classmethod
    def of(cls, norm: nn.LayerNorm) -> DelegateLayerNorm:
        if len(norm.normalized_shape) != 1:
            raise ValueError(f"only a LayerNorm over the last dim has an export form, not {norm.normalized_shape}")
        (dim,) = norm.normalized_shape
        device = norm.weight.device if norm.weight is not None else None
        with torch.device(device or "cpu"):
            new = cls(dim, norm.eps, norm.elementwise_affine, norm.bias is not None)
        new.weight, new.bias = norm.weight, norm.bias
        new.train(norm.training)
        return new

    def forward(self, x: Tensor) -> Tensor:
        mean_col = self.mean_col.to(x.dtype)
        centred = x - x @ mean_col
        var = (centred * centred) @ mean_col
        y = centred * torch.rsqrt(var + self.eps_t.to(x.dtype))
        if self.weight is not None:
            y = y * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y


def to_deploy_form(model: nn.Module) -> nn.Module:
    """Swap, in place, every `Attention` and every plain `nn.LayerNorm` of `model` for its export form."""
    for name, module in list(model.named_modules()):
        if type(module) is Attention:
            new: nn.Module = BmmAttention.of(module)
        elif type(module) is nn.LayerNorm and len(module.normalized_shape) == 1:
            new = DelegateLayerNorm.of(module)
        else:
            continue
        if not name:  # the model itself is one of them
            return new
        parent, _, leaf = name.rpartition(".")
        setattr(model.get_submodule(parent), leaf, new)
    return model


FORM_BACKENDS = ("xnnpack",)  # the backends that lower the export form better than the training form


def form_for(backend: str, model: nn.Module) -> nn.Module:
    """A deep copy of `model` as `backend` should get it: the export form for the backends in `FORM_BACKENDS`
    (the export targets and the quantization schemes of that backend both ask here, so the program a scheme
    quantizes is the one its target lowers), the training form for the others (Core ML and ONNX take SDPA and
    LayerNorm whole)."""
    return deploy_form(model) if backend in FORM_BACKENDS else copy.deepcopy(model)


def deploy_form(model: nn.Module) -> nn.Module:
    """A deep copy of `model` in export form (see the module docstring); `model` itself is untouched."""
    return to_deploy_form(copy.deepcopy(model))
