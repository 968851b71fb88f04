"""A teacher's probe tokens are encoded once: the next student's evaluation reads them from the cache."""

from __future__ import annotations

import vjepa_edge.eval.physics as physics
from vjepa_edge.data.config import ClipSpec
from vjepa_edge.eval.probe import ProbeConfig
from vjepa_edge.models.arch import EncoderArch
from vjepa_edge.models.vit import VisionTransformer

SPEC = ClipSpec(frames=4, size=32, fps=8.0, frame_step=None)
ARCH = EncoderArch(embed_dim=48, depth=1, num_heads=3, mlp_hidden=96, num_frames=4, img_size=32, patch_size=8)


def _probe(encoder, cache):
    return physics.physics_probe(
        {"teacher": encoder},
        spec=SPEC,
        train_clips=16,
        test_clips=8,
        config=ProbeConfig(kind="grid", epochs=2),
        cache=cache,
    )


def test_cached_teacher_tokens_are_read_back_not_encoded_again(tmp_path, monkeypatch):
    monkeypatch.setenv("VJEPA_EDGE_CACHE", str(tmp_path))
    encoder = VisionTransformer(ARCH).eval()
    first = _probe(encoder, {"teacher": "weights-a"})
    assert len(list((tmp_path / "probe-features").glob("*.safetensors"))) == 2  # train and test clips

    calls = []
    real = physics.extract_features
    monkeypatch.setattr(physics, "extract_features", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = _probe(encoder, {"teacher": "weights-a"})
    assert calls == []
    assert {k: v.accuracy for k, v in again["teacher"].items()} == {k: v.accuracy for k, v in first["teacher"].items()}
    _probe(encoder, {"teacher": "weights-b"})  # other weights: encoded again
    assert len(calls) == 2


def test_a_damaged_cache_file_is_recomputed(tmp_path, monkeypatch):
    monkeypatch.setenv("VJEPA_EDGE_CACHE", str(tmp_path))
    encoder = VisionTransformer(ARCH).eval()
    _probe(encoder, {"teacher": "w"})
    for f in (tmp_path / "probe-features").glob("*.safetensors"):
        f.write_bytes(b"not a safetensors file")
    result = _probe(encoder, {"teacher": "w"})
    assert 0.0 <= result["teacher"]["event"].accuracy <= 1.0
    for f in (tmp_path / "probe-features").glob("*.safetensors"):  # rewritten whole
        assert physics._load(f).tokens.shape[1:] == (32, 48)


def test_tokens_kept_in_another_dtype_are_a_separate_entry(tmp_path, monkeypatch):
    # eval compares int8 tokens with the fp32 student's to a few 1e-4: float32 tokens never come back as float16
    import torch

    monkeypatch.setenv("VJEPA_EDGE_CACHE", str(tmp_path))
    encoder = VisionTransformer(ARCH).eval()
    test_set = physics.probe_clips(SPEC, train_clips=4, test_clips=4, seed=0)[1]
    half = physics.cached_features(encoder, test_set, "w")
    full = physics.cached_features(encoder, test_set, "w", dtype=torch.float32)
    assert half.tokens.dtype == torch.float16 and full.tokens.dtype == torch.float32
    assert len(list((tmp_path / "probe-features").glob("*.safetensors"))) == 2
    again = physics.cached_features(encoder, test_set, "w", dtype=torch.float32)
    assert again.tokens.dtype == torch.float32 and torch.equal(again.tokens, full.tokens)
    assert (full.tokens - half.tokens.float()).abs().max() > 0  # float16 rounding, which float32 keeps out
