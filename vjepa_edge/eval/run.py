"""`vjepa-edge eval RUN_OR_CKPT`: what every stage of the pipeline still knows, on the same clips.

For each stage (`vjepa_edge.eval.stages`: teacher, random-init teacher, fp32 student, random-init student, each int8
program and each exported artifact that runs here) two measures:

- frozen probes (`vjepa_edge.eval.probe`: grid, linear, attentive, V-JEPA 2's four-block attentive) trained on the
  stage's own features of the same labelled physics clips (the recipe's labels and clip counts), tested on the same
  held-out clips; retention is the stage's accuracy over the teacher's. The tokens of every student stage are also
  compared with the fp32 student's on the first `COSINE_CLIPS` test clips (`cosine_to_student`).
- intuitive-physics surprise (`vjepa_edge.eval.surprise`) on violation-of-expectation pairs whose two clips share
  their first half and part in the second: the context is the first half of the model's token time steps, the
  predictor predicts the rest, and a pair is right when the impossible clip is the more surprising. Student stages
  compute it with what ships: their encoder (the int8 program, the artifact through its runtime), the projector and
  the predictor (the exported predictor artifact when there is one).

Accuracies that the distillation's own evaluation already measured with the same protocol (teacher, student and
random student in report.json) are taken from it unless `recompute`. Work that does not change between runs is
cached under the user cache, keyed by the weights and the exact clips or pairs: the probe tokens of the teacher
and of the random-init student, which the distillation keeps, and the surprise curves of the teacher and the
random-init teacher, which every student of a teacher scores again, and of the random-init student, the same for
every run of a recipe. Results go to RUN/eval/eval.json (with the
surprise curves of one example pair per violation kind, whose frames are in RUN/eval/voe_examples.npz).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vjepa_edge.config import check_count
from vjepa_edge.errors import ConfigError
from vjepa_edge.eval.stages import Stage, find_stages
from vjepa_edge.runinfo import atomic_open, write_json
from vjepa_edge.runs import RunDir, resolve_run_or_ckpt
from vjepa_edge.train.loop import task_bar

log = logging.getLogger(__name__)

EVAL_JSON = "eval.json"
EXAMPLES = "voe_examples.npz"
REUSABLE = ("teacher", "student", "random_student")  # the stages report.json measures
MIN_VOE_FRAMES = 8  # `generate_voe_pair`'s least
COSINE_CLIPS = 128  # test clips whose tokens each student stage is compared on with the fp32 student's (16k tokens)


@dataclass(frozen=True, kw_only=True, slots=True)
class EvalOptions:
    """What `vjepa-edge eval` takes besides the model. None / empty: the run's recipe (or the defaults)."""

    probes: tuple[str, ...] = ()
    train_clips: int | None = None
    test_clips: int | None = None
    voe_pairs: int = 120
    voe: bool = True
    stages: tuple[str, ...] = ()
    recompute: bool = False
    examples: int = 6

    def problems(self) -> list[str]:
        from vjepa_edge.eval.probe import PROBE_KINDS

        p = [f"--probe {k!r}: one of {', '.join(PROBE_KINDS)}" for k in self.probes if k not in PROBE_KINDS]
        for flag, value in (("--train-clips", self.train_clips), ("--test-clips", self.test_clips)):
            if value is not None:
                check_count(flag, value, p, minimum=2, maximum=1_000_000)
        check_count("--voe-pairs", self.voe_pairs, p, minimum=2, maximum=100_000)
        check_count("--examples", self.examples, p, minimum=0, maximum=100)
        return p


@dataclass
class Protocol:
    """The probe and surprise protocol: the run's recipe, else the defaults of a distillation."""

    labels: tuple[str, ...] = ("event", "direction")
    probes: tuple[str, ...] = ("grid",)
    pool: tuple[int, int, int] = (0, 4, 4)
    epochs: dict[str, int] = field(default_factory=dict)  # kind -> epochs set by the recipe; other kinds: their own
    train_clips: int = 1024
    test_clips: int = 512
    seed: int = 0
    fps: float = 8.0
    reuse: dict[str, dict[str, float]] = field(default_factory=dict)  # stage -> label -> accuracy (report.json)
    reuse_kind: str = ""  # the probe kind of those accuracies
    chance: float = math.nan  # mean chance accuracy over the labels

    def to_dict(self) -> dict[str, Any]:
        from vjepa_edge.eval.probe import ProbeConfig

        return {
            "labels": list(self.labels),
            "probes": list(self.probes),
            "pool": list(self.pool),
            "epochs": {kind: ProbeConfig(kind=kind, epochs=self.epochs.get(kind)).epochs for kind in self.probes},
            "train_clips": self.train_clips,
            "test_clips": self.test_clips,
            "seed": self.seed,
            "reused_from_report": sorted(self.reuse),
            "cosine_clips": min(COSINE_CLIPS, self.test_clips),
        }


