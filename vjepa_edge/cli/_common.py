"""The one wrapper every CLI command goes through, and the options the commands share.

`@command(render)` gives a command: logging set up for the process (rank 0 alone speaks), library errors as
one `error:` line, one `hint:` line and exit code 1 (a JSON object too under `--json`), and the result printed
once, by rank 0: the command returns its JSON object and `render` shows it to a person. Usage errors (exit 2)
and bugs are handled in `vjepa_edge.cli.main`, which also ends them with a JSON object under `--json`.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from vjepa_edge.errors import VjepaEdgeError

console = Console()
err_console = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object as the last line of stdout.")]

Render = Callable[[dict[str, Any]], None]


def is_rank0() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def report(error: VjepaEdgeError) -> None:
    """Print a library error as one `error:` line and a `hint:` line on stderr."""
    err_console.print(f"[bold red]error:[/] {error.message}", highlight=False, markup=True, soft_wrap=True)
    hint = error.hint or "run the command with --help to see what it accepts"
    err_console.print(f"hint: {hint}", highlight=False, markup=False, soft_wrap=True)


def fail(error: VjepaEdgeError, *, as_json: bool = False) -> NoReturn:
    """Report a library error (and a JSON object under --json); exit code 1."""
    report(error)
    if as_json:
        emit_json(error.to_dict())
    raise typer.Exit(1)


def check_counts(*options: tuple[str, int | None, int], hint: str = "") -> None:
    """Integer options (flag, value, limit) that must be positive and at most `limit` (None: not given), checked
    before any work; every problem in one ConfigError."""
    from vjepa_edge.config import check_count
    from vjepa_edge.errors import ConfigError

    p: list[str] = []
    for flag, value, limit in options:
        if value is not None:
            check_count(flag, value, p, maximum=limit)
    if p:
        raise ConfigError.of(
            p, title="invalid options", hint=hint or "run the command with --help to see what it accepts"
        )


def emit_json(obj: Any) -> None:
    """One line of strict JSON on stdout (NaN and infinities become null)."""
    from vjepa_edge.runinfo import finite_json

    print(json.dumps(finite_json(obj), allow_nan=False, default=str), flush=True)


def command(render: Render | None = None) -> Callable[[Callable[..., dict[str, Any] | None]], Callable[..., None]]:
    """Wrap a command function that returns its JSON object (None: nothing to print, e.g. ranks > 0).
    The function takes `json_out` (the `--json` flag) as a keyword argument."""

    def wrap(fn: Callable[..., dict[str, Any] | None]) -> Callable[..., None]:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> None:
            as_json = bool(kwargs.get("json_out", False))
            setup_logging()
            try:
                result = fn(*args, **kwargs)
            except VjepaEdgeError as e:
                fail(e, as_json=as_json)
            if result is None or not is_rank0():
                return
            if as_json or render is None:
                emit_json(result)
            else:
                render(result)

        return run

    return wrap


def setup_logging() -> None:
    """Library log records to stderr: INFO and up on rank 0 of a torchrun job (or a single process),
    warnings only on the other ranks, so that one process alone speaks."""
    import logging

    from rich.logging import RichHandler

    handler = RichHandler(console=err_console, show_path=False, show_time=False, markup=False, rich_tracebacks=False)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("vjepa_edge", "teacher"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO if is_rank0() else logging.WARNING)
        logger.propagate = False  # a library that configures the root logger (basicConfig) would print each twice
    import warnings

    # torch.export / ExecuTorch serialisation warn once per pytree node about their own deprecated internals
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*", category=FutureWarning)
