"""Intuitive-physics surprise: how badly a V-JEPA world model predicts the future of a clip (violation of expectation).

V-JEPA's protocol (reference/vjepa.md 5.4): the context encoder sees only the tokens of the first `context_steps`
token time steps, the predictor predicts every token of the later steps, and the surprise of a future step is the
mean L1 distance (over its tokens and channels) between those predictions and the target: the target encoder's
tokens of the whole clip, non-affine LayerNorm'ed as in pretraining. `voe_pairwise` scores matched
possible / impossible clips (`generate_voe_pair`): a pair is right when the impossible clip is the more surprising.

A model is anything with the small `SurpriseModel` interface, so the teacher and a distilled student share the
code: `teacher_surprise_model(vjepa)` (encoder, predictor, target encoder) and `student_surprise_model(run)`
(a masked distill run's student, projector and predictor, any of them replaceable by what a device runs: the int8
program, exported artifacts). The context comes one of two ways (`CONTEXTS`): "tokens", V-JEPA's, the encoder on
the context tokens alone; "hold", the encoder on the whole clip with its future frames held at the last context
frame, which a fixed-shape full-clip encoder on a device can compute. `random_init_vjepa` and
`random_student_surprise_model` give the untrained baselines of the same architectures (V-JEPA reports untrained
networks near 50 %). Render the pairs with `diverge_after` = the context's frames, so both clips of a pair share
the context and only the future tells them apart.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vjepa_edge.data.physics import PhysicsConfig, VoEPair, generate_voe_pair
from vjepa_edge.errors import ConfigError
from vjepa_edge.models.inputs import InputSpec
from vjepa_edge.models.vit import gather_tokens
from vjepa_edge.models.vjepa import VJEPA
from vjepa_edge.runs import RunDir

Score = Literal["max", "mean"]
SCORES: tuple[Score, ...] = ("max", "mean")  # the first is the primary score
TIE = 0.5  # a pair whose two clips score exactly the same counts half: chance, neither right nor wrong


class SurpriseModel(Protocol):
    """What surprise needs from a world model. Clips are [B, C, T, H, W] at `input_spec`; indices [B, K] are token
    positions in (t, h, w) order of its grid; every method returns tokens [B, *, D] in one feature space."""

    input_spec: InputSpec

    def context(self, clip: Tensor, idx: Tensor) -> Tensor:
        """The context tokens at `idx`, computed from the clip's frames up to the last context step alone."""

    def predict(self, tokens: Tensor, ctx_idx: Tensor, tgt_idx: Tensor) -> Tensor:
        """Predicted target-space tokens at `tgt_idx` from the context tokens at `ctx_idx`."""

    def target(self, clip: Tensor) -> Tensor:
        """The target tokens of the whole clip, every position."""


Context = Literal["tokens", "hold"]
CONTEXTS: tuple[Context, ...] = ("tokens", "hold")  # the first is V-JEPA's


def _device(module: Any) -> torch.device:
    """Where a module's weights are (inputs go there); CPU for a runtime-backed callable (an artifact)."""
    parameter = next(module.parameters(), None) if isinstance(module, nn.Module) else None
    return parameter.device if parameter is not None else torch.device("cpu")


def _eval(module: Any) -> Any:
    return module.eval() if isinstance(module, nn.Module) else module


def hold_future(clip: Tensor, frames: int) -> Tensor:
    """A copy of clips [B, C, T, H, W] whose frames from `frames` on all show frame `frames - 1`: the future held
    still at the context's last frame, so it carries nothing the context does not."""
    if not 1 <= frames <= clip.shape[2]:
        raise ConfigError(f"hold_future: frames={frames} of a {clip.shape[2]}-frame clip")
    held = clip.clone()
    held[:, :, frames:] = clip[:, :, frames - 1 : frames]
    return held