def _protocol(run: RunDir | None, options: EvalOptions) -> Protocol:
    p = Protocol()
    report: dict[str, Any] = {}
    if run is not None and run.kind == "distill":
        from vjepa_edge.distill.head import run_recipe

        r = run_recipe(run)
        p.labels, p.probes, p.pool = r.eval.labels, (r.eval.probe,), r.eval.pool
        p.epochs = {r.eval.probe: r.eval.epochs} if r.eval.epochs is not None else {}
        p.train_clips, p.test_clips, p.seed, p.fps = r.eval.train_clips, r.eval.test_clips, r.run.seed, r.data.fps
        if run.report.is_file():
            report = json.loads(run.report.read_text())
    p.probes = options.probes or p.probes
    p.train_clips = options.train_clips or p.train_clips
    p.test_clips = options.test_clips or p.test_clips
    probe = report.get("probe") or {}
    same = (
        probe.get("kind") in p.probes
        and list(probe.get("pool", [])) == list(p.pool)
        and list(probe.get("labels", [])) == list(p.labels)
        and (probe.get("train_clips"), probe.get("test_clips")) == (p.train_clips, p.test_clips)
    )
    if same and not options.recompute:
        p.reuse = {k: v for k, v in (probe.get("accuracy") or {}).items() if k in REUSABLE}
        p.reuse_kind, p.chance = probe["kind"], float(probe.get("chance", math.nan))
    return p


@dataclass
class EvalResult:
    folder: Path
    report: dict[str, Any]


def _mean(values: Any) -> float:
    values = list(values)
    return sum(values) / len(values)


def _probe_stage(stage: Stage, clips: tuple[Any, Any], protocol: Protocol, progress: bool) -> tuple[dict, Any]:
    """Probe accuracies of one stage per probe kind, and its test tokens (None when reused from report.json)."""
    from vjepa_edge.eval.physics import cached_features
    from vjepa_edge.eval.probe import ProbeConfig, probe

    kinds = list(protocol.probes)
    out: dict[str, Any] = {}
    if not stage.probe:
        return out, None
    reused = protocol.reuse.get(stage.name)
    if reused is not None and set(protocol.labels) <= set(reused):
        kind = protocol.reuse_kind
        out[kind] = {"acc": _mean(reused[x] for x in protocol.labels), "labels": dict(reused), "from": "report.json"}
        kinds = [k for k in kinds if k != kind]
        if not kinds:
            return out, None
    train_set, test_set = clips
    with task_bar(f"{stage.name} features", len(train_set) + len(test_set), enabled=progress) as bar:
        train = cached_features(stage.encoder, train_set, stage.digest, progress=bar)
        test = cached_features(stage.encoder, test_set, stage.digest, progress=bar)
    for kind in kinds:
        config = ProbeConfig(kind=kind, epochs=protocol.epochs.get(kind), pool=protocol.pool, seed=protocol.seed)
        results = probe(train, test, protocol.labels, config)
        labels = {k: r.accuracy for k, r in results.items()}
        out[kind] = {"acc": _mean(labels.values()), "labels": labels}
        protocol.chance = _mean(r.chance for r in results.values())
    return out, test.tokens


def _student_tokens(stage: Stage, test_set: Any, progress: bool) -> torch.Tensor:
    from vjepa_edge.eval.probe import extract_features

    with task_bar(f"{stage.name} test tokens", len(test_set), enabled=progress) as bar:
        return extract_features(stage.encoder, test_set, progress=bar, dtype=torch.float32).tokens


def _voe(stage: Stage, pairs: list[Any], pairs_digest: str, progress: bool) -> Any:
    from vjepa_edge.eval.surprise import voe_pairwise

    path = _surprise_cache(stage, pairs_digest)
    if path is not None and path.is_file():
        try:
            return _load_voe(path)
        except Exception as e:  # a damaged file is recomputed, never trusted
            log.warning("surprise cache %s is unreadable (%s); computing again", path, e)
    model = stage.surprise()
    context_steps = model.input_spec.grid[0] // 2  # the first half: what the exported predictor takes
    with task_bar(f"{stage.name} surprise", len(pairs), enabled=progress, unit="pairs") as bar:
        batches = (lambda it: _advancing(it, bar, len(pairs))) if bar else None
        result = voe_pairwise(model, pairs, context_steps=context_steps, batch_size=8, progress=batches)
    if path is not None:
        _save_voe(result, path)
    return result


