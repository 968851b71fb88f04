"""Intuitive-physics surprise of the embedded teacher against a random-init model of its architecture.

Renders `--pairs` violation-of-expectation pairs (kinds cycle, so each kind gets pairs/6) whose two clips are
identical in their first `--diverge-after` frames (default: the context's frames, so both clips share the context
and only the future tells them apart), computes V-JEPA's surprise (context: the tokens of the first
`--context-steps` token time steps; targets: every later token) for the teacher's encoder + predictor against its
LayerNorm'ed target encoder, and for the same architecture randomly initialised, and prints the pairwise accuracy
(impossible more surprising than possible; ties count 1/2) per kind and overall, with max and mean scoring over
the future steps. `fut` keeps only the pairs whose clips diverge after the context (all of them by default; with
`--diverge-after 0`, the generator's default pairs, the context of the others may already show the violation).
`--run RUN` adds a masked distill run's student (context "tokens" and "hold") and a random-init student of its
architecture. Deterministic given --seed.

    VJEPA_EDGE_CACHE=/tmp/fresh-cache uv run python bench/voe_surprise.py                 # 200 pairs
    uv run python bench/voe_surprise.py --teacher PATH --pairs 60 --json
    uv run python bench/voe_surprise.py --pairs 120 --run RUN       # + the student, held context, random student
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vjepa_edge.eval.surprise import (  # noqa: E402
    TeacherSurprise,
    VoEResult,
    random_init_vjepa,
    random_student_surprise_model,
    render_voe_pairs,
    student_surprise_model,
    teacher_surprise_model,
    voe_pairwise,
)
from vjepa_edge.models.checkpoint import load_vjepa  # noqa: E402
from vjepa_edge.models.vit import gather_tokens  # noqa: E402
from vjepa_edge.runinfo import machine_line  # noqa: E402


def _teacher_path(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    from vjepa_edge.distill.teachers import get_teacher_source

    cached = get_teacher_source("embedded").cached()
    if cached is None:
        sys.exit("error: the embedded teacher is not cached (set VJEPA_EDGE_CACHE, or pass --teacher PATH)")
    return cached


def _pct(x: float | None) -> str:
    return "  n/a" if x is None else f"{100 * x:5.1f}"


def _table(results: dict[str, VoEResult]) -> str:
    dicts = {n: r.to_dict() for n, r in results.items()}
    first = next(iter(dicts.values()))
    width = 19
    top = f"{'':<16}{'':>6}{'':>7}" + "".join(f" | {n[:width]:^{width}}" for n in dicts)
    head = f"{'kind':<16}{'pairs':>6}{'future':>7}" + f" | {'max':>5} {'mean':>5} {'fut':>5}  " * len(dicts)
    lines = [top, head.rstrip(), "-" * len(top)]
    for kind in [*first["kinds"], "overall"]:
        entry = first["overall"] if kind == "overall" else first["kinds"][kind]
        line = f"{kind:<16}{entry['pairs']:>6}{entry['diverge_in_future']['pairs']:>7}"
        for d in dicts.values():
            e = d["overall"] if kind == "overall" else d["kinds"][kind]
            fut = e["diverge_in_future"]["accuracy_max"]
            line += f" | {_pct(e['accuracy_max'])} {_pct(e['accuracy_mean'])} {_pct(fut)}  "
        lines.append(line.rstrip())
    return "\n".join(lines)


class Persistence:
    """A reference, not a world model: 'the future looks like the last context step' in the teacher's target
    features (no predictor). It shows whether the features themselves mark the violation."""

    def __init__(self, teacher: TeacherSurprise) -> None:
        self.teacher, self.input_spec, self._targets = teacher, teacher.input_spec, None

    def context(self, clip: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        self._targets = self.teacher.target(clip)
        return self._targets

    def predict(self, tokens: torch.Tensor, ctx_idx: torch.Tensor, tgt_idx: torch.Tensor) -> torch.Tensor:
        _, h, w = self.input_spec.grid
        last = gather_tokens(tokens, ctx_idx[:, -h * w :])
        return last.repeat(1, tgt_idx.shape[1] // (h * w), 1)

    def target(self, clip: torch.Tensor) -> torch.Tensor:
        return self._targets


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", help="a V-JEPA checkpoint with a predictor (default: the cached embedded teacher)")
    ap.add_argument("--pairs", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0, help="the VoE stream (pairs) and the random init")
    ap.add_argument("--context-steps", type=int, help="token time steps of context (default: half the grid)")
    ap.add_argument("--batch-size", type=int, default=16, help="pairs per forward")
    ap.add_argument("--mask-index", type=int, default=1, help="the predictor's mask token (1: the causal mask)")
    ap.add_argument(
        "--encoder-context", action="store_true", help="also: the online encoder as context encoder (default: target)"
    )
    ap.add_argument(
        "--diverge-after", type=int, help="pairs identical in their first N frames (default: the context's frames)"
    )
    ap.add_argument("--run", help="also: this masked distill run's student (tokens and hold context), random student")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true", help="one JSON object (every summary) instead of the table")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    teacher = load_vjepa(_teacher_path(args.teacher)).eval()
    spec = teacher.input_spec
    context = args.context_steps or spec.grid[0] // 2
    models = {"teacher": teacher_surprise_model(teacher, mask_index=args.mask_index)}
    if args.encoder_context:
        models["teacher (encoder ctx)"] = teacher_surprise_model(
            teacher, context_encoder="encoder", mask_index=args.mask_index
        )
    models["persistence (ref.)"] = Persistence(models["teacher"])
    models["random init"] = teacher_surprise_model(random_init_vjepa(teacher, args.seed), mask_index=args.mask_index)
    if args.run:
        models["student"] = student_surprise_model(args.run)
        models["student (hold)"] = student_surprise_model(args.run, context="hold")
        models["random student"] = random_student_surprise_model(args.run, seed=args.seed)
        if models["student"].input_spec.frames != spec.frames:
            sys.exit("error: the student takes other clips than the teacher; compare them at the same frames")
    diverge_after = context * spec.tubelet if args.diverge_after is None else args.diverge_after
    t0 = time.perf_counter()
    pairs = render_voe_pairs(
        args.pairs, seed=args.seed, frames=spec.frames, size=spec.size, diverge_after=diverge_after or None
    )
    render_s = time.perf_counter() - t0
    results, seconds = {}, {}
    for name, model in models.items():
        t0 = time.perf_counter()
        results[name] = voe_pairwise(model, pairs, context_steps=context, batch_size=args.batch_size)
        seconds[name] = time.perf_counter() - t0
    total = time.perf_counter() - start
    if args.json:
        print(
            json.dumps(
                {
                    "pairs": args.pairs,
                    "seed": args.seed,
                    "diverge_after": diverge_after,
                    "machine": machine_line(),
                    "seconds": {"render": render_s, **seconds},
                    "results": {n: r.to_dict() for n, r in results.items()},
                }
            )
        )
        return 0
    t, h, w = spec.grid
    print(
        f"{args.pairs} VoE pairs (seed {args.seed}), {spec.frames} frames at {spec.size} px, grid {t}x{h}x{w}; "
        f"context: the first {context} of {t} token steps ({context * spec.tubelet} frames), mask token "
        f"{args.mask_index}; pairs identical in their first {diverge_after} frames; accuracy in % (impossible more "
        "surprising; ties 1/2); future = pairs diverging after the context"
    )
    print(_table(results))
    print(
        f"rendering {render_s:.1f} s; surprise "
        + ", ".join(f"{n} {s:.1f} s" for n, s in seconds.items())
        + f"; total {total:.1f} s on {torch.get_num_threads()} threads"
    )
    print(f"{machine_line()}; load average {os.getloadavg()[0]:.1f} (above the threads: the CPU was shared)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