class _ContextPath:
    """The context path every surprise model shares (`context` of `SurpriseModel`), in one of two ways:

    - "tokens" (V-JEPA's): the encoder on the context tokens alone, `encoder(clip, idx)`; needs an encoder that
      takes token indices (the eager ViT).
    - "hold": the encoder on the whole clip with its future held at the last context frame (`hold_future`),
      gathered at `idx`. Any full-clip encoder computes it: the int8 program or an exported artifact, which take
      one fixed-shape clip. Attention still spans the held steps, so its tokens differ from "tokens"; but no
      frame after the context enters, so both clips of a pair that agree up to there get the same context."""

    encoder: Any
    input_spec: InputSpec
    context_mode: Context

    def context(self, clip: Tensor, idx: Tensor) -> Tensor:
        d = _device(self.encoder)
        if self.context_mode == "tokens":
            return self.encoder(clip.to(d), idx.to(d))
        _, h, w = self.input_spec.grid
        steps = int(idx.max()) // (h * w) + 1  # up to the context's last token time step
        held = hold_future(clip, steps * self.input_spec.tubelet)
        return gather_tokens(self.encoder(held.to(d)), idx.to(d))


def _check_context(context: str) -> None:
    if context not in CONTEXTS:
        raise ConfigError(f"context {context!r}: one of {', '.join(CONTEXTS)}")


class TeacherSurprise(_ContextPath):
    """A V-JEPA model: `context_encoder` (the online encoder by default) + predictor at `mask_index`, against the
    LayerNorm'ed target encoder (the encoder when the file holds no target encoder)."""

    def __init__(
        self,
        encoder: nn.Module,
        predictor: nn.Module,
        target_encoder: nn.Module,
        *,
        mask_index: int,
        context: Context = "tokens",
    ) -> None:
        _check_context(context)
        self.encoder, self.predictor, self.target_encoder = encoder.eval(), predictor.eval(), target_encoder.eval()
        self.mask_index, self.context_mode = mask_index, context
        self.input_spec = encoder.input_spec

    def predict(self, tokens: Tensor, ctx_idx: Tensor, tgt_idx: Tensor) -> Tensor:
        d = _device(self.predictor)
        return self.predictor(tokens.to(d), ctx_idx.to(d), tgt_idx.to(d), mask_index=self.mask_index)

    def target(self, clip: Tensor) -> Tensor:
        h = self.target_encoder(clip.to(_device(self.target_encoder))).float()
        return F.layer_norm(h, h.shape[-1:])


def teacher_surprise_model(
    model: VJEPA,
    *,
    context_encoder: Literal["encoder", "target_encoder"] = "target_encoder",
    mask_index: int = 1,
    context: Context = "tokens",
) -> TeacherSurprise:
    """The surprise model of a V-JEPA checkpoint with a predictor.

    `context_encoder`: the EMA target encoder (default: the one V-JEPA's evaluations load as "the model"), or the
    encoder the predictor was trained with. On the embedded teacher (bench/voe_surprise.py, 90 future-diverging
    pairs of seed 1, first half as context) the target encoder scored 66.7 % (max) against 57.8 %; the file's
    encoder serves when it holds no target encoder. `mask_index`: the predictor's mask token; 1 is the embedded
    teacher's causal mask (its second `[[masks]]` entry, which predicts the second half of a clip from the first)
    and the predictor's default; a V-JEPA 2 checkpoint trained only `mask_tokens[0]`. `context`: see
    `_ContextPath` ("tokens", V-JEPA's, or "hold")."""
    if "predictor" not in model.parts:
        raise ConfigError(
            f"surprise needs a predictor; {model.source.path or 'the model'} holds {', '.join(model.parts)}",
            hint="pass a V-JEPA checkpoint saved with its predictor, or a masked distill run (student_surprise_model)",
        )
    target = model.target_encoder if "target_encoder" in model.parts else model.encoder
    encoder = target if context_encoder == "target_encoder" else model.encoder
    return TeacherSurprise(encoder, model.predictor, target, mask_index=mask_index, context=context)


ClipEncoder = Callable[[Tensor], Tensor]  # clips [B, C, T, H, W] -> tokens [B, N, D]
TokenPredictor = Callable[[Tensor, Tensor, Tensor], Tensor]  # (tokens, ctx_idx, tgt_idx) -> predictions [B, M, D']


