"""Frozen-feature probes: feature extraction, the attentive and linear heads, the lr sweep and the baselines."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from vjepa_edge.data.config import ClipSpec
from vjepa_edge.data.loader import collate_clips
from vjepa_edge.data.sources import PhysicsDataset
from vjepa_edge.errors import ConfigError, DataError
from vjepa_edge.eval import (
    AttentiveProbe,
    AttentiveProbe4,
    Features,
    LinearProbe,
    ProbeConfig,
    extract_features,
    probe,
    random_init_like,
    train_probe,
)
from vjepa_edge.eval.probe import PROBE_KINDS, SCHEDULES
from vjepa_edge.models import EncoderArch, VisionTransformer

TINY = EncoderArch(embed_dim=48, depth=2, num_heads=3, mlp_hidden=96, patch_size=16, num_frames=4, img_size=32)
SPEC = ClipSpec(frames=4, size=32, fps=8.0, frame_step=None)
# The synthetic task needs a few hundred steps at these rates; V-JEPA's defaults (1e-3, 3e-4) suit longer runs.
FAST = ProbeConfig(lrs=(1e-2, 3e-3), epochs=20)


def marked_features(n: int, *, seed: int, tokens: int = 24, dim: int = 32, classes: int = 4) -> Features:
    """Every token carries a random class code; the one token with a marker carries the label.

    Mean-pooling sees the label's code once among `tokens` random codes, so only a probe that finds the
    marked token can solve it. `noise` is a label independent of the tokens.
    """
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    codes = torch.randint(0, classes, (n, tokens), generator=g)
    where = torch.randint(0, tokens, (n,), generator=g)
    codes[torch.arange(n), where] = y
    x = 0.5 * torch.randn(n, tokens, dim, generator=g)
    x[..., :classes] += 2.0 * F.one_hot(codes, classes)
    x[torch.arange(n), where, classes] += 3.0
    noise = torch.randint(0, classes, (n,), generator=g)
    return Features(tokens=x.half(), labels={"marked": y, "noise": noise})


@pytest.fixture(scope="module")
def marked() -> tuple[Features, Features]:
    return marked_features(512, seed=0), marked_features(256, seed=1)


def test_extract_features_shapes_dtypes_and_labels() -> None:
    encoder = VisionTransformer(TINY).train()
    dataset = PhysicsDataset(SPEC, length=64, split="val")
    advances: list[int] = []
    features = extract_features(encoder, dataset, batch_size=24, progress=lambda advance: advances.append(advance))

    assert features.tokens.shape == (64, TINY.num_patches, TINY.embed_dim)
    assert features.tokens.dtype == torch.float16 and features.tokens.device.type == "cpu"
    assert set(features.labels) == {"event", "num_objects", "direction"}
    assert all(y.shape == (64,) and y.dtype == torch.long for y in features.labels.values())
    assert advances == [24, 24, 16]
    assert encoder.training  # the caller's mode is restored

    batch = collate_clips([dataset[i] for i in range(4)])
    with torch.no_grad():
        expected = encoder.eval()(batch["clip"])
    torch.testing.assert_close(features.tokens[:4].float(), expected, atol=5e-3, rtol=5e-3)
    for name, y in batch["labels"].items():
        assert torch.equal(features.labels[name][:4], y)
    assert not features.tokens.is_inference()  # usable outside inference mode, e.g. to train a probe on
    assert train_probe(features, features, "event", ProbeConfig(epochs=1)).num_classes == 7


def test_extract_features_under_autocast() -> None:
    encoder = VisionTransformer(TINY)
    dataset = PhysicsDataset(SPEC, length=8, split="val")
    full = extract_features(encoder, dataset)
    bf16 = extract_features(encoder, dataset, autocast_dtype=torch.bfloat16)
    assert bf16.tokens.dtype == torch.float16
    torch.testing.assert_close(bf16.tokens.float(), full.tokens.float(), atol=0.1, rtol=0.1)


def _textbook_logits(head: AttentiveProbe, x: Tensor) -> Tensor:
    """V-JEPA's AttentiveClassifier written out: project every token to keys and values."""
    block, xattn = head.pooler.cross_attention_block, head.pooler.cross_attention_block.xattn
    B, N, D = x.shape
    H = xattn.num_heads
    q = head.pooler.query_tokens.expand(B, -1, -1)
    qh = xattn.q(q).reshape(B, 1, H, D // H).transpose(1, 2)
    k, v = xattn.kv(block.norm1(x)).reshape(B, N, 2, H, D // H).permute(2, 0, 3, 1, 4)
    q = q + F.scaled_dot_product_attention(qh, k, v).transpose(1, 2).reshape(B, 1, D)
    q = q + block.mlp(block.norm2(q))
    return head.linear(q.squeeze(1))


def test_attentive_probe_matches_the_textbook_cross_attention() -> None:
    head = AttentiveProbe(48, 5, num_heads=3)
    with torch.no_grad():  # make every parameter matter, including the LayerNorm affine and the biases
        for p in head.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = 2.0 * torch.randn(4, 10, 48) + 0.5
    w = torch.randn(4, 5)

    (head(x) * w).sum().backward()
    fast = {n: p.grad.clone() for n, p in head.named_parameters()}
    head.zero_grad()
    (_textbook_logits(head, x) * w).sum().backward()

    torch.testing.assert_close(head(x), _textbook_logits(head, x), atol=1e-5, rtol=1e-4)
    for name, p in head.named_parameters():
        torch.testing.assert_close(fast[name], p.grad, atol=1e-5, rtol=1e-4, msg=f"gradient of {name}")


def test_attentive_probe_keys_follow_vjepa_without_output_projection() -> None:
    keys = set(AttentiveProbe(48, 5).state_dict())
    block = "pooler.cross_attention_block"
    expected = {"pooler.query_tokens", "linear.weight", "linear.bias"} | {
        f"{block}.{m}.{p}"
        for m in ("norm1", "xattn.q", "xattn.kv", "norm2", "mlp.fc1", "mlp.fc2")
        for p in ("weight", "bias")
    }
    assert keys == expected
    assert AttentiveProbe(512, 7).pooler.cross_attention_block.xattn.num_heads == 8  # 64-channel heads


def test_attentive_probe_finds_the_marked_token(marked: tuple[Features, Features]) -> None:
    train, test = marked
    attentive = train_probe(train, test, "marked", FAST)
    linear = train_probe(train, test, "marked", ProbeConfig(kind="linear", lrs=FAST.lrs, epochs=FAST.epochs))
    assert attentive.accuracy > 0.9, attentive
    assert linear.accuracy < 0.5, linear  # mean-pooling cannot find the token: the task needs attention
    assert attentive.accuracy == max(attentive.accuracies.values())
    assert attentive.accuracies[attentive.best_lr] == attentive.accuracy
    assert (attentive.num_train, attentive.num_test, attentive.kind) == (512, 256, "attentive")


def test_noise_label_stays_near_chance(marked: tuple[Features, Features]) -> None:
    result = train_probe(*marked, "noise", FAST)
    assert result.num_classes == 4 and result.chance == 0.25
    assert result.accuracy < result.chance + 0.2, result


def test_chance_of_a_physics_label_counts_all_its_classes() -> None:
    g = torch.Generator().manual_seed(0)
    tokens = torch.randn(16, 4, 8, generator=g).half()
    features = Features(tokens=tokens, labels={"event": torch.arange(16) % 3})
    result = train_probe(features, features, "event", ProbeConfig(kind="linear", epochs=1))
    assert result.num_classes == 7 and result.chance == pytest.approx(1 / 7)


def test_same_seed_same_result_and_global_rng_untouched(marked: tuple[Features, Features]) -> None:
    config = ProbeConfig(lrs=(1e-2, 1e-3), epochs=2, seed=3)
    state = torch.get_rng_state()
    first = train_probe(*marked, "noise", config)
    assert torch.equal(torch.get_rng_state(), state)
    assert train_probe(*marked, "noise", config) == first


def test_probe_runs_every_label_and_results_are_json(marked: tuple[Features, Features]) -> None:
    results = probe(*marked, ["marked", "noise"], ProbeConfig(kind="linear", epochs=1))
    assert list(results) == ["marked", "noise"]
    data = json.loads(json.dumps(results["marked"].to_dict()))
    assert set(data["accuracies"]) == {"0.001", "0.0003"}
    assert data["label"] == "marked" and 0.0 <= data["accuracy"] <= 1.0


def test_unknown_labels_are_all_reported_before_training(marked: tuple[Features, Features]) -> None:
    with pytest.raises(ConfigError) as e:
        probe(*marked, ["markd", "marked", "colour"])
    assert len(e.value.problems) == 2
    assert "did you mean 'marked'" in e.value.problems[0] and "'colour'" in e.value.problems[1]


def test_unlabelled_clips_cannot_be_probed() -> None:
    features = Features(tokens=torch.zeros(4, 2, 8, dtype=torch.float16), labels={"label": torch.tensor([0, 1, -1, 0])})
    with pytest.raises(DataError, match="unlabelled"):
        train_probe(features, features, "label", ProbeConfig(kind="linear", epochs=1))


def test_probe_config_lists_every_bad_field() -> None:
    with pytest.raises(ConfigError) as e:
        ProbeConfig(kind="mlp", epochs=0, batch_size=True, lrs=(), weight_decay=-1.0, num_heads=-2, seed=1.5)  # type: ignore[arg-type]
    fields = ("kind", "epochs", "batch_size", "lrs", "weight_decay", "num_heads", "seed")
    assert len(e.value.problems) == len(fields)
    for name, problem in zip(fields, e.value.problems, strict=True):
        assert problem.startswith(f"{name}="), problem
    with pytest.raises(ConfigError, match="distinct"):
        ProbeConfig(lrs=(1e-3, 1e-3))


def test_probe_config_round_trips_through_a_dict() -> None:
    config = ProbeConfig(kind="linear", lrs=[1e-2], seed=4)  # type: ignore[arg-type]
    assert config.lrs == (1e-2,)
    assert ProbeConfig(**config.to_dict()) == config


def test_probe_config_takes_its_kinds_schedule_unless_set() -> None:
    """V-JEPA's 20 epochs at 1e-3 / 3e-4 for the linear heads; the attentive probe gets more steps at higher rates."""
    assert set(SCHEDULES) == set(PROBE_KINDS)
    for kind in PROBE_KINDS:
        config = ProbeConfig(kind=kind)  # type: ignore[arg-type]
        assert (config.epochs, config.lrs) == SCHEDULES[kind]
    assert (ProbeConfig(kind="grid").epochs, ProbeConfig(kind="grid").lrs) == (20, (1e-3, 3e-4))
    attentive = ProbeConfig(kind="attentive")
    assert attentive.epochs > 20 and min(attentive.lrs) > 1e-3  # type: ignore[operator]
    set_ = ProbeConfig(kind="attentive", epochs=7, lrs=(5e-4,))
    assert (set_.epochs, set_.lrs) == (7, (5e-4,))
    assert ProbeConfig(**attentive.to_dict()) == attentive


def test_linear_probe_is_mean_pool_batchnorm_linear() -> None:
    head = LinearProbe(8, 3).eval()
    x = torch.randn(5, 4, 8)
    torch.testing.assert_close(head(x), head.linear(x.mean(1) / (1 + head.bn.eps) ** 0.5))


def test_random_init_like_is_a_fresh_encoder_of_the_same_arch() -> None:
    torch.manual_seed(1234)  # conftest seeds 0 before each test, which is random_init_like's default seed
    source = VisionTransformer(TINY)
    state = torch.get_rng_state()
    fresh = random_init_like(source)
    assert torch.equal(torch.get_rng_state(), state)
    assert fresh.arch == source.arch and fresh is not source
    src, new = source.state_dict(), fresh.state_dict()
    assert src.keys() == new.keys()
    weights = [k for k in src if k.endswith("weight") and src[k].dim() > 1]
    assert weights and not any(torch.equal(src[k], new[k]) for k in weights)
    again = random_init_like(source).state_dict()
    assert all(torch.equal(new[k], again[k]) for k in new)


def _order_task(n: int, seed: int) -> Features:
    """Label = which of two time steps holds a marker vector: mean pooling erases it, a coarse grid keeps it."""
    g = torch.Generator().manual_seed(seed)
    grid, dim = (2, 2, 2), 16
    tokens = 0.5 * torch.randn(n, 8, dim, generator=g)
    y = torch.randint(0, 2, (n,), generator=g)
    marker = torch.zeros(dim)
    marker[0] = 3.0
    rows = torch.arange(n)
    tokens[rows, y * 4] += marker  # time step 0 (tokens 0-3) or 1 (tokens 4-7)
    tokens[rows, (1 - y) * 4 + 1] -= marker  # the other step holds the opposite, so the mean carries nothing
    return Features(tokens=tokens.half(), labels={"order": y}, grid=grid)


def test_grid_probe_reads_when_mean_pooling_cannot() -> None:
    train, test = _order_task(256, 0), _order_task(128, 1)
    cfg = dict(epochs=30, lrs=(1e-2,), pool=(0, 1, 1))
    grid = train_probe(train, test, "order", ProbeConfig(kind="grid", **cfg))
    mean = train_probe(train, test, "order", ProbeConfig(kind="linear", **cfg))
    assert grid.accuracy > 0.95
    assert mean.accuracy < 0.75


def test_attentive_probe_reads_order_from_the_token_grid() -> None:
    """Attention pooling is blind to order: only the grid's position embedding lets it tell the steps apart."""
    train, test = _order_task(256, 0), _order_task(128, 1)
    cfg = ProbeConfig(kind="attentive", epochs=30, lrs=(1e-2, 3e-3))
    placed = train_probe(train, test, "order", cfg)
    blind = train_probe(*(Features(tokens=f.tokens, labels=f.labels) for f in (train, test)), "order", cfg)
    assert placed.accuracy > 0.9, placed
    assert blind.accuracy < 0.7, blind
    assert "pos" not in AttentiveProbe(16, 2, grid=(2, 2, 2)).state_dict()  # V-JEPA 2's keys, nothing more


def test_inputs_prepared_once_train_the_same_heads(monkeypatch) -> None:
    """Training clips prepared once (pooled, normalised) give the very heads that preparing each batch gives."""
    import sys

    from vjepa_edge.eval.probe import GridLinearProbe

    probe_module = sys.modules["vjepa_edge.eval.probe"]  # the package exports a function of the same name

    train, test = _order_task(96, 0), _order_task(32, 1)
    x = torch.randn(3, 8, 16)
    whole = GridLinearProbe(16, 2, grid=(2, 2, 2), pool=(0, 2, 2))  # the whole map: no averaging to do
    pooled = F.adaptive_avg_pool3d(x.view(3, 2, 2, 2, 16).permute(0, 4, 1, 2, 3), (2, 2, 2)).flatten(1)
    assert torch.equal(whole.prepare(x), pooled)
    for kind in ("grid", "attentive"):
        cfg = ProbeConfig(kind=kind, epochs=3, lrs=(1e-2, 3e-3), pool=(0, 1, 1))
        once = train_probe(train, test, "order", cfg)
        monkeypatch.setattr(probe_module, "PREPARED_BYTES", 0)  # too large: prepared batch by batch
        per_batch = train_probe(train, test, "order", cfg)
        monkeypatch.undo()
        assert once.accuracies == per_batch.accuracies, kind


def test_extracted_features_carry_their_token_grid() -> None:
    enc = VisionTransformer(EncoderArch(embed_dim=48, depth=1, num_heads=3, mlp_hidden=96, num_frames=4, img_size=32))
    ds = PhysicsDataset(ClipSpec(frames=4, size=32, fps=8.0, frame_step=None), length=3)
    assert extract_features(enc, ds).grid == (2, 2, 2)
    with pytest.raises(ValueError, match="grid"):
        Features(tokens=torch.zeros(2, 8, 4), grid=(2, 2, 3))


def test_four_block_probe_has_vjepa2_keys() -> None:
    keys = set(AttentiveProbe4(48, 5).state_dict())
    blocks = {k for k in keys if k.startswith("pooler.blocks.")}
    assert {k.split(".")[2] for k in blocks} == {"0", "1", "2"}  # three self-attention blocks first
    assert "pooler.blocks.0.attn.qkv.weight" in blocks and "pooler.blocks.2.mlp.fc2.bias" in blocks
    assert keys - blocks == set(AttentiveProbe(48, 5).state_dict())


@pytest.mark.slow
def test_four_block_probe_finds_the_marked_token(marked: tuple[Features, Features]) -> None:
    train, test = marked
    result = train_probe(train, test, "marked", ProbeConfig(kind="attentive4", lrs=FAST.lrs, epochs=FAST.epochs))
    assert result.kind == "attentive4" and result.accuracy > 0.9, result