# The surprise protocol a cached result was computed with; bump it when the protocol changes.
SURPRISE_PROTOCOL = "first-half context, target-encoder context for teachers, L1 per future step"


def _surprise_cache(stage: Stage, pairs_digest: str) -> Path | None:
    """Where a stage's surprise curves on these pairs are kept (a teacher's: every student of it evaluates it again),
    keyed by its weights, the pairs' bytes and the protocol; None: not cached."""
    from vjepa_edge.runinfo import cache_file

    if stage.surprise_digest is None:
        return None
    return cache_file(
        "surprise", {"weights": stage.surprise_digest, "pairs": pairs_digest, "protocol": SURPRISE_PROTOCOL}
    )


def _pairs_digest(pairs: list[Any]) -> str:
    import hashlib

    h = hashlib.sha256()
    for p in pairs:
        h.update(f"{p.kind}|{p.diverge_frame}|{p.possible.shape}|".encode())
        h.update(np.ascontiguousarray(p.possible).tobytes())
        h.update(np.ascontiguousarray(p.impossible).tobytes())
    return h.hexdigest()


def _save_voe(result: Any, path: Path) -> None:
    from vjepa_edge.runinfo import save_safetensors

    meta = {
        "kinds": json.dumps(list(result.kinds)),
        "diverge_frames": json.dumps(list(result.diverge_frames)),
        "context_steps": str(result.context_steps),
        "frames_per_step": str(result.frames_per_step),
    }
    tensors = {"possible": result.possible.contiguous(), "impossible": result.impossible.contiguous()}
    save_safetensors(tensors, path, meta)


def _load_voe(path: Path) -> Any:
    from safetensors import safe_open

    from vjepa_edge.eval.surprise import VoEResult

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        return VoEResult(
            kinds=tuple(json.loads(meta["kinds"])),
            diverge_frames=tuple(json.loads(meta["diverge_frames"])),
            possible=f.get_tensor("possible"),
            impossible=f.get_tensor("impossible"),
            context_steps=int(meta["context_steps"]),
            frames_per_step=int(meta["frames_per_step"]),
        )


def _advancing(it: Any, bar: Any, total: int) -> Any:
    starts = list(it)
    for i, s in enumerate(starts):
        yield s
        nxt = starts[i + 1] if i + 1 < len(starts) else total
        bar(advance=nxt - s)


def _examples(pairs: list[Any], count: int) -> list[int]:
    """One pair per violation kind, in the pairs' order, at most `count`."""
    seen: dict[str, int] = {}
    for i, p in enumerate(pairs):
        seen.setdefault(p.kind, i)
    return list(seen.values())[:count]


def _write_examples(path: Path, pairs: list[Any], idx: list[int]) -> None:
    with atomic_open(path, "wb") as f:
        np.savez_compressed(
            f,
            possible=np.stack([pairs[i].possible for i in idx]).astype(np.uint8),
            impossible=np.stack([pairs[i].impossible for i in idx]).astype(np.uint8),
        )


