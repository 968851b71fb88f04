"""Intuitive-physics surprise: V-JEPA's future-token prediction error on a tiny model, an oracle predictor (zero
surprise), a hand-made pixel world model on hand-made pairs (accuracy 1, identical clips 1/2), the student path on
a masked distill run's layout (eager, a full-clip encoder with the held context, an exported predictor),
determinism, the random-init baselines, and pairs whose clips share the context (`diverge_after`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.conftest import pico_predictor_arch
from tests.export.conftest import make_masked_layout
from vjepa_edge.data.physics import VOE_KINDS, VoEPair, generate_voe_pair
from vjepa_edge.errors import ConfigError
from vjepa_edge.eval.surprise import (
    TIE,
    VoEResult,
    context_split,
    hold_future,
    pair_clips,
    random_init_vjepa,
    random_student_surprise_model,
    render_voe_pairs,
    student_surprise_model,
    surprise,
    teacher_surprise_model,
    voe_pairwise,
)
from vjepa_edge.models.arch import EncoderArch, VJEPAArch
from vjepa_edge.models.inputs import InputSpec
from vjepa_edge.models.vit import gather_tokens
from vjepa_edge.models.vjepa import VJEPA

# 8 frames at 32 px, tubelet 2, patch 8: a 4 x 4 x 4 token grid
ENCODER = EncoderArch(
    embed_dim=48, depth=2, num_heads=3, mlp_hidden=192, patch_size=8, tubelet_size=2, num_frames=8, img_size=32
)
SPEC = InputSpec(frames=8, size=32, tubelet=2, patch=8)


@pytest.fixture(scope="module")
def model() -> VJEPA:
    torch.manual_seed(7)  # not the random-init baseline's seed
    m = VJEPA(VJEPAArch(version="vjepa2", encoder=ENCODER, predictor=pico_predictor_arch("rope"), target_encoder=True))
    with torch.no_grad():  # a target encoder unlike the encoder, and non-zero mask tokens
        for p in [*m.target_encoder.parameters(), *m.predictor.mask_tokens]:
            p.add_(torch.randn_like(p) * 0.1)
    return m.eval()


@pytest.fixture(scope="module")
def pairs() -> list[VoEPair]:
    return render_voe_pairs(len(VOE_KINDS), seed=3, frames=8, size=32)


class Oracle:
    """The teacher's target encoder standing in for its predictor: returns the target tokens exactly."""

    def __init__(self, model: VJEPA) -> None:
        self.inner = teacher_surprise_model(model)
        self.input_spec = self.inner.input_spec

    def context(self, clip, idx):
        self._targets = self.inner.target(clip)
        return self.inner.context(clip, idx)

    def predict(self, tokens, ctx_idx, tgt_idx):
        return gather_tokens(self._targets, tgt_idx)

    def target(self, clip):
        return self.inner.target(clip)


