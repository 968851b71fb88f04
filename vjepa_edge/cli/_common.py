"""Shared CLI plumbing: option aliases, error reporting, JSON output."""

from __future__ import annotations

import json
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from vjepa_edge.errors import VjepaEdgeError

console = Console()
err_console = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object as the last line of stdout.")]


def report(error: VjepaEdgeError) -> None:
    """Print a library error as one `error:` line and, when it has one, a `hint:` line on stderr."""
    err_console.print(f"[bold red]error:[/] {error.message}", highlight=False, markup=True, soft_wrap=True)
    if error.hint:
        err_console.print(f"hint: {error.hint}", highlight=False, markup=False, soft_wrap=True)


def fail(error: VjepaEdgeError, *, as_json: bool = False) -> NoReturn:
    """Report a library error (and a JSON object under --json); exit code 1."""
    report(error)
    if as_json:
        print(json.dumps(error.to_dict()))
    raise typer.Exit(1)


def emit_json(obj: Any) -> None:
    print(json.dumps(obj))


def setup_logging() -> None:
    """Library log records to stderr: INFO and up on rank 0 of a torchrun job (or a single process),
    warnings only on the other ranks, so that one process alone speaks."""
    import logging
    import os

    from rich.logging import RichHandler

    rank = int(os.environ.get("RANK", "0"))
    handler = RichHandler(console=err_console, show_path=False, show_time=False, markup=False, rich_tracebacks=False)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("vjepa_edge", "teacher"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO if rank == 0 else logging.WARNING)
