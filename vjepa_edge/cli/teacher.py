"""`vjepa-edge teacher ...`: pretrain V-JEPA teachers (the teacher/ app, imported lazily) and inspect checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from vjepa_edge.cli._common import JsonOpt, check_counts, command, console
from vjepa_edge.errors import ConfigError

app = typer.Typer(no_args_is_help=True, help="Pretrain V-JEPA teachers and inspect teacher checkpoints.")


def _fmt_params(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 1e5 else f"{n:,}"


def _render(info: dict[str, Any]) -> None:
    a, inp = info["architecture"], info["input"]
    t = Table(title=f"{info['path']}", show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    t.add_row("format", info["format"])
    t.add_row(
        "architecture",
        f"{a['size']}: width {a['width']}, depth {a['depth']}, {a['heads']} heads "
        f"(head dim {a['head_dim']}), MLP {a['mlp_hidden']}",
    )
    t.add_row("positions", a["position_encoding"])
    t.add_row("tubelet / patch", f"{a['tubelet']} frames x {a['patch']}x{a['patch']} px")
    parts = [f"{k} ({_fmt_params(info['parameters'][k])})" if v else f"{k}: absent" for k, v in info["parts"].items()]
    t.add_row("parts", ", ".join(parts))
    if info["predictor"]:
        p = info["predictor"]
        sorts = ", sorts tokens by position" if p["sorts_tokens"] else ""
        t.add_row(
            "predictor",
            f"width {p['width']}, depth {p['depth']}, {p['heads']} heads, {p['mask_tokens']} mask tokens{sorts}",
        )
    t.add_row("parameters", f"{_fmt_params(info['parameters']['total'])} in all, {info['dtype']}")
    t.add_row(
        "input",
        f"{inp['frames']} frames at {inp['size'][0]}x{inp['size'][1]}, {inp['layout']} "
        f"-> {inp['tokens']} tokens {tuple(inp['token_grid'])} (from {inp['from']})",
    )
    t.add_row("normalise", f"mean {tuple(inp['mean'])}, std {tuple(inp['std'])} (on [0, 1] pixels)")
    for note in info["notes"]:
        t.add_row("note", note)
    console.print(t)


def _input_options(frames: int | None, size: int | None, heads: int | None = None) -> None:
    """--frames / --size / --heads: positive and within what a model can take, or one error before loading."""
    from vjepa_edge.config import MAX_FRAMES, MAX_SIZE

    options = (("--frames", frames, MAX_FRAMES), ("--size", size, MAX_SIZE), ("--heads", heads, 4096))
    check_counts(*options, hint=_INPUT_HINT)


_INPUT_HINT = "leave --frames and --size out to use the file's own input (or its size's default)"


@app.command()
@command(_render)
def inspect(
    path: Annotated[
        Path,
        typer.Argument(help="V-JEPA 1 .pth.tar, V-JEPA 2 .pt, HF VJEPA2 directory or a vjepa-edge .safetensors file."),
    ],
    frames: Annotated[int | None, typer.Option(help="Input frames, where the file does not record them.")] = None,
    size: Annotated[int | None, typer.Option(help="Input size in pixels, where the file does not record it.")] = None,
    heads: Annotated[
        int | None, typer.Option(help="Attention heads, for an encoder width outside the published ViT sizes.")
    ] = None,
    json_out: JsonOpt = False,
) -> dict[str, Any]:
    """Load a checkpoint strictly and print its format, architecture, parts and input contract."""
    from vjepa_edge.models.summary import inspect_checkpoint

    _input_options(frames, size, heads)
    return inspect_checkpoint(str(path), frames=frames, size=size, num_heads=heads)


def _render_pretrain(r: dict[str, Any]) -> None:
    console.print(
        f"pretrained [bold]{r['config']}[/] for {r['steps']} steps: "
        f"loss {r['first_loss']:.4f} -> {r['final_loss']:.4f}, "
        f"{r['clips_per_s']:.1f} clips/s ({r['precision']}, {r['world_size']} process(es))",
        soft_wrap=True,
    )
    if r["collapse_warnings"]:
        console.print(f"[yellow]collapse warnings at steps {r['collapse_warnings']}[/]", soft_wrap=True)
    console.print(
        f"teacher:  {r['teacher']}   (load_vjepa reads it; .target_encoder is the EMA teacher)", soft_wrap=True
    )
    console.print(
        f"run:      {r['run_dir']}   (config.json, env.json, metrics.jsonl, checkpoints/, report.json)",
        soft_wrap=True,
    )


@app.command()
@command(_render_pretrain)
def pretrain(
    config: Annotated[
        str,
        typer.Option(help="A teacher config TOML (teacher/configs/NAME.toml) or a bundled name: physics, vitl16, ..."),
    ] = "physics",
    steps: Annotated[
        int | None, typer.Option(help="Train this many steps instead (warmup and cooldown keep their share).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder (default: runs/teacher/NAME).")] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --out from its last checkpoint.")
    ] = False,
    data: Annotated[
        str | None, typer.Option(help="Data SOURCE instead of the config's: physics, a folder of videos or a CSV.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    json_out: JsonOpt = False,
) -> dict[str, Any] | None:
    """Pretrain a V-JEPA teacher: EMA target, multiblock-3D masks, V-JEPA 1/2 schedules; torchrun scales out."""
    from teacher.config import load_config
    from teacher.train import pretrain as run_pretrain

    cfg = load_config(config)
    if steps is not None:
        cfg = cfg.with_steps(steps)
    if data is not None:
        cfg = cfg.with_source(data)
    run_dir = out or Path("runs") / "teacher" / cfg.name
    result = run_pretrain(cfg, run_dir, resume=resume, progress=progress and not json_out)
    if not result.report:  # a rank other than 0 of a torchrun job: rank 0 reports
        return None
    return {**result.report, "run_dir": str(result.run_dir)}


@app.command()
@command(lambda r: console.print(r["teacher"]))
def embedded(
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Pretrain again even when a cached one exists.")] = False,
    json_out: JsonOpt = False,
) -> dict[str, Any]:
    """Print the cached embedded physics teacher's path, pretraining it first when it is not cached."""
    from teacher.embedded import embedded_teacher

    return {"teacher": str(embedded_teacher(rebuild=rebuild, progress=not json_out))}