class StudentSurprise(_ContextPath):
    """A distilled student as a world model. `encoder` maps full clips to student tokens (the eager student, its
    int8 program, an exported artifact; with context "tokens" it must also take token indices: the eager
    student); `predictor` maps (context tokens, context_idx, target_idx) to teacher-space predictions, already
    projected (`PredictorModule`, or an exported predictor's `PredictorArtifact`); `projector` takes the
    encoder's tokens of the whole clip into that space as the target.

    Why not the teacher's features, which the student was trained to predict: on a device only the student
    exists, and surprise is to be computed there. Both sides regressed the same (LayerNorm'ed, when the recipe
    normalised its targets) teacher tokens in training, so they share a space and no further LayerNorm is taken."""

    def __init__(
        self,
        encoder: ClipEncoder,
        projector: nn.Module,
        predictor: TokenPredictor,
        *,
        input_spec: InputSpec | None = None,
        context: Context = "tokens",
    ) -> None:
        _check_context(context)
        self.encoder, self.projector, self.predictor = _eval(encoder), projector.eval(), _eval(predictor)
        self.context_mode = context
        self.input_spec = input_spec if input_spec is not None else encoder.input_spec

    def predict(self, tokens: Tensor, ctx_idx: Tensor, tgt_idx: Tensor) -> Tensor:
        d = _device(self.predictor)
        return self.predictor(tokens.to(d), ctx_idx.to(d), tgt_idx.to(d)).float()

    def target(self, clip: Tensor) -> Tensor:
        tokens = self.encoder(clip.to(_device(self.encoder)))
        return self.projector(tokens.to(_device(self.projector)).float()).float()


def _student_parts(run: str | Path | RunDir) -> tuple[RunDir, nn.Module, nn.Module, nn.Module]:
    """(run, its eager student encoder, projector, predictor) of a finished `masked` distill run, eval mode."""
    from vjepa_edge.distill.head import head_problems, load_head
    from vjepa_edge.models.checkpoint import load_vjepa

    run = run if isinstance(run, RunDir) else RunDir(Path(run))
    problems = head_problems(run, what="student surprise", predictor=True)
    if problems:
        raise ConfigError(problems[0], hint="surprise needs the predictor of a distill run with loss.kind = 'masked'")
    encoder = load_vjepa(run.student).encoder.eval()
    head = load_head(run, encoder)
    return run, encoder, head.projector, head.predictor


def student_surprise_model(
    run: str | Path | RunDir,
    *,
    encoder: ClipEncoder | None = None,
    predictor: TokenPredictor | None = None,
    context: Context = "tokens",
    device: str | torch.device = "cpu",
) -> StudentSurprise:
    """The surprise model of a finished `masked` distill run (its student, and its last checkpoint's head), with
    any of its parts replaced by what a device runs:

    - `encoder`: a full-clip encoder (clips [B, C, T, H, W] at the student's input -> tokens [B, N, D]): the int8
      program (`vjepa_edge.quant.run.QuantizedEncoder`) or an exported .pte / .onnx
      (`vjepa_edge.export.encoder.ArtifactEncoder`). None: the eager fp32 student. It gives the targets, and the
      context with `context="hold"`; a full-clip encoder needs "hold".
    - `predictor`: (tokens [B, K, D], context_idx [B, K], target_idx [B, M]) -> teacher-space predictions
      [B, M, D_teacher], projected: an exported predictor (`vjepa_edge.export.encoder.PredictorArtifact`). None:
      the run's eager predictor and projector (`vjepa_edge.export.parts.PredictorModule`, as it trained).
    - `context`: "tokens" (V-JEPA's: the eager student on the context tokens alone) or "hold" (the clip with its
      future held at the last context frame, encoded whole; see `_ContextPath`).

    `device` places the eager parts; artifacts and programs run where their runtime does."""
    from vjepa_edge.export.parts import PredictorModule

    _check_context(context)
    if encoder is not None and context == "tokens":
        raise ConfigError(
            "context 'tokens' runs the eager student on the context tokens alone; a given encoder takes whole clips",
            hint="pass context='hold' with a full-clip encoder (the int8 program, an exported artifact)",
        )
    run, eager, projector, eager_predictor = _student_parts(run)
    spec = eager.input_spec
    given = getattr(encoder, "input_spec", None)
    if given is not None and given.shape() != spec.shape():
        raise ConfigError(
            f"the given encoder takes clips of shape {list(given.shape())}, the student {list(spec.shape())}",
            hint="pass the encoder exported or quantized from this run's student",
        )
    return StudentSurprise(
        encoder if encoder is not None else eager.to(device),
        projector.to(device),
        predictor if predictor is not None else PredictorModule(eager_predictor, projector).to(device),
        input_spec=spec,
        context=context,
    )


