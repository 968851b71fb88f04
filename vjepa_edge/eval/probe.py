"""Frozen-feature probes: extract an encoder's tokens once, then train small classifier heads on them.

V-JEPA's evaluation protocol: the encoder stays frozen, an attentive probe (one learnable query that
cross-attends to all tokens) is trained per task, and the best head of a learning-rate sweep is reported.
`extract_features` runs the encoder once over a dataset; `train_probe` trains one head per learning rate
on the stored tokens (the heads share every batch, as in V-JEPA 2's multi-head probe) and reports the
top-1 test accuracy of each. `random_init_like` builds the "random-init encoder of the same size" baseline.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from vjepa_edge.data.loader import collate_clips
from vjepa_edge.data.physics import LABELS
from vjepa_edge.errors import ConfigError, DataError, VjepaEdgeError
from vjepa_edge.models.layers import MLP, sincos_3d
from vjepa_edge.models.vit import VisionTransformer

log = logging.getLogger(__name__)

ProbeKind = Literal["attentive", "attentive4", "linear", "grid"]
PROBE_KINDS: tuple[str, ...] = ("attentive", "attentive4", "linear", "grid")


@dataclass(frozen=True, kw_only=True, slots=True)
class Features:
    """Frozen encoder outputs of N clips: `tokens` [N, tokens, D] float16 on CPU, `labels` name -> LongTensor[N]."""

    tokens: Tensor
    labels: dict[str, Tensor] = field(default_factory=dict)
    grid: tuple[int, int, int] | None = None  # the token grid (T', H', W'), for probes that keep positions

    def __post_init__(self) -> None:
        if self.tokens.dim() != 3:
            raise ValueError(f"Features.tokens must be [N, tokens, D], got shape {list(self.tokens.shape)}")
        if self.grid is not None and math.prod(self.grid) != self.tokens.shape[1]:
            raise ValueError(f"grid {self.grid} does not hold the {self.tokens.shape[1]} tokens")
        for name, y in self.labels.items():
            if y.shape != (len(self),) or y.dtype != torch.long:
                raise ValueError(f"label {name!r} must be a LongTensor[{len(self)}], got {y.dtype} {list(y.shape)}")

    def __len__(self) -> int:
        return self.tokens.shape[0]

    @property
    def num_tokens(self) -> int:
        return self.tokens.shape[1]

    @property
    def dim(self) -> int:
        return self.tokens.shape[2]


def extract_features(
    encoder: nn.Module,
    dataset: Dataset,
    *,
    batch_size: int = 32,
    num_workers: int = 0,
    autocast_dtype: torch.dtype | None = None,
    device: str | torch.device = "cpu",
    progress: Callable[..., Any] | None = None,
    dtype: torch.dtype = torch.float16,
) -> Features:
    """Run the frozen `encoder` over `dataset` (items with `clip` and `labels`) and keep its tokens in `dtype`
    (float16: half the memory, enough for probes; float32 where tokens are compared to a few 1e-4, as int8 is).

    The encoder is moved to `device` and run in eval mode under `torch.inference_mode` (its training flag is
    restored afterwards), with autocast to `autocast_dtype` when given. `progress(advance=n)` is called after
    each batch of n clips.
    """
    device = torch.device(device)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_clips)
    total = len(dataset)  # type: ignore[arg-type]
    autocast = (
        torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None else contextlib.nullcontext()
    )
    was_training = encoder.training
    encoder.to(device).eval()
    tokens: Tensor | None = None
    grid: tuple[int, int, int] | None = None
    labels: dict[str, list[Tensor]] = {}
    start = 0
    try:
        for batch in loader:
            # Only the forward runs in inference mode: the stored tensors stay ordinary ones that callers may edit.
            clip = batch["clip"].to(device, non_blocking=True)
            with torch.inference_mode(), autocast:
                out = encoder(clip)
            if grid is None and hasattr(encoder, "token_grid"):
                grid = encoder.token_grid(clip)
            out = out.to("cpu", dtype)
            if not torch.isfinite(out).all():
                raise VjepaEdgeError(
                    f"encoder tokens of clips {start}..{start + len(out) - 1} are not finite in {dtype}",
                    hint="check the encoder's weights and input normalisation (float16 holds |x| < 65504)",
                )
            if tokens is None:
                tokens = torch.empty(total, *out.shape[1:], dtype=dtype)
            tokens[start : start + len(out)] = out
            start += len(out)
            for name, y in batch["labels"].items():
                labels.setdefault(name, []).append(y)
            if progress is not None:
                progress(advance=len(out))
    finally:
        encoder.train(was_training)
    if tokens is None:
        raise DataError("the dataset has no clips to extract features from")
    features = Features(tokens=tokens[:start], labels={k: torch.cat(v) for k, v in labels.items()}, grid=grid)
    log.debug("extracted %d clips: %d tokens x %d dims", len(features), features.num_tokens, features.dim)
    return features


class Adapted(nn.Module):
    """An encoder that takes the evaluation's clips, resampled to its own input (`input_spec.adapt`), so that every
    stage is probed on the very same clips. `grid`: its token grid (t, h, w)."""

    def __init__(self, encoder: Callable[[Tensor], Tensor], input_spec: Any, grid: tuple[int, int, int]) -> None:
        super().__init__()
        self.encoder, self.input_spec, self.grid = encoder, input_spec, tuple(grid)

    def forward(self, clip: Tensor) -> Tensor:
        return self.encoder(self.input_spec.adapt(clip)).float()

    def token_grid(self, clip: Tensor) -> tuple[int, int, int]:
        return self.grid


def default_num_heads(dim: int) -> int:
    """The divisor of `dim` closest to dim / 64 (64-channel heads, as in V-JEPA's ViTs), at least 1."""
    divisors = [h for h in range(1, dim + 1) if dim % h == 0]
    return min(divisors, key=lambda h: (abs(h - dim / 64), -h))


class CrossAttention(nn.Module):
    """V-JEPA's cross-attention of queries to tokens: q Linear(D, D), kv Linear(D, 2D), no output projection.

    It takes the tokens normalised without affine (`xn`) plus the affine of the LayerNorm before it. Keys and
    values are affine in each token, so the key projection is folded into the query and the value projection
    is applied after pooling: per token the cost drops from 2*D*D to 2*D*heads multiply-adds. The result is
    the textbook formula's, with the same parameters (tests check both values and gradients).
    """

    def __init__(self, dim: int, num_heads: int, *, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"probe num_heads={num_heads} does not divide the feature width {dim}")
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)

    def forward(self, q: Tensor, xn: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        """q [B|1, Q, D] queries, xn [B, N, D] normalised tokens, (weight, bias) the LayerNorm affine -> [B, Q, D]."""
        B, D = xn.shape[0], xn.shape[-1]
        Q, H = q.shape[1], self.num_heads
        hd = D // H
        wk, wv = self.kv.weight.view(2, H, hd, D).unbind(0)
        q = self.q(q).view(-1, Q, H, hd)
        # q.k_j = q.(Wk(w*xn_j + b) + bk) = (w * Wk^T q).xn_j + a term equal for every token, which softmax drops.
        qk = (torch.einsum("bqhe,hed->bqhd", q, wk) * weight).reshape(-1, Q * H, D)
        # Plain matmuls rather than F.scaled_dot_product_attention: its CPU backward also computes the unused
        # key and value gradients ([B, N, D] each) and makes a training step about twice as slow.
        attn = (torch.matmul(xn, qk.transpose(1, 2)) * hd**-0.5).softmax(dim=1)  # [B, N, Q*H]
        pooled = (attn.transpose(1, 2) @ xn).view(B, Q, H, D)
        # The attention weights sum to one, so pooling commutes with the affine maps: v = Wv(w*pooled + b) + bv.
        out = torch.einsum("bqhd,hed->bqhe", pooled * weight + bias, wv)
        if self.kv.bias is not None:
            out = out + self.kv.bias.view(2, H, hd)[1]
        return out.reshape(B, Q, D)


class CrossAttentionBlock(nn.Module):
    """q = q + xattn(q, norm1(x)); q = q + mlp(norm2(q)). Takes `xn`, the tokens normalised without affine."""

    def __init__(self, dim: int, num_heads: int, *, mlp_ratio: float = 4.0, eps: float = 1e-5) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.xattn = CrossAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = MLP(dim, int(dim * mlp_ratio))

    def forward(self, q: Tensor, xn: Tensor) -> Tensor:
        q = q + self.xattn(q, xn, self.norm1.weight, self.norm1.bias)
        return q + self.mlp(self.norm2(q))


class AttentivePooler(nn.Module):
    """One learnable query token that cross-attends to the tokens (V-JEPA's `AttentivePooler`, depth 1)."""

    def __init__(self, dim: int, num_heads: int, *, init_std: float = 0.02) -> None:
        super().__init__()
        self.query_tokens = nn.Parameter(torch.zeros(1, 1, dim))
        self.cross_attention_block = CrossAttentionBlock(dim, num_heads)
        nn.init.trunc_normal_(self.query_tokens, std=init_std)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=init_std)
                nn.init.zeros_(m.bias)
        with torch.no_grad():  # V-JEPA's residual rescaling of the one block (layer 1)
            self.cross_attention_block.mlp.fc2.weight.div_(math.sqrt(2.0))

    def forward(self, xn: Tensor) -> Tensor:
        return self.cross_attention_block(self.query_tokens, xn).squeeze(1)


