"""The intuitive-physics section: pairwise violation-of-expectation accuracy per kind and model, the mean surprise
difference (impossible minus possible) per future step and model, and a few example pairs with their frames
(eval/voe_examples.npz) and every model's surprise difference (eval/eval.json). One colour per model throughout."""

from __future__ import annotations

import functools
import logging
from typing import Any

from vjepa_edge.report import plots
from vjepa_edge.report.collect import RunSummary, get, num, text
from vjepa_edge.report.document import Block, Figure, Table, Text

log = logging.getLogger(__name__)

MAX_EXAMPLES = 6


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.1f} %"


def voe_blocks(s: RunSummary) -> list[Block]:
    proto = get(s.eval, "protocol", "voe")
    models = {name: st for name, st in s.eval_stages.items() if isinstance(get(st, "voe"), dict)}
    blocks: list[Block] = []
    if isinstance(proto, dict):
        blocks.append(
            Text(
                text=f"{num(proto, 'pairs') or 0:.0f} matched possible/impossible pairs; each model sees "
                f"{_context(get(proto, 'context_steps'))} context steps and predicts the rest; a pair is right "
                f"when the impossible clip's surprise ({text(proto, 'score') or 'max'} over future steps) is higher."
            )
        )
    if not models:
        blocks.append(Text(text="eval.json has no violation-of-expectation results (no stage was scored on pairs)."))
        return blocks
    kinds = sorted(
        {k for st in models.values() if isinstance(get(st, "voe", "kinds"), dict) for k in st["voe"]["kinds"]}
    )
    groups = [*kinds, "overall"]
    labels = {name: text(st, "label") or name for name, st in models.items()}
    colours = model_colours(s)
    series: dict[str, list[float | None]] = {}
    for name, st in models.items():
        key = f"accuracy_{text(st, 'voe', 'primary') or text(proto, 'score') or 'max'}"
        series[labels[name]] = [num(st, "voe", "kinds", k, key) for k in kinds] + [num(st, "voe", "overall", key)]
    blocks.append(
        Figure(
            name="voe",
            caption="Pairwise accuracy per kind of violation and model (dashed: 50 % chance).",
            draw=functools.partial(
                plots.grouped_bars,
                groups,
                series,
                ylabel="pairwise accuracy",
                chance=0.5,
                chance_label="chance (50 %)",
                colours=[colours[name] for name in models],
            ),
        )
    )
    mean_lines = []
    for name, st in models.items():
        possible, impossible = (_floats(get(st, "voe", "overall", f"curve_{k}")) for k in ("possible", "impossible"))
        if possible and len(possible) == len(impossible):
            mean_lines.append((labels[name], colours[name], [b - a for a, b in zip(possible, impossible, strict=True)]))
    if mean_lines:
        after = num(proto, "diverge_after")
        blocks.append(
            Figure(
                name="voe_difference",
                caption=f"Mean over pairs of {plots.SURPRISE_DIFF} per future step and model: above zero the model is "
                "more surprised by the impossible clip."
                + (f" The clips of a pair share their first {after:.0f} frames." if after is not None else ""),
                draw=functools.partial(plots.voe_difference, mean_lines),
            )
        )
    rows = tuple(
        (
            labels[name],
            text(st, "kind") or "-",
            _pct(series[labels[name]][-1]),
            _pct(num(st, "voe_retention")),
            *(_pct(v) for v in series[labels[name]][:-1]),
        )
        for name, st in models.items()
    )
    blocks.append(Table(header=("model", "kind", "overall", "retention", *kinds), rows=rows))
    blocks.extend(_examples(s, labels, colours))
    return blocks


def model_colours(s: RunSummary) -> dict[str, str]:
    """One colour per eval stage, by its place in eval.json: the same model has the same colour in every VoE
    figure, whichever stages a figure leaves out."""
    return {name: plots.PALETTE[i % len(plots.PALETTE)] for i, name in enumerate(s.eval_stages)}