def random_student_surprise_model(
    run: str | Path | RunDir, *, seed: int = 0, context: Context = "tokens", device: str | torch.device = "cpu"
) -> StudentSurprise:
    """The untrained baseline of a run's student world model: the student's architecture and its head (projector
    and predictor, as the recipe builds them) freshly initialised from `seed`; the global RNG state is untouched."""
    from vjepa_edge.distill.head import run_recipe
    from vjepa_edge.distill.losses import DistillHead
    from vjepa_edge.export.parts import PredictorModule
    from vjepa_edge.models.vjepa import student_model

    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):  # building modules to load weights into draws from it too
        run, eager, projector, _ = _student_parts(run)
        teacher_dim = [m for m in projector.modules() if isinstance(m, nn.Linear)][-1].out_features
        loss = run_recipe(run).loss
        fresh = random_init_vjepa(student_model(eager), seed).encoder
        torch.manual_seed(seed)
        head = DistillHead(
            eager.embed_dim,
            teacher_dim,
            tuple(eager.grid),
            projector=loss.projector,
            masked=True,
            pred_dim=loss.pred_dim,
            pred_depth=loss.pred_depth,
            pred_heads=loss.pred_heads,
        ).eval()
    return StudentSurprise(
        fresh.to(device),
        head.projector.to(device),
        PredictorModule(head.predictor, head.projector).to(device),
        context=context,
    )