class AttentiveProbe(nn.Module):
    """V-JEPA's attentive classifier: attentive pooling to one vector, then Linear(D, num_classes).

    Parameter names follow V-JEPA 2's `AttentiveClassifier` (`pooler.query_tokens`,
    `pooler.cross_attention_block.{norm1,xattn.q,xattn.kv,norm2,mlp.fc1,mlp.fc2}`, `linear`).
    `forward(x)` = `classify(prepare(x))`; `prepare` has no parameters, so the heads of a sweep share it.
    `depth` 4 is V-JEPA 2's probe (`pooler.blocks.{0,1,2}`: three self-attention blocks on the tokens before the
    cross-attention); depth 1 is V-JEPA 1's.
    """

    def __init__(
        self,
        dim: int,
        num_classes: int,
        *,
        num_heads: int = 0,
        depth: int = 1,
        grid: tuple[int, int, int] | None = None,
    ) -> None:
        super().__init__()
        heads = num_heads or default_num_heads(dim)
        # Where each token is: V-JEPA 1's fixed 3-D sin-cos embedding of the token grid, added to the normalised
        # tokens. Attention pooling is blind to order, and tokens of a RoPE encoder (V-JEPA 2's, the embedded
        # teacher's, the students') do not carry their position, so without it no attentive probe can tell left
        # from right or start from end. Not a parameter: the state dict keeps V-JEPA 2's names.
        pos = sincos_3d(dim, grid, uniform_power=False) if grid is not None else torch.zeros(0)
        self.register_buffer("pos", pos, persistent=False)
        self.pooler = AttentivePooler(dim, heads)
        if depth > 1:
            from vjepa_edge.models.layers import Block

            self.pooler.blocks = nn.ModuleList(Block(dim, heads, 4 * dim, eps=1e-5) for _ in range(depth - 1))
            for m in self.pooler.blocks.modules():
                if isinstance(m, nn.Linear):
                    nn.init.trunc_normal_(m.weight, std=0.02)
                    nn.init.zeros_(m.bias)
        self.linear = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.linear.weight, std=0.02)
        nn.init.zeros_(self.linear.bias)

    def _normalise(self, x: Tensor) -> Tensor:
        norm = self.pooler.cross_attention_block.norm1
        return F.layer_norm(x, norm.normalized_shape, eps=norm.eps)

    def prepare(self, x: Tensor) -> Tensor:
        """Tokens [B, N, D] (any float dtype) -> float32 tokens, normalised by norm1 without its affine when the
        cross-attention reads them directly (depth 1), plus their grid position when the probe has a grid."""
        x = x.float() if hasattr(self.pooler, "blocks") else self._normalise(x.float())
        if self.pos.numel():
            if self.pos.shape[0] != x.shape[1]:
                raise ConfigError(f"the probe's grid has {self.pos.shape[0]} tokens, the features {x.shape[1]}")
            x = x + self.pos
        return x

    def classify(self, xn: Tensor) -> Tensor:
        if hasattr(self.pooler, "blocks"):
            for block in self.pooler.blocks:
                xn = block(xn)
            xn = self._normalise(xn)
        return self.linear(self.pooler(xn))

    def forward(self, x: Tensor) -> Tensor:
        return self.classify(self.prepare(x))


