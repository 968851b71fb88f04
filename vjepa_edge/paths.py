"""Checks of the paths a user gives for output, made before any compute: a folder where a folder is expected, a
file where a file is expected, somewhere this process can write. Each check returns the problems it found
(validation gathers them all) and `ensure` raises them as one ConfigError."""

from __future__ import annotations

import tempfile
from pathlib import Path

from vjepa_edge.errors import ConfigError


def _existing_ancestor(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _can_write_in(folder: Path) -> bool:
    """True when a file can be created in `folder` (a real write: permission bits lie for root and /proc)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def _writable(path: Path, flag: str, *, folder: bool) -> list[str]:
    """A folder is written into (itself, once it exists); a file is written (or replaced) in its parent."""
    base = _existing_ancestor(path if folder else path.parent)
    if not base.is_dir():
        return [f"{flag} {path}: {base} is a file, so nothing can be created under it"]
    if not _can_write_in(base):
        return [f"{flag} {path}: cannot write in {base} (permission denied or a read-only file system)"]
    return []


def out_dir_problems(path: str | Path, *, flag: str = "--out") -> list[str]:
    """Problems of a folder to write into (it may not exist yet)."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        return [f"{flag} {path} is a file; a folder is expected"]
    return _writable(path, flag, folder=True)


def out_file_problems(path: str | Path, *, flag: str = "--out", suffixes: tuple[str, ...] = ()) -> list[str]:
    """Problems of a file to write (it may not exist yet); `suffixes` are the formats the writer knows."""
    path = Path(path).expanduser()
    if path.is_dir():
        return [f"{flag} {path} is a folder; a file name is expected"]
    if suffixes and path.suffix.lower() not in suffixes:
        return [f"{flag} {path}: unknown file type {path.suffix or '(none)'!r}; write one of {', '.join(suffixes)}"]
    return _writable(path, flag, folder=False)


def ensure(problems: list[str], *, hint: str) -> None:
    """Raise the problems, if any, as one ConfigError."""
    if problems:
        raise ConfigError.of(problems, title="invalid output paths", hint=hint)