def random_init_vjepa(model: VJEPA, seed: int = 0) -> VJEPA:
    """`model`'s architecture freshly initialised (the target encoder a copy of the encoder, as pretraining
    starts), on its device, in eval mode; the global RNG state is untouched."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        fresh = VJEPA(model.arch)
    if "target_encoder" in fresh.parts:
        fresh.target_encoder.load_state_dict(fresh.encoder.state_dict())
    return fresh.to(_device(model)).eval()


def context_split(grid: tuple[int, int, int], context_steps: int) -> tuple[Tensor, Tensor]:
    """(context_idx [K], target_idx [M]): every token of the first `context_steps` time steps, and of the rest."""
    t, h, w = grid
    if not isinstance(context_steps, int) or not 1 <= context_steps < t:
        raise ConfigError(f"context_steps={context_steps!r}: need an integer in [1, {t - 1}] (the grid has {t} steps)")
    split = context_steps * h * w
    return torch.arange(split), torch.arange(split, t * h * w)


def _as_model(model: SurpriseModel | VJEPA) -> SurpriseModel:
    return teacher_surprise_model(model) if isinstance(model, VJEPA) else model


@torch.no_grad()
def surprise(model: SurpriseModel | VJEPA, clips: Tensor, *, context_steps: int) -> Tensor:
    """Surprise [B, T' - context_steps] (float32, CPU) of clips [B, C, T, H, W] at the model's input spec: per
    future token time step, the mean |prediction - target| over that step's tokens and channels."""
    model = _as_model(model)
    spec = model.input_spec
    if tuple(clips.shape[1:]) != spec.shape()[1:]:
        raise ConfigError(
            f"clips of shape {list(clips.shape)}: this model takes {list(spec.shape(clips.shape[0]))}",
            hint="render the clips at the model's frames and size, or pass them through input_spec.adapt",
        )
    B, t = clips.shape[0], spec.grid[0]
    ctx, tgt = (i.unsqueeze(0).expand(B, -1) for i in context_split(spec.grid, context_steps))
    predictions = model.predict(model.context(clips, ctx), ctx, tgt).float()
    targets = gather_tokens(model.target(clips).float(), tgt.to(predictions.device))
    error = (predictions - targets).abs()  # [B, M, D], M = future steps x h x w in (t, h, w) order
    return error.reshape(B, t - context_steps, -1).mean(dim=-1).cpu()


def render_voe_pairs(
    count: int,
    *,
    seed: int = 0,
    frames: int = 16,
    size: int = 64,
    fps: float | None = None,
    kinds: Sequence[str] | None = None,
    diverge_after: int | None = None,
) -> list[VoEPair]:
    """Pairs 0..count-1 of the VoE stream `seed` (kinds cycle, so every kind gets count/len(kinds) pairs).
    `diverge_after`: every pair's clips are identical in their first `diverge_after` frames (`generate_voe_pair`);
    pass the context's frames so that the context is the same for both clips and only the future differs."""
    config = PhysicsConfig(voe_kinds=tuple(kinds)) if kinds else None
    return [
        generate_voe_pair(i, seed=seed, frames=frames, size=size, fps=fps, config=config, diverge_after=diverge_after)
        for i in range(count)
    ]


def pair_clips(frames: Sequence[np.ndarray], spec: InputSpec) -> Tensor:
    """uint8 frames [T, H, W, C] of each clip -> normalised float clips [B, C, T, H, W] at `spec`."""
    x = torch.stack([torch.as_tensor(np.ascontiguousarray(f)) for f in frames]).permute(0, 4, 1, 2, 3).float()
    mean = torch.tensor(spec.mean).view(1, -1, 1, 1, 1) * 255.0
    std = torch.tensor(spec.std).view(1, -1, 1, 1, 1) * 255.0
    return spec.adapt((x - mean) / std)


def pair_accuracy(possible: Tensor, impossible: Tensor) -> float:
    """Fraction of pairs whose impossible score is the higher; ties count `TIE`. Scores [P]; nan for no pairs."""
    if possible.numel() == 0:
        return math.nan
    right = (impossible > possible).float() + TIE * (impossible == possible).float()
    return right.mean().item()


@dataclass(frozen=True, kw_only=True, slots=True)
class VoEResult:
    """Surprise curves of P pairs: `possible` and `impossible` [P, T' - context_steps], with each pair's kind and
    first differing frame (in the pair's frames, `frames_per_step` of which make one token time step). Scores and
    accuracies are computed from them; `to_dict` gives the summary."""

    kinds: tuple[str, ...]
    diverge_frames: tuple[int, ...]
    possible: Tensor
    impossible: Tensor
    context_steps: int
    frames_per_step: int

    def __post_init__(self) -> None:
        p = len(self.kinds)
        if len(self.diverge_frames) != p or self.possible.shape != self.impossible.shape or self.possible.ndim != 2:
            raise ValueError("VoEResult: kinds, diverge_frames and the [P, T] curves must describe the same pairs")
        if self.possible.shape[0] != p:
            raise ValueError(f"VoEResult: {p} kinds for {self.possible.shape[0]} curves")

    @property
    def context_frames(self) -> int:
        """How many of the pair's frames the context covers."""
        return self.context_steps * self.frames_per_step

    def scores(self, score: Score = "max") -> tuple[Tensor, Tensor]:
        """Per-pair scores (possible [P], impossible [P]): max or mean of the surprise over the future steps."""
        if score not in SCORES:
            raise ConfigError(f"score {score!r}: one of {', '.join(SCORES)}")
        reduce = (lambda c: c.amax(dim=1)) if score == "max" else (lambda c: c.mean(dim=1))
        return reduce(self.possible), reduce(self.impossible)

    def _select(self, kind: str | None, future_only: bool) -> Tensor:
        keep = [
            (kind is None or k == kind) and (not future_only or d >= self.context_frames)
            for k, d in zip(self.kinds, self.diverge_frames, strict=True)
        ]
        return torch.tensor(keep, dtype=torch.bool)

    def accuracy(self, score: Score = "max", kind: str | None = None, *, future_only: bool = False) -> float:
        """Pairwise accuracy of the pairs of `kind` (all when None); `future_only`: only pairs that diverge after
        the context (the context of the others already shows the violation)."""
        keep = self._select(kind, future_only)
        possible, impossible = self.scores(score)
        return pair_accuracy(possible[keep], impossible[keep])

    def curves(self, kind: str | None = None) -> tuple[list[float], list[float]]:
        """Mean surprise per future step of the possible and the impossible clips of `kind` (for plots)."""
        keep = self._select(kind, False)
        return self.possible[keep].mean(dim=0).tolist(), self.impossible[keep].mean(dim=0).tolist()

    def _summary(self, kind: str | None) -> dict[str, Any]:
        keep, future = self._select(kind, False), self._select(kind, True)
        out: dict[str, Any] = {"pairs": int(keep.sum())}
        out.update({f"accuracy_{s}": self.accuracy(s, kind) for s in SCORES})
        out["diverge_in_future"] = {"pairs": int(future.sum())}
        out["diverge_in_future"].update({f"accuracy_{s}": self.accuracy(s, kind, future_only=True) for s in SCORES})
        possible, impossible = self.curves(kind)
        out.update(curve_possible=possible, curve_impossible=impossible)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: overall and per-kind accuracies (max and mean scores; `primary` is max), the subset
        that diverges after the context, and the mean surprise curves. Accuracies of no pairs are None."""
        kinds = list(dict.fromkeys(self.kinds))

        def clean(x: Any) -> Any:
            if isinstance(x, dict):
                return {k: clean(v) for k, v in x.items()}
            return None if isinstance(x, float) and math.isnan(x) else x

        return clean(
            {
                "primary": SCORES[0],
                "tie": TIE,
                "context_steps": self.context_steps,
                "context_frames": self.context_frames,
                "future_steps": int(self.possible.shape[1]),
                "overall": self._summary(None),
                "kinds": {k: self._summary(k) for k in kinds},
            }
        )


def voe_pairwise(
    model: SurpriseModel | VJEPA,
    pairs: Sequence[VoEPair],
    *,
    context_steps: int,
    batch_size: int = 16,
    progress: Any = None,
) -> VoEResult:
    """Surprise of the possible and the impossible clip of every pair, `batch_size` pairs (2x clips) per forward.
    `progress`: an optional callable wrapping the batch iterator (tqdm, say). Deterministic: no randomness."""
    model = _as_model(model)
    if not pairs:
        raise ConfigError("voe_pairwise needs at least one pair")
    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r}: need a positive integer")
    spec = model.input_spec
    starts = range(0, len(pairs), batch_size)
    possible, impossible = [], []
    for s in progress(starts) if progress else starts:
        chunk = pairs[s : s + batch_size]
        clips = pair_clips([p.possible for p in chunk] + [p.impossible for p in chunk], spec)
        curves = surprise(model, clips, context_steps=context_steps)
        possible.append(curves[: len(chunk)])
        impossible.append(curves[len(chunk) :])
    return VoEResult(
        kinds=tuple(p.kind for p in pairs),
        diverge_frames=tuple(p.diverge_frame for p in pairs),
        possible=torch.cat(possible),
        impossible=torch.cat(impossible),
        context_steps=context_steps,
        frames_per_step=spec.tubelet * max(1, pairs[0].possible.shape[0] // spec.frames),  # adapt subsamples
    )


__all__ = [
    "CONTEXTS",
    "SCORES",
    "TIE",
    "Context",
    "StudentSurprise",
    "SurpriseModel",
    "TeacherSurprise",
    "VoEResult",
    "context_split",
    "pair_accuracy",
    "pair_clips",
    "random_init_vjepa",
    "hold_future",
    "random_student_surprise_model",
    "render_voe_pairs",
    "student_surprise_model",
    "surprise",
    "teacher_surprise_model",
    "voe_pairwise",
]