class AttentiveProbe4(AttentiveProbe):
    """V-JEPA 2's four-block attentive probe (three self-attention blocks, then the cross-attention block)."""

    def __init__(
        self, dim: int, num_classes: int, *, num_heads: int = 0, grid: tuple[int, int, int] | None = None
    ) -> None:
        super().__init__(dim, num_classes, num_heads=num_heads, depth=4, grid=grid)


class LinearProbe(nn.Module):
    """Mean-pooled tokens -> BatchNorm1d(affine=False) -> Linear: the classic linear probe, for comparison."""

    def __init__(
        self, dim: int, num_classes: int, *, num_heads: int = 0, grid: tuple[int, int, int] | None = None
    ) -> None:
        """`num_heads` and `grid` are accepted, and unused (a mean has no order), so the probe kinds share one
        constructor signature."""
        super().__init__()
        self.bn = nn.BatchNorm1d(dim, affine=False)
        self.linear = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.linear.weight, std=0.02)
        nn.init.zeros_(self.linear.bias)

    def prepare(self, x: Tensor) -> Tensor:
        return x.float().mean(dim=1)

    def classify(self, pooled: Tensor) -> Tensor:
        return self.linear(self.bn(pooled))

    def forward(self, x: Tensor) -> Tensor:
        return self.classify(self.prepare(x))