def evaluate_run(
    model: str | Path, options: EvalOptions | None = None, *, out: str | Path | None = None, progress: bool = True
) -> EvalResult:
    """Evaluate every stage of RUN_OR_CKPT `model`; see the module docstring. Writes eval.json into `out`
    (default RUN/eval, or runs/eval/NAME for a bare file)."""
    from vjepa_edge.data.config import ClipSpec
    from vjepa_edge.paths import ensure, out_dir_problems

    options = options or EvalOptions()
    p = options.problems()
    if p:
        raise ConfigError.of(p, title="invalid eval options", hint="see `vjepa-edge eval --help`")
    resolved = resolve_run_or_ckpt(model)
    run = resolved.run
    folder = Path(out) if out is not None else (run.root / "eval" if run else Path("runs/eval") / resolved.path.stem)
    ensure(out_dir_problems(folder), hint="pass --out DIR, a folder this user can write")
    protocol = _protocol(run, options)
    stages = find_stages(resolved, seed=protocol.seed, include=options.stages)
    if options.stages:
        names = [s.name for s in stages]
        unknown = [n for n in options.stages if n not in names]
        if unknown:
            raise ConfigError(
                f"--stage: {', '.join(map(repr, unknown))} not found in {model}", hint=f"its stages: {', '.join(names)}"
            )
        stages = [s for s in stages if s.name in options.stages]
    t0 = time.perf_counter()
    first = stages[0].encoder.input_spec
    spec = ClipSpec(frames=first.frames, size=first.size, fps=protocol.fps, frame_step=None)

    from vjepa_edge.eval.physics import probe_clips

    clips = probe_clips(spec, train_clips=protocol.train_clips, test_clips=protocol.test_clips, seed=protocol.seed)
    pairs = []
    if options.voe and spec.frames < MIN_VOE_FRAMES:
        log.warning(
            "no surprise: violation-of-expectation pairs need %d frames, the clips have %d", MIN_VOE_FRAMES, spec.frames
        )
    elif options.voe and any(s.surprise for s in stages):
        from vjepa_edge.eval.surprise import render_voe_pairs

        half = spec.frames // 2  # pairs whose two clips share the context (the first half) and part after it
        pairs = render_voe_pairs(
            options.voe_pairs, seed=protocol.seed, frames=spec.frames, size=spec.size, fps=spec.fps, diverge_after=half
        )
    pairs_digest = _pairs_digest(pairs) if pairs else ""
    results: dict[str, dict[str, Any]] = {}
    voe: dict[str, Any] = {}
    student_tokens = None
    for stage in stages:
        ts = time.perf_counter()
        probes, tokens = _probe_stage(stage, clips, protocol, progress)
        row: dict[str, Any] = {
            "label": stage.label,
            "kind": stage.kind,
            "source": stage.source,
            "size_bytes": stage.size_bytes,
            "notes": stage.notes,
            "probe": probes,
            "probe_acc": probes[protocol.probes[0]]["acc"] if probes else None,
            "cosine_to_student": None,
        }
        if stage.kind == "student":
            n = min(COSINE_CLIPS, len(clips[1]))
            if tokens is None:
                from torch.utils.data import Subset

                tokens = _student_tokens(stage, Subset(clips[1], range(n)), progress)
            tokens = tokens[:n].float()
            if stage.name == "student":
                student_tokens = tokens
            elif student_tokens is not None and tokens.shape == student_tokens.shape:
                cos = torch.nn.functional.cosine_similarity(tokens, student_tokens, dim=-1)
                row["cosine_to_student"] = cos.mean().item()
        if pairs and stage.surprise is not None:
            voe[stage.name] = _voe(stage, pairs, pairs_digest, progress)
            summary = voe[stage.name].to_dict()
            row["voe"] = summary
            row["voe_pairwise_acc"] = summary["overall"][f"accuracy_{summary['primary']}"]
        else:
            row["voe"], row["voe_pairwise_acc"] = None, None
        row["seconds"] = time.perf_counter() - ts
        results[stage.name] = row
        log.info(
            "%s: probe %s%s (%.0f s)",
            stage.label,
            "-" if row["probe_acc"] is None else f"{100 * row['probe_acc']:.1f}%",
            "" if row["voe_pairwise_acc"] is None else f", VoE {100 * row['voe_pairwise_acc']:.1f}%",
            row["seconds"],
        )
    teacher = results.get("teacher", {})
    for row in results.values():
        row["retention"] = _ratio(row["probe_acc"], teacher.get("probe_acc"))
        row["voe_retention"] = _ratio(row["voe_pairwise_acc"], teacher.get("voe_pairwise_acc"))
    report: dict[str, Any] = {
        "run": str(run.root if run else resolved.path),
        "protocol": {**protocol.to_dict(), "chance": protocol.chance},
        "stages": results,
        "probe_acc": {n: r["probe_acc"] for n, r in results.items() if r["probe_acc"] is not None},
        "voe_pairwise_acc": {n: r["voe_pairwise_acc"] for n, r in results.items() if r["voe_pairwise_acc"] is not None},
        "retention": {n: {"probe": r["retention"], "voe": r["voe_retention"]} for n, r in results.items()},
    }
    folder.mkdir(parents=True, exist_ok=True)
    if pairs:
        context = {n: v.context_steps for n, v in voe.items()}
        report["protocol"]["voe"] = {
            "pairs": len(pairs),
            "seed": protocol.seed,
            "diverge_after": spec.frames // 2,
            "frames": spec.frames,
            "context_steps": context,
            "score": "max",
        }
        idx = _examples(pairs, options.examples)
        _write_examples(folder / EXAMPLES, pairs, idx)
        report["examples"] = {
            "file": EXAMPLES,
            "pairs": [
                {
                    "index": i,
                    "kind": pairs[i].kind,
                    "diverge_frame": pairs[i].diverge_frame,
                    "surprise": {
                        n: {"possible": v.possible[i].tolist(), "impossible": v.impossible[i].tolist()}
                        for n, v in voe.items()
                    },
                }
                for i in idx
            ],
        }
    report["seconds"] = time.perf_counter() - t0
    write_json(folder / EVAL_JSON, report)
    return EvalResult(folder, report)


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b <= 0 or math.isnan(a) or math.isnan(b):
        return None
    return a / b


__all__ = ["EVAL_JSON", "EXAMPLES", "EvalOptions", "EvalResult", "evaluate_run"]
