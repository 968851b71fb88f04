"""The `vjepa-edge` command line: registers one module per command group, nothing else."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer

from vjepa_edge.cli import data as _data
from vjepa_edge.cli import distill as _distill
from vjepa_edge.cli import eval as _eval
from vjepa_edge.cli import export as _export
from vjepa_edge.cli import profile as _profile
from vjepa_edge.cli import quantize as _quantize
from vjepa_edge.cli import report as _report
from vjepa_edge.cli import teacher as _teacher
from vjepa_edge.errors import VjepaEdgeError

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
app.command(name="quantize")(_quantize.quantize)
app.command(name="export")(_export.export)
app.command(name="profile")(_profile.profile)
app.command(name="report")(_report.report)
app.command(name="eval")(_eval.eval_command)
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


def _json_requested(argv: list[str]) -> bool:
    return "--json" in argv


def _usage_error(e, as_json: bool) -> NoReturn:
    """A usage error (unknown option, wrong type, missing argument): click's message, exit code 2."""
    from typer import rich_utils

    rich_utils.rich_format_error(e)
    if as_json:
        from vjepa_edge.cli._common import emit_json

        emit_json({"error": e.format_message(), "hint": "run the command with --help", "kind": "UsageError"})
    sys.exit(e.exit_code)


def _library_error(error: VjepaEdgeError, as_json: bool) -> NoReturn:
    """One `error:` and `hint:` line (and the JSON object under --json), exit code 1."""
    from vjepa_edge.cli._common import emit_json, report

    report(error)
    if as_json:
        emit_json(error.to_dict())
    sys.exit(1)


def _disk_full_error(e: Exception) -> VjepaEdgeError:
    """A full disk is not a bug: what was written is complete (files are written atomically) and a training run
    resumes from its last checkpoint, so the error says what to free."""
    from vjepa_edge.errors import DiskFullError
    from vjepa_edge.runinfo import cache_root

    hint = (
        f"free disk space (old runs, or the caches under {cache_root()}: clips, teacher features and the embedded "
        "teacher are rebuilt when missing), then run the command again; add --resume to continue a training run "
        "from its last checkpoint"
    )
    return DiskFullError(f"no space left on device: {type(e).__name__}: {e}", hint=hint)


def main() -> None:
    """Console entry point: library errors become one message and exit code 1, usage errors exit code 2, never a
    traceback; under --json every failure still ends stdout with one JSON object."""
    from typer.core import _click as click  # typer vendors click: its exceptions, not the click package's

    from vjepa_edge.cli._common import emit_json, err_console
    from vjepa_edge.errors import debugging, disk_full

    as_json = _json_requested(sys.argv[1:])
    try:
        code = app(standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as e:  # bare `vjepa-edge teacher`: the help is the answer
        click.echo(e.ctx.get_help() if e.ctx else "", err=True)
        sys.exit(2)
    except click.exceptions.ClickException as e:
        _usage_error(e, as_json)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(1)
    except VjepaEdgeError as e:
        _library_error(e, as_json)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as e:  # a bug, not bad input: one line unless the user asks for the traceback
        if disk_full(e):
            _library_error(_disk_full_error(e), as_json)
        if debugging():
            raise
        err_console.print(f"[bold red]internal error:[/] {type(e).__name__}: {e}", highlight=False, markup=True)
        hint = "set VJEPA_EDGE_DEBUG=1 for the traceback and report it"
        err_console.print(f"hint: {hint}", highlight=False)
        if as_json:
            emit_json({"error": f"internal error: {type(e).__name__}: {e}", "hint": hint, "kind": "InternalError"})
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
