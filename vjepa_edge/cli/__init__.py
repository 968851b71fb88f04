"""The `vjepa-edge` command line: registers one module per command group, nothing else."""

from __future__ import annotations

import os
import sys

import typer

from vjepa_edge.cli import data as _data
from vjepa_edge.cli import distill as _distill
from vjepa_edge.cli import teacher as _teacher

app = typer.Typer(
    name="vjepa-edge",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    help="Distill V-JEPA video world models into small ViT students, quantize, export and profile them on devices.",
)
app.command(name="distill")(_distill.distill)
app.command(name="validate")(_distill.validate)
app.command(name="list")(_distill.list_things)
app.add_typer(_teacher.app, name="teacher")
app.add_typer(_data.app, name="data")


def _version(value: bool) -> None:
    if value:
        from vjepa_edge import __version__

        print(f"vjepa-edge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """vjepa-edge: V-JEPA teachers -> edge students."""


def main() -> None:
    """Console entry point: library errors become one message and exit code 1, never a traceback."""
    from vjepa_edge.cli._common import err_console, report
    from vjepa_edge.errors import VjepaEdgeError

    try:
        app()
    except VjepaEdgeError as e:
        report(e)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as e:  # a bug, not bad input: one line unless the user asks for the traceback
        if os.environ.get("VJEPA_EDGE_DEBUG"):
            raise
        err_console.print(f"[bold red]internal error:[/] {type(e).__name__}: {e}", highlight=False, markup=True)
        err_console.print("hint: set VJEPA_EDGE_DEBUG=1 for the traceback and report it", highlight=False)
        sys.exit(1)