class GridLinearProbe(nn.Module):
    """A linear probe on the token map: tokens average-pooled to at most (T', h, w), flattened,
    BatchNorm1d(affine=False) -> Linear.

    Unlike mean pooling it keeps where and when: a linear map of a coarse feature map can compare the start of a
    clip with its end, which is what motion labels (event, direction) need from tokens that do not carry their
    own position (RoPE encoders). `pool` (t, h, w) is the pooled grid; t = 0 keeps every time step.
    """

    def __init__(self, dim: int, num_classes: int, *, grid: tuple[int, int, int], pool: tuple[int, int, int]) -> None:
        super().__init__()
        self.grid = grid
        self.pool = (pool[0] or grid[0], min(pool[1], grid[1]), min(pool[2], grid[2]))
        width = dim * math.prod(self.pool)
        self.bn = nn.BatchNorm1d(width, affine=False)
        self.linear = nn.Linear(width, num_classes)
        nn.init.trunc_normal_(self.linear.weight, std=0.02)
        nn.init.zeros_(self.linear.bias)

    def prepare(self, x: Tensor) -> Tensor:
        B, N, D = x.shape
        x = x.float().view(B, *self.grid, D).permute(0, 4, 1, 2, 3)
        if self.pool == tuple(self.grid):  # nothing to average (a 64 px clip's whole map): the same values, 3x faster
            return x.flatten(1)
        return F.adaptive_avg_pool3d(x, self.pool).flatten(1)

    def classify(self, pooled: Tensor) -> Tensor:
        return self.linear(self.bn(pooled))

    def forward(self, x: Tensor) -> Tensor:
        return self.classify(self.prepare(x))


_PROBES: dict[str, type[AttentiveProbe] | type[LinearProbe]] = {
    "attentive": AttentiveProbe,
    "attentive4": AttentiveProbe4,
    "linear": LinearProbe,
}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