def _differ_step(s: RunSummary, stage: str, diverge_frame: float | None) -> int | None:
    """The first future step (1-based) whose frames include `diverge_frame`, for this stage's context: step k
    covers frames (context_steps + k - 1) * tubelet .. + tubelet - 1. None when the context is unknown."""
    if diverge_frame is None:
        return None
    steps = num(s.eval_stages.get(stage), "voe", "context_steps")
    steps = steps if steps is not None else num(s.eval, "protocol", "voe", "context_steps", stage)
    steps = steps if steps is not None else num(s.eval, "protocol", "voe", "context_steps")
    if steps is None:
        return None
    frames = num(s.eval_stages.get(stage), "voe", "context_frames")
    tubelet = int(frames // steps) if frames and steps else 2
    k = 1
    while (steps + k - 1) * tubelet + tubelet - 1 < diverge_frame:
        k += 1
    return k


def _examples(s: RunSummary, labels: dict[str, str], colours: dict[str, str]) -> list[Block]:
    pairs = get(s.eval, "examples", "pairs")
    if not isinstance(pairs, list) or not pairs:
        return [Text(text="eval.json has no example pairs.")]
    frames = _load_frames(s)
    blocks: list[Block] = []
    if frames is None:
        blocks.append(Text(text=f"{s.run.root / 'eval' / 'voe_examples.npz'} is missing or unreadable: curves only."))
    for i, pair in enumerate(pairs[:MAX_EXAMPLES]):
        if not isinstance(pair, dict):
            continue
        surprise = get(pair, "surprise")
        diverge = num(pair, "diverge_frame")
        lines, differ = [], {}
        for stage, c in surprise.items() if isinstance(surprise, dict) else []:
            possible_c, impossible_c = _floats(get(c, "possible")), _floats(get(c, "impossible"))
            if not possible_c or len(possible_c) != len(impossible_c):
                continue
            colour = colours.get(stage, plots.PALETTE[len(lines) % len(plots.PALETTE)])
            lines.append(
                (labels.get(stage, stage), colour, [b - a for a, b in zip(possible_c, impossible_c, strict=True)])
            )
            differ[labels.get(stage, stage)] = _differ_step(s, stage, diverge)
        possible = impossible = None
        if frames is not None and i < len(frames[0]):
            possible, impossible = frames[0][i], frames[1][i]
        kind = text(pair, "kind") or "?"
        title = f"example {i + 1}: {kind} (pair {num(pair, 'index') or 0:.0f})" + (
            f", clips differ from frame {diverge:.0f}" if diverge is not None else ""
        )
        steps = set(differ.values())
        common = steps.pop() if len(steps) == 1 else None
        if common is not None:
            where = f" The clips differ from future step {common} on (shaded); before it the curves should sit at 0."
        elif any(v is not None for v in differ.values()):
            where = (
                " The clips differ from future step "
                + ", ".join(f"{v} for {m}" for m, v in differ.items() if v is not None)
                + "."
            )
        else:
            where = ""
        blocks.append(
            Figure(
                name=f"voe_example_{i + 1}",
                caption=f"{title}. Below the frames: {plots.SURPRISE_DIFF} per future step and model; above zero "
                f"the model is more surprised by the impossible clip.{where}",
                draw=functools.partial(
                    plots.voe_example,
                    possible,
                    impossible,
                    lines,
                    title=title,
                    diverge_frame=None if diverge is None else int(diverge),
                    differ_from=common,
                ),
            )
        )
    return blocks


def _context(v: Any) -> str:
    """Context steps: one number, or one per model ({stage: steps})."""
    if isinstance(v, dict):
        steps = sorted({int(x) for x in v.values() if isinstance(x, int | float) and not isinstance(x, bool)})
        return "/".join(str(x) for x in steps) or "?"
    return f"{v:.0f}" if isinstance(v, int | float) and not isinstance(v, bool) else "?"


def _floats(v: Any) -> list[float]:
    return (
        [float(x) for x in v if isinstance(x, int | float) and not isinstance(x, bool)] if isinstance(v, list) else []
    )


def _load_frames(s: RunSummary) -> tuple[Any, Any] | None:
    """(possible, impossible) uint8 arrays [P, T, H, W, 3], or None when the file is missing or malformed."""
    if s.examples is None:
        return None
    import numpy as np

    try:
        with np.load(s.examples, allow_pickle=False) as z:
            possible, impossible = z["possible"], z["impossible"]
    except (OSError, ValueError, KeyError) as e:
        log.warning("could not read %s: %s", s.examples, e)
        return None
    if possible.ndim != 5 or possible.shape[-1] != 3 or possible.shape != impossible.shape:
        log.warning("%s: expected two uint8 arrays [P, T, H, W, 3] of one shape", s.examples)
        return None
    return possible.astype(np.uint8, copy=False), impossible.astype(np.uint8, copy=False)