class PixelPersistence:
    """A hand-made world model: tokens are the raw pixels of each tubelet, the future is the last context step."""

    input_spec = SPEC

    def context(self, clip, idx):
        return gather_tokens(self.target(clip), idx)

    def predict(self, tokens, ctx_idx, tgt_idx):
        hw = 16
        return tokens[:, -hw:].repeat(1, tgt_idx.shape[1] // hw, 1)

    def target(self, clip):
        B, C = clip.shape[:2]
        x = clip.reshape(B, C, 4, 2, 4, 8, 4, 8).permute(0, 2, 4, 6, 1, 3, 5, 7)
        return x.reshape(B, 64, -1)


def _square_pair(diverge: int = 4, *, same: bool = False) -> VoEPair:
    """A static grey square; in the impossible clip it vanishes at `diverge` (unless `same`)."""
    possible = np.full((8, 32, 32, 3), 40, np.uint8)
    possible[:, 8:20, 10:22] = 200
    impossible = possible.copy()
    if not same:
        impossible[diverge:, 8:20, 10:22] = 40
    return VoEPair(
        possible=possible, impossible=impossible, kind="vanishes", diverge_frame=diverge, event_frame=diverge, fps=8.0
    )


def test_surprise_shape_and_values(model: VJEPA, pairs: list[VoEPair]) -> None:
    clips = pair_clips([p.possible for p in pairs[:2]] + [p.impossible for p in pairs[:2]], SPEC)
    assert clips.shape == (4, 3, 8, 32, 32)
    s = surprise(model, clips, context_steps=1)
    assert s.shape == (4, 3) and s.dtype == torch.float32 and torch.isfinite(s).all() and (s > 0).all()
    assert surprise(model, clips, context_steps=3).shape == (4, 1)


def test_teacher_surprise_is_the_pretraining_l1_per_future_step(model: VJEPA, pairs: list[VoEPair]) -> None:
    """Context encoder (the target encoder by default) on the first 2 steps alone, predictor at every later token,
    LayerNorm'ed target encoder."""
    clips = pair_clips([p.impossible for p in pairs[:3]], SPEC)
    ctx, tgt = (i.expand(3, -1) for i in context_split((4, 4, 4), 2))
    assert ctx.shape == (3, 32) and tgt[0].tolist() == list(range(32, 64))
    h = F.layer_norm(model.target_encoder(clips), (48,))[:, 32:].detach()
    for name, encoder in (("target_encoder", model.target_encoder), ("encoder", model.encoder)):
        with torch.no_grad():
            pred = model.predictor(encoder(clips, ctx), ctx, tgt, mask_index=1)
        expected = (pred - h).abs().reshape(3, 2, 16, 48).mean(dim=(2, 3))
        got = surprise(teacher_surprise_model(model, context_encoder=name), clips, context_steps=2)
        torch.testing.assert_close(got, expected)
        if name == "target_encoder":
            torch.testing.assert_close(surprise(model, clips, context_steps=2), expected)  # the default
        else:  # the online encoder as the context encoder is another model
            assert not torch.allclose(got, surprise(model, clips, context_steps=2))


def test_an_oracle_predictor_has_zero_surprise(model: VJEPA, pairs: list[VoEPair]) -> None:
    clips = pair_clips([p.possible for p in pairs] + [p.impossible for p in pairs], SPEC)
    assert torch.equal(surprise(Oracle(model), clips, context_steps=2), torch.zeros(len(clips), 2))
    result = voe_pairwise(Oracle(model), pairs, context_steps=2, batch_size=4)
    assert result.accuracy("max") == result.accuracy("mean") == TIE  # every pair ties


def test_pairwise_accuracy_on_hand_made_pairs() -> None:
    """The impossible future differs: the persistence model is surprised by it alone (accuracy 1); identical clips
    tie (1/2); the context already showing the change leaves nothing to be surprised by."""
    model = PixelPersistence()
    result = voe_pairwise(model, [_square_pair(4), _square_pair(6)], context_steps=2, batch_size=1)
    assert (result.possible == 0).all() and (result.impossible.amax(dim=1) > 0).all()
    assert result.impossible[1, 0] == 0 < result.impossible[1, 1]  # frames 4-5 still agree; 6-7 (step 3) differ
    assert result.accuracy("max") == result.accuracy("mean") == 1.0
    d = result.to_dict()
    assert d["overall"]["accuracy_max"] == 1.0 and d["kinds"]["vanishes"]["diverge_in_future"]["pairs"] == 2
    assert d["kinds"]["vanishes"]["curve_possible"] == [0.0, 0.0]
    same = voe_pairwise(model, [_square_pair(same=True)] * 3, context_steps=2)
    assert same.accuracy("max") == same.accuracy("mean") == 0.5
    seen = voe_pairwise(model, [_square_pair(2)], context_steps=2)  # vanished in the context: a static future
    assert seen.accuracy("max") == 0.5 and seen.to_dict()["overall"]["diverge_in_future"]["accuracy_max"] is None


def test_result_scores_ties_and_subsets() -> None:
    r = VoEResult(
        kinds=("a", "a", "b", "b"),
        diverge_frames=(2, 6, 6, 6),
        possible=torch.tensor([[1.0, 1.0], [1.0, 3.0], [2.0, 2.0], [1.0, 1.0]]),
        impossible=torch.tensor([[2.0, 0.0], [2.0, 2.5], [2.0, 2.0], [0.0, 0.5]]),
        context_steps=2,
        frames_per_step=2,
    )
    # max: right, wrong, tie, wrong; mean: tie, right, tie, wrong
    assert r.accuracy("max") == pytest.approx(1.5 / 4) and r.accuracy("mean") == pytest.approx(2 / 4)
    assert r.accuracy("max", "a") == 0.5 and r.accuracy("mean", "b") == 0.25
    assert r.accuracy("max", "a", future_only=True) == 0.0  # the first pair diverges in the 4 context frames
    assert r.curves("a") == ([1.0, 2.0], [2.0, 1.25])
    assert json.loads(json.dumps(r.to_dict()))["kinds"]["b"]["pairs"] == 2
    with pytest.raises(ConfigError, match="score"):
        r.accuracy("median")  # type: ignore[arg-type]


def test_voe_pairwise_is_deterministic_and_batch_invariant(model: VJEPA, pairs: list[VoEPair]) -> None:
    a = voe_pairwise(model, pairs, context_steps=2, batch_size=4)
    b = voe_pairwise(model, pairs, context_steps=2, batch_size=4)
    c = voe_pairwise(model, pairs, context_steps=2, batch_size=1)
    assert a.to_dict() == b.to_dict()
    torch.testing.assert_close(a.possible, c.possible, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(a.impossible, c.impossible, rtol=1e-4, atol=1e-5)
    d = a.to_dict()
    assert set(d["kinds"]) == set(VOE_KINDS) and d["overall"]["pairs"] == len(VOE_KINDS)
    assert d["future_steps"] == 2 and d["context_frames"] == 4 and d["primary"] == "max"
    assert [p.diverge_frame for p in render_voe_pairs(2, seed=3, frames=8, size=32)] == list(a.diverge_frames[:2])


def test_random_init_baseline(model: VJEPA) -> None:
    state = torch.random.get_rng_state()
    fresh, again = random_init_vjepa(model, seed=0), random_init_vjepa(model, seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert fresh.arch == model.arch and not fresh.training
    for (k, a), b in zip(fresh.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    for a, b in zip(fresh.target_encoder.parameters(), fresh.encoder.parameters(), strict=True):
        assert torch.equal(a, b)  # the EMA target starts as a copy of the encoder
    assert not torch.equal(fresh.encoder.blocks[0].attn.qkv.weight, model.encoder.blocks[0].attn.qkv.weight)
    other = random_init_vjepa(model, seed=1)
    assert not torch.equal(other.encoder.blocks[0].attn.qkv.weight, fresh.encoder.blocks[0].attn.qkv.weight)


def test_refusals(model: VJEPA, pairs: list[VoEPair]) -> None:
    clips = pair_clips([pairs[0].possible], SPEC)
    for steps in (0, 4):
        with pytest.raises(ConfigError, match="context_steps"):
            surprise(model, clips, context_steps=steps)
    with pytest.raises(ConfigError, match="takes"):
        surprise(model, clips[:, :, :4], context_steps=1)
    with pytest.raises(ConfigError, match="predictor"):
        teacher_surprise_model(VJEPA(VJEPAArch(version="vjepa2", encoder=ENCODER)))


def test_student_surprise_predicts_its_own_projected_tokens(tmp_path: Path) -> None:
    """Student grid 2 x 4 x 4 (4 frames at 32 px): context = step 0, target = the projected student tokens of step 1."""
    from vjepa_edge.distill.head import load_head
    from vjepa_edge.models.checkpoint import load_vjepa
    from vjepa_edge.runs import RunDir

    loss = {"kind": "masked", "mask_ratio": 0.5, "pred_dim": 24, "pred_depth": 2, "pred_heads": 4}
    run = make_masked_layout(tmp_path / "masked", loss)
    model = student_surprise_model(run)
    spec = model.input_spec
    assert spec.grid == (2, 4, 4)
    pair = render_voe_pairs(2, seed=1, frames=8, size=32)
    clips = pair_clips([p.possible for p in pair], spec)  # 8 rendered frames, every 2nd kept
    assert clips.shape == (2, 3, 4, 32, 32)
    s = surprise(model, clips, context_steps=1)
    encoder = load_vjepa(RunDir(run).student).encoder.eval()
    head = load_head(RunDir(run), encoder)
    ctx, tgt = torch.arange(16).expand(2, -1), torch.arange(16, 32).expand(2, -1)
    with torch.no_grad():
        pred = head.projector(head.predictor(encoder(clips, ctx), ctx, tgt, mask_index=0))
        target = head.projector(encoder(clips))[:, 16:]
    assert s.shape == (2, 1)
    torch.testing.assert_close(s, (pred - target).abs().mean(dim=(1, 2)).unsqueeze(1))
    result = voe_pairwise(model, pair, context_steps=1)
    assert result.frames_per_step == 4  # tubelet 2 of a clip subsampled from 8 frames to 4
    latent = make_masked_layout(tmp_path / "latent", {"kind": "latent"})
    with pytest.raises(ConfigError, match="masked"):
        student_surprise_model(latent)


# -- pairs whose clips share the context -------------------------------------------------------------------------
def test_diverge_after_is_honoured_for_every_kind() -> None:
    """8 frames, diverge_after 4 (the first half): identical frames 0-3 in every kind, `vanishes` included (its
    event is hidden before the divergence); 0 keeps the default stream (same pairs as not asking)."""
    pairs = render_voe_pairs(len(VOE_KINDS), seed=3, frames=8, size=32, diverge_after=4)
    assert [p.kind for p in pairs] == list(VOE_KINDS)
    for p in pairs:
        assert 4 <= p.diverge_frame <= 6, p.kind
        assert np.array_equal(p.possible[: p.diverge_frame], p.impossible[: p.diverge_frame]), p.kind
        assert all((p.possible[k] != p.impossible[k]).any() for k in range(p.diverge_frame, 8)), p.kind
    default = render_voe_pairs(len(VOE_KINDS), seed=3, frames=8, size=32)
    assert any(p.diverge_frame < 4 for p in default)  # the option changes something at this seed
    for p, q in zip(default, render_voe_pairs(len(VOE_KINDS), seed=3, frames=8, size=32, diverge_after=0), strict=True):
        assert p.diverge_frame == q.diverge_frame and np.array_equal(p.impossible, q.impossible)


def test_diverge_after_is_validated() -> None:
    for bad in (-1, 7, 2.5, True):
        with pytest.raises(ConfigError, match="diverge_after"):
            generate_voe_pair(0, frames=8, size=32, diverge_after=bad)  # type: ignore[arg-type]
    # reachable in principle (6 = frames - 2) but not by a passes_through pair in 2 draws: a ConfigError, not a bug
    with pytest.raises(ConfigError, match="diverging after frame 6") as e:
        generate_voe_pair(0, frames=8, size=32, kind="passes_through", diverge_after=6, attempts=2)
    assert "earlier" in (e.value.hint or "")


def test_context_of_future_diverging_pairs_is_the_same(model: VJEPA) -> None:
    """diverge_after = the context's frames: both clips' context tokens (either path) are equal, only targets differ."""
    pairs = render_voe_pairs(3, seed=5, frames=8, size=32, diverge_after=4)
    clips = pair_clips([p.possible for p in pairs] + [p.impossible for p in pairs], SPEC)
    ctx = context_split(SPEC.grid, 2)[0].expand(6, -1)
    for context in ("tokens", "hold"):
        m = teacher_surprise_model(model, context=context)
        with torch.no_grad():
            z = m.context(clips, ctx)
        torch.testing.assert_close(z[:3], z[3:], rtol=0, atol=1e-6)


# -- the held context ----------------------------------------------------------------------------------------------
class FullClip(nn.Module):
    """A full-clip encoder as a device runs one (clips -> tokens, no token indices), here the eager student."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.inner, self.input_spec, self.calls = encoder, encoder.input_spec, []

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        self.calls.append(clip.clone())
        return self.inner(clip)


def test_hold_context_is_the_encoder_on_the_held_clip(model: VJEPA, pairs: list[VoEPair]) -> None:
    clips = pair_clips([p.impossible for p in pairs[:2]], SPEC)
    held = hold_future(clips, 4)
    assert torch.equal(held[:, :, :4], clips[:, :, :4]) and (held[:, :, 4:] == clips[:, :, 3:4]).all()
    ctx = context_split(SPEC.grid, 2)[0].expand(2, -1)
    hold = teacher_surprise_model(model, context_encoder="encoder", context="hold")
    with torch.no_grad():
        expected = gather_tokens(model.encoder(held), ctx)
        torch.testing.assert_close(hold.context(clips, ctx), expected)
        assert not torch.allclose(expected, model.encoder(clips, ctx))  # attention over the held steps: another path


def test_hold_context_never_sees_the_future(model: VJEPA, pairs: list[VoEPair]) -> None:
    """Changing a frame after the context leaves the held context unchanged; changing a context frame does not."""
    clips = pair_clips([pairs[0].possible], SPEC)
    ctx = context_split(SPEC.grid, 2)[0][None]
    hold = teacher_surprise_model(model, context="hold")
    future, past = clips.clone(), clips.clone()
    future[:, :, 4:] = torch.randn_like(future[:, :, 4:])
    past[:, :, 3] += 1.0
    with torch.no_grad():
        z = hold.context(clips, ctx)
        assert torch.equal(hold.context(future, ctx), z)
        assert not torch.allclose(hold.context(past, ctx), z)


def test_student_with_a_full_clip_encoder_and_held_context(tmp_path: Path) -> None:
    """student_surprise_model(run, encoder=<clips -> tokens>, context="hold"): the encoder only ever gets whole
    clips (targets, and the clip held after step 0), and the surprise is the eager student's with that context."""
    from vjepa_edge.models.checkpoint import load_vjepa
    from vjepa_edge.runs import RunDir

    loss = {"kind": "masked", "mask_ratio": 0.5, "pred_dim": 24, "pred_depth": 2, "pred_heads": 4}
    run = make_masked_layout(tmp_path, loss)
    encoder = FullClip(load_vjepa(RunDir(run).student).encoder.eval())
    with pytest.raises(ConfigError, match="whole clips") as e:
        student_surprise_model(run, encoder=encoder)  # context "tokens" needs the eager encoder's token indices
    assert "context='hold'" in (e.value.hint or "")
    held_model = student_surprise_model(run, encoder=encoder, context="hold")
    eager = student_surprise_model(run, context="hold")
    clips = pair_clips([p.possible for p in render_voe_pairs(2, seed=1, frames=8, size=32)], eager.input_spec)
    s = surprise(held_model, clips, context_steps=1)
    assert all(c.shape == clips.shape for c in encoder.calls) and len(encoder.calls) == 2
    assert torch.equal(encoder.calls[0], hold_future(clips, 2))  # the context: frames 0-1, then frame 1 held
    torch.testing.assert_close(s, surprise(eager, clips, context_steps=1))
    assert not torch.allclose(s, surprise(student_surprise_model(run), clips, context_steps=1))


def test_random_student_baseline(tmp_path: Path) -> None:
    loss = {"kind": "masked", "mask_ratio": 0.5, "pred_dim": 24, "pred_depth": 2, "pred_heads": 4}
    run = make_masked_layout(tmp_path, loss)
    state = torch.random.get_rng_state()
    fresh, again = random_student_surprise_model(run, seed=0), random_student_surprise_model(run, seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)
    trained, other = student_surprise_model(run), random_student_surprise_model(run, seed=1)
    assert fresh.input_spec == trained.input_spec
    for a, b, c in zip(
        fresh.encoder.state_dict().values(),
        again.encoder.state_dict().values(),
        trained.encoder.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(a, b) and a.shape == c.shape
    assert torch.equal(fresh.projector.weight, again.projector.weight)
    assert not torch.equal(fresh.projector.weight, trained.projector.weight)
    assert not torch.equal(fresh.projector.weight, other.projector.weight)
    clips = pair_clips([p.possible for p in render_voe_pairs(1, seed=1, frames=8, size=32)], fresh.input_spec)
    assert surprise(fresh, clips, context_steps=1).shape == (1, 1)


def test_predictor_artifact_refuses_other_splits(tmp_path: Path) -> None:
    """The split comes from the export report beside the file (here written by hand, as `vjepa-edge export` writes
    it for a 8 x 4 x 4 grid's first half); another K / M is refused before the runtime runs, and so is the wrong
    part both ways."""
    from vjepa_edge.export.encoder import ArtifactEncoder, PredictorArtifact

    path = tmp_path / "predictor-onnx-fp32.onnx"
    path.write_bytes(b"not run")
    info = {"context": "first-half", "grid": [8, 4, 4], "context_tokens": 64, "target_tokens": 64}
    entry = {"target": "onnx-fp32", "part": "predictor", "artifact": str(path), "input_shape": [[1, 64, 48]]}
    (tmp_path / "export_report.json").write_text(json.dumps({"predictor-onnx-fp32": {**entry, "predictor": info}}))
    artifact = PredictorArtifact(path)
    artifact.check_split(64, 64)
    for k, m in ((48, 80), (64, 16)):  # context_steps 3; all-but-last
        with pytest.raises(ConfigError, match="predicts 64 target tokens from 64 context tokens") as e:
            artifact(torch.zeros(1, k, 48), torch.arange(k)[None], torch.arange(k, k + m)[None])
        assert "context_steps=4" in (e.value.hint or "")
    with pytest.raises(ConfigError, match="not an exported encoder"):
        ArtifactEncoder(path)
    encoder = tmp_path / "onnx-fp32.onnx"
    encoder.write_bytes(b"not run")
    (tmp_path / "export_report.json").write_text(
        json.dumps({"onnx-fp32": {"target": "onnx-fp32", "artifact": str(encoder), "input_shape": [1, 3, 16, 64, 64]}})
    )
    with pytest.raises(ConfigError, match="not an exported predictor"):
        PredictorArtifact(encoder)


@pytest.mark.slow  # an ONNX export: ~15 s on 2 cores
def test_exported_predictor_runs_and_refuses_other_splits(tmp_path: Path) -> None:
    """An onnx-fp32 predictor of the layout (first half of a 2 x 4 x 4 grid: K = M = 16) gives the eager
    predictor's predictions and surprise; another K / M, or the wrong part, is refused with the split it takes."""
    from vjepa_edge.export.encoder import ArtifactEncoder, PredictorArtifact
    from vjepa_edge.export.run import ExportOptions, export

    loss = {"kind": "masked", "mask_ratio": 0.5, "pred_dim": 24, "pred_depth": 2, "pred_heads": 4}
    run = make_masked_layout(tmp_path, loss)
    options = ExportOptions(target="onnx-fp32", part="predictor", verify_clips=1)
    path = export(run, options, out=tmp_path / "predictor.onnx", progress=False).path
    artifact = PredictorArtifact(path)
    assert (artifact.context_tokens, artifact.target_tokens) == (16, 16)
    eager = student_surprise_model(run)
    exported = student_surprise_model(run, predictor=artifact)
    clips = pair_clips([p.possible for p in render_voe_pairs(2, seed=1, frames=8, size=32)], eager.input_spec)
    torch.testing.assert_close(
        surprise(exported, clips, context_steps=1), surprise(eager, clips, context_steps=1), rtol=1e-4, atol=1e-5
    )
    ctx, tgt = torch.arange(8)[None], torch.arange(16, 32)[None]
    with pytest.raises(ConfigError, match="predicts 16 target tokens from 16 context tokens") as e:
        artifact(torch.zeros(1, 8, 48), ctx, tgt)
    assert "context_steps=1" in (e.value.hint or "")
    with pytest.raises(ConfigError, match="not an exported encoder"):
        ArtifactEncoder(path)