# Each kind's training schedule (epochs, learning rates) where a config leaves it unset, made for the ~1000 labelled
# clips the physics evaluations train on. V-JEPA's 20 epochs at 1e-3 / 3e-4 were made for datasets a hundred times
# larger; they suit the linear heads, but an attentive probe must learn where to look from 1024 clips and sat near
# chance with them. With 100 epochs at 1e-2 / 3e-3 the embedded teacher's attentive probe reads 12.7 points above
# its random init on event and level with it on direction (the README's teacher section). V-JEPA 2's four-block
# probe keeps V-JEPA's schedule: its three self-attention blocks over every token make each epoch far dearer on a CPU.
SCHEDULES: dict[str, tuple[int, tuple[float, ...]]] = {
    "attentive": (100, (1e-2, 3e-3)),
    "attentive4": (20, (1e-3, 3e-4)),
    "linear": (20, (1e-3, 3e-4)),
    "grid": (20, (1e-3, 3e-4)),
}


@dataclass(frozen=True, kw_only=True, slots=True)
class ProbeConfig:
    """How to train a probe: `kind`, and one head per learning rate in `lrs` (the best one is reported).

    `epochs` and `lrs` left at None take the kind's schedule (`SCHEDULES`). `num_heads=0` picks a divisor of the
    feature width near width / 64.
    """

    kind: ProbeKind = "attentive"
    epochs: int | None = None
    batch_size: int = 64
    lrs: tuple[float, ...] | None = None
    weight_decay: float = 0.01
    num_heads: int = 0
    # The grid probe's pooled (t, h, w); t = 0 keeps every time step. (0, 4, 4) is the whole token map of a 64 px
    # clip with 16 px patches; larger maps are averaged down to 4x4 so the probe's width stays bounded.
    pool: tuple[int, int, int] = (0, 4, 4)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("lrs", "pool"):  # dicts and TOML give lists
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        epochs, lrs = SCHEDULES.get(self.kind, SCHEDULES["attentive"])
        if self.epochs is None:
            object.__setattr__(self, "epochs", epochs)
        if self.lrs is None:
            object.__setattr__(self, "lrs", lrs)
        p: list[str] = []
        if self.kind not in PROBE_KINDS:
            p.append(f"kind={self.kind!r}: need one of {', '.join(map(repr, PROBE_KINDS))}")
        for name in ("epochs", "batch_size"):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 1:
                p.append(f"{name}={getattr(self, name)!r}: need a positive integer")
        if not isinstance(self.lrs, tuple) or not self.lrs:
            p.append(f"lrs={self.lrs!r}: need a non-empty tuple of learning rates")
        elif not all(_is_number(lr) and lr > 0 for lr in self.lrs) or len(set(self.lrs)) != len(self.lrs):
            p.append(f"lrs={self.lrs!r}: need distinct positive finite learning rates")
        if not _is_number(self.weight_decay) or self.weight_decay < 0:
            p.append(f"weight_decay={self.weight_decay!r}: need a finite number >= 0")
        for name in ("num_heads", "seed"):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 0:
                p.append(f"{name}={getattr(self, name)!r}: need an integer >= 0")
        if len(self.pool) != 3 or not all(_is_int(v) and v >= 0 for v in self.pool) or not all(self.pool[1:]):
            p.append(f"pool={self.pool!r}: need three integers (t, h, w), h and w positive, t = 0 for every step")
        if p:
            raise ConfigError("invalid probe config", problems=p)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lrs": list(self.lrs),
            "weight_decay": self.weight_decay,
            "num_heads": self.num_heads,
            "pool": list(self.pool),
            "seed": self.seed,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class ProbeResult:
    """Test top-1 accuracy of the best head (`accuracy`, `best_lr`) and of every head (`accuracies`, lr -> acc)."""

    label: str
    kind: str
    accuracy: float
    best_lr: float
    accuracies: dict[float, float]
    chance: float
    num_classes: int
    num_train: int
    num_test: int
    also: dict[str, float] = field(default_factory=dict)  # the best head's accuracy on other test features

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "kind": self.kind,
            "accuracy": self.accuracy,
            "best_lr": self.best_lr,
            "accuracies": {f"{lr:g}": acc for lr, acc in self.accuracies.items()},
            "chance": self.chance,
            "num_classes": self.num_classes,
            "num_train": self.num_train,
            "num_test": self.num_test,
            "also": dict(self.also),
        }


