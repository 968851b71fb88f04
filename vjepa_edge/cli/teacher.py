"""`vjepa-edge teacher ...`: look at teacher checkpoints (pretraining arrives with the teacher/ app)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from vjepa_edge.cli._common import JsonOpt, console, emit_json, fail
from vjepa_edge.errors import VjepaEdgeError

app = typer.Typer(no_args_is_help=True, help="Inspect V-JEPA teacher checkpoints.")


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


@app.command()
def inspect(
    path: Annotated[
        Path,
        typer.Argument(help="V-JEPA 1 .pth.tar, V-JEPA 2 .pt, HF VJEPA2 directory or a vjepa-edge .safetensors file."),
    ],
    frames: Annotated[int | None, typer.Option(help="Input frames, where the file does not record them.")] = None,
    size: Annotated[int | None, typer.Option(help="Input size in pixels, where the file does not record it.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Load a checkpoint strictly and print its format, architecture, parts and input contract."""
    from vjepa_edge.models.summary import inspect_checkpoint

    try:
        info = inspect_checkpoint(str(path), frames=frames, size=size)
    except VjepaEdgeError as e:
        fail(e, as_json=json_out)
    if json_out:
        emit_json(info)
    else:
        _render(info)