def _render_probe(r: dict[str, Any]) -> None:
    p = r["probe"]
    title = f"{p['kind']} probe, {r['train_clips']} train / {r['test_clips']} test physics clips"
    summary = r.get("summary")
    if summary:
        title += f", mean ± sd over {len(r['seeds'])} probe seeds ({', '.join(map(str, r['seeds']))})"
    console.print(title)  # its own line: as a table title it would wrap at the table's narrow width
    t = Table()
    t.add_column("label")
    t.add_column("chance", justify="right")
    results = r["results"]
    names = [*results, "gap"] if summary else list(results)
    for name in names:
        t.add_column(name, justify="right")
    first = next(iter(results.values()))
    for label in first:
        if summary:
            row = [f"{100 * s['mean']:.1f} ± {100 * s['sd']:.1f}" for s in (summary[label][n] for n in names)]
        else:
            row = [f"{per[label]['accuracy']:.1%}" for per in results.values()]
        t.add_row(label, f"{first[label]['chance']:.1%}", *row)
    console.print(t)
    if summary:
        console.print("gap: the teacher's accuracy minus the random-init encoder's, per seed, in points")


def _summary(repeats: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample standard deviation over probe seeds of each encoder's accuracy and of the teacher's gap to the
    random-init encoder (paired per seed: both read the same clips)."""
    import statistics

    first = repeats[0]["results"]
    out: dict[str, Any] = {}
    for label in first["teacher"]:
        values = {name: [r["results"][name][label]["accuracy"] for r in repeats] for name in first}
        values["gap"] = [a - b for a, b in zip(values["teacher"], values["random init"], strict=True)]
        out[label] = {name: {"mean": statistics.fmean(v), "sd": statistics.stdev(v)} for name, v in values.items()}
    return out


PARTS = ("auto", "target_encoder", "encoder")


def _probe_options(
    labels: list[str], kind: str, part: str, train_clips: int, test_clips: int, fps: float, repeats: int
) -> None:
    """Every probe option checked before the checkpoint is read or a feature extracted."""
    from vjepa_edge.config import MAX_FPS, check_count, check_number
    from vjepa_edge.data.physics import LABELS
    from vjepa_edge.eval.probe import PROBE_KINDS

    p: list[str] = []
    if not labels:
        p.append(f"--labels: name at least one of {', '.join(LABELS)}")
    p += [f"--labels: unknown {x!r}; known: {', '.join(LABELS)}" for x in labels if x not in LABELS]
    if kind not in PROBE_KINDS:
        p.append(f"--kind {kind!r}: choose {', '.join(PROBE_KINDS)}")
    if part not in PARTS:
        p.append(f"--part {part!r}: choose {', '.join(PARTS)}")
    check_count("--train-clips", train_clips, p, maximum=1_000_000)
    check_count("--test-clips", test_clips, p, maximum=1_000_000)
    check_number("--fps", fps, p, maximum=MAX_FPS)
    check_count("--repeats", repeats, p, maximum=100)
    if p:
        raise ConfigError.of(p, title="invalid probe options", hint="see `vjepa-edge teacher probe --help`")


def _probe_config(kind: str, seed: int, epochs: int | None, lrs: str | None) -> Any:
    from vjepa_edge.eval.probe import ProbeConfig

    try:
        rates = None if lrs is None else tuple(float(x) for x in lrs.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"--lrs {lrs!r}: comma-separated numbers", hint="e.g. --lrs 3e-3,1e-3") from None
    return ProbeConfig(kind=kind, seed=seed, epochs=epochs, lrs=rates)  # type: ignore[arg-type]


@app.command()
@command(_render_probe)
def probe(
    path: Annotated[Path, typer.Argument(help="A teacher checkpoint (any format load_vjepa reads).")],
    labels: Annotated[str, typer.Option(help="Physics labels to probe, comma-separated.")] = "event,direction",
    train_clips: Annotated[int, typer.Option(help="Held-out physics clips the probe trains on.")] = 1024,
    test_clips: Annotated[int, typer.Option(help="Held-out physics clips the probe is tested on.")] = 512,
    kind: Annotated[
        str,
        typer.Option(
            help="grid (linear on the token map), attentive (V-JEPA's), attentive4 (V-JEPA 2's four-block) or linear."
        ),
    ] = "grid",
    fps: Annotated[float, typer.Option(help="Frame rate of the physics clips.")] = 8.0,
    seed: Annotated[int, typer.Option(help="Seed of the probe clips, the heads and the random-init encoder.")] = 0,
    repeats: Annotated[
        int,
        typer.Option(
            help="Probe seeds SEED, SEED+1, ...: each draws new clips, heads and random init; reports each encoder's "
            "mean and standard deviation over them, and the teacher's gap to random init."
        ),
    ] = 1,
    epochs: Annotated[
        int | None,
        typer.Option(help="Probe training epochs (default: the kind's, 20 for grid and linear, 100 for attentive)."),
    ] = None,
    lrs: Annotated[
        str | None,
        typer.Option(
            help="Learning rates, comma-separated: one head each, the best is reported "
            "(default: the kind's, 1e-3,3e-4 for grid and linear, 1e-2,3e-3 for attentive)."
        ),
    ] = None,
    part: Annotated[
        str, typer.Option(help="auto (the EMA target encoder when the file has one), target_encoder or encoder.")
    ] = "auto",
    heads: Annotated[
        int | None, typer.Option(help="Attention heads, for an encoder width outside the published ViT sizes.")
    ] = None,
    json_out: JsonOpt = False,
) -> dict[str, Any]:
    """Frozen-probe accuracy of a teacher on the physics labels, against a random-init encoder of its size."""
    import dataclasses

    import torch

    from vjepa_edge.data.config import ClipSpec
    from vjepa_edge.distill.cache import state_dict_digest
    from vjepa_edge.eval.physics import physics_probe
    from vjepa_edge.eval.probe import random_init_like
    from vjepa_edge.models.checkpoint import load_vjepa
    from vjepa_edge.runinfo import autocast_dtype
    from vjepa_edge.train.loop import task_bar

    names = [x.strip() for x in labels.split(",") if x.strip()]
    _probe_options(names, kind, part, train_clips, test_clips, fps, repeats)
    config = _probe_config(kind, seed, epochs, lrs)  # checked before the checkpoint is read
    _input_options(None, None, heads)
    model = load_vjepa(path, num_heads=heads)
    if part == "auto":
        part = "target_encoder" if "target_encoder" in model.parts else "encoder"
    if part not in model.parts:
        raise ConfigError(
            f"--part {part}: {path} has no {part} (it holds {', '.join(model.parts)})",
            hint="use --part auto or --part encoder",
        )
    encoder = getattr(model, part)
    arch = encoder.arch
    spec = ClipSpec(frames=arch.num_frames, size=arch.img_size, fps=fps, frame_step=None)
    teacher_digest = state_dict_digest(encoder.state_dict())
    runs = []
    for s in range(seed, seed + repeats):
        random = random_init_like(encoder, seed=s)
        label = f"probe seed {s} ({s - seed + 1}/{repeats}): tokens" if repeats > 1 else "tokens"
        with task_bar(label, 2 * (train_clips + test_clips), enabled=not json_out) as bar:
            results = physics_probe(
                {"teacher": encoder, "random init": random},
                # both encoders' tokens are kept: the teacher's for its students' evaluations, the random init's for
                # the next teacher of the same architecture
                cache={"teacher": teacher_digest, "random init": state_dict_digest(random.state_dict())},
                spec=spec,
                labels=names,
                train_clips=train_clips,
                test_clips=test_clips,
                seed=s,
                config=dataclasses.replace(config, seed=s),
                autocast_dtype=autocast_dtype("auto", torch.device("cpu")),
                progress=bar,
            )
        runs.append(
            {"seed": s, "results": {n: {lb: r.to_dict() for lb, r in per.items()} for n, per in results.items()}}
        )
    out: dict[str, Any] = {
        "checkpoint": str(path),
        "part": part,
        "probe": config.to_dict(),
        "train_clips": train_clips,
        "test_clips": test_clips,
        "seeds": [r["seed"] for r in runs],
        "results": runs[0]["results"],
    }
    if repeats > 1:
        out["repeats"] = runs
        out["summary"] = _summary(runs)
    return out