def _label_problems(train: Features, test: Features, labels: Sequence[str]) -> list[str]:
    known = sorted(set(train.labels) & set(test.labels))
    p = []
    for label in labels:
        if label in known:
            continue
        close = difflib.get_close_matches(label, known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"available: {', '.join(known) or 'none'}"
        p.append(f"label {label!r} is not in both the train and the test features ({hint})")
    if train.dim != test.dim:
        p.append(f"train features are {train.dim} wide but test features are {test.dim} wide")
    if len(train) < 2 or len(test) < 1:
        p.append(f"need at least 2 train and 1 test clips, got {len(train)} and {len(test)}")
    return p


def _num_classes(label: str, *ys: Tensor) -> int:
    lowest = min(int(y.min()) for y in ys if y.numel())
    if lowest < 0:
        raise DataError(f"label {label!r} has value {lowest}: unlabelled clips (-1) cannot be probed")
    seen = max(int(y.max()) for y in ys if y.numel()) + 1
    if label in LABELS:
        if seen > len(LABELS[label]):
            raise DataError(f"label {label!r} has class {seen - 1}, but it has only {len(LABELS[label])} classes")
        return len(LABELS[label])
    return seen


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """torch.manual_seed(seed) inside a fork of the CPU and CUDA generators: global RNG state is untouched."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _batches(n: int, batch_size: int, g: torch.Generator) -> list[Tensor]:
    """A shuffled epoch; a last batch of one clip joins the one before (BatchNorm needs two)."""
    batches = list(torch.randperm(n, generator=g).split(batch_size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2:] = [torch.cat(batches[-2:])]
    return batches


def _optimizer(head: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW; as in V-JEPA's evals, biases and 1-D parameters (norms) get no weight decay.

    The fused kernel makes a probe step on CPU about 10% faster than the default per-tensor loop.
    """
    decay = [p for n, p in head.named_parameters() if not n.endswith("bias") and p.dim() != 1]
    rest = [p for n, p in head.named_parameters() if n.endswith("bias") or p.dim() == 1]
    groups = [{"params": decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay, fused=True)


def _accuracies(heads: list[nn.Module], tokens: Tensor, y: Tensor, batch_size: int) -> list[float]:
    correct = [0] * len(heads)
    for h in heads:
        h.eval()
    with torch.inference_mode():
        for start in range(0, len(y), batch_size):
            x = heads[0].prepare(tokens[start : start + batch_size])  # type: ignore[operator]
            target = y[start : start + batch_size]
            for i, h in enumerate(heads):
                correct[i] += int((h.classify(x).argmax(-1) == target).sum())  # type: ignore[operator]
    return [c / len(y) for c in correct]


PREPARED_BYTES = 1 << 30  # the most memory the training clips' prepared inputs may take to be prepared only once


@torch.no_grad()
def _prepared(head: nn.Module, tokens: Tensor) -> Tensor | None:
    """Every training clip's `head.prepare` (parameter-free: pooling, normalisation), computed once instead of once
    per epoch when it fits in `PREPARED_BYTES`; None: prepare each batch as it comes."""
    first = head.prepare(tokens[:1])  # type: ignore[operator]
    if first.numel() * first.element_size() * len(tokens) > PREPARED_BYTES:
        return None
    return torch.cat([head.prepare(tokens[s : s + 256]) for s in range(0, len(tokens), 256)])  # type: ignore[operator]


def train_probe(
    train: Features,
    test: Features,
    label: str,
    config: ProbeConfig | None = None,
    *,
    also: dict[str, Features] | None = None,
) -> ProbeResult:
    """Train one probe head per learning rate on `train` for `label`; report the test accuracy of each and the best.
    `also`: other features of the test clips (the same clips through another program, e.g. the int8 student) that
    the best head, trained once on `train`, is applied to unchanged: what a deployment that swaps the backbone sees.

    AdamW with a per-step cosine schedule to zero (no warmup), gradient clipping at 1.0, float32 math on
    float16 features. Heads start from the same seeded init and see the same seeded batch order, so a
    fixed `config.seed` gives the same result on CPU; the global RNG state is left untouched.
    """
    config = config or ProbeConfig()
    problems = _label_problems(train, test, [label])
    if problems:
        raise ConfigError("cannot train the probe", problems=problems)
    y_train, y_test = train.labels[label], test.labels[label]
    num_classes = _num_classes(label, y_train, y_test)
    with _seeded(config.seed):
        if config.kind == "grid":
            if train.grid is None:
                raise ConfigError("the grid probe needs features with their token grid (Features.grid)")
            base = GridLinearProbe(train.dim, num_classes, grid=train.grid, pool=config.pool)
        else:
            base = _PROBES[config.kind](train.dim, num_classes, num_heads=config.num_heads, grid=train.grid)
    heads = [copy.deepcopy(base) for _ in config.lrs]
    optimizers = [_optimizer(h, lr, config.weight_decay) for h, lr in zip(heads, config.lrs, strict=True)]
    g = torch.Generator().manual_seed(config.seed)
    steps_per_epoch = len(_batches(len(train), config.batch_size, torch.Generator()))
    total = config.epochs * steps_per_epoch
    schedules = [
        torch.optim.lr_scheduler.LambdaLR(o, lambda step: 0.5 * (1.0 + math.cos(math.pi * step / total)))
        for o in optimizers
    ]
    for h in heads:
        h.train()
    prepared = _prepared(base, train.tokens)
    for epoch in range(config.epochs):
        losses = [0.0] * len(heads)
        for idx in _batches(len(train), config.batch_size, g):
            x = prepared[idx] if prepared is not None else base.prepare(train.tokens[idx])
            y = y_train[idx]
            for i, (h, opt, sched) in enumerate(zip(heads, optimizers, schedules, strict=True)):
                loss = F.cross_entropy(h.classify(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(h.parameters(), 1.0)
                opt.step()
                sched.step()
                losses[i] += float(loss.detach()) / steps_per_epoch
        log.debug("probe %s epoch %d/%d: train loss per lr %s", label, epoch + 1, config.epochs, losses)
    accs = _accuracies(heads, test.tokens, y_test, max(config.batch_size, 256))
    accuracies = dict(zip(config.lrs, accs, strict=True))
    best_lr = max(accuracies, key=accuracies.__getitem__)
    best = heads[list(config.lrs).index(best_lr)]
    other = {
        name: _accuracies([best], f.tokens, f.labels[label], max(config.batch_size, 256))[0]
        for name, f in (also or {}).items()
    }
    result = ProbeResult(
        label=label,
        kind=config.kind,
        accuracy=accuracies[best_lr],
        best_lr=best_lr,
        accuracies=accuracies,
        chance=1.0 / num_classes,
        num_classes=num_classes,
        num_train=len(train),
        num_test=len(test),
        also=other,
    )
    log.info(
        "%s probe on %s: %.1f%% top-1 (lr %g; chance %.1f%%)",
        config.kind,
        label,
        100 * result.accuracy,
        best_lr,
        100 * result.chance,
    )
    return result


def probe(
    train: Features,
    test: Features,
    labels: Sequence[str],
    config: ProbeConfig | None = None,
    *,
    also: dict[str, Features] | None = None,
) -> dict[str, ProbeResult]:
    """`train_probe` for each label; every unknown label is reported before any training starts."""
    problems = _label_problems(train, test, labels)
    for f in (also or {}).values():
        problems += _label_problems(train, f, labels)
    if problems:
        raise ConfigError("cannot train the probes", problems=problems)
    return {label: train_probe(train, test, label, config, also=also) for label in labels}


def random_init_like(encoder: VisionTransformer, seed: int = 0) -> VisionTransformer:
    """A freshly initialised encoder of `encoder.arch` on the same device; the global RNG state is untouched."""
    with _seeded(seed):
        fresh = VisionTransformer(encoder.arch)
    return fresh.to(next(encoder.parameters()).device)
