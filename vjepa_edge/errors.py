"""The exception hierarchy of vjepa-edge.

Library code raises these; the CLI turns them into one `error:` line, one `hint:` line and exit code 1.
Every message names the bad value and what is allowed; `hint` says how to fix it.
"""

from __future__ import annotations


class VjepaEdgeError(Exception):
    """Base class of every error that the CLI reports without a traceback."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def to_dict(self) -> dict[str, str | None]:
        return {"error": self.message, "hint": self.hint, "kind": type(self).__name__}


class CheckpointError(VjepaEdgeError):
    """A file that cannot be read as a V-JEPA checkpoint: missing, truncated, unsafe or of an unknown layout."""


class ArchitectureError(CheckpointError):
    """A checkpoint whose tensors fit no known architecture."""


class ConfigError(VjepaEdgeError):
    """An invalid configuration value; `problems` lists every problem found, not only the first."""

    def __init__(self, message: str, *, problems: list[str] | None = None, hint: str | None = None) -> None:
        self.problems = list(problems or [])
        if self.problems:
            message = message + "\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message, hint=hint)

    @classmethod
    def of(cls, problems: list[str], *, title: str, hint: str | None = None) -> ConfigError:
        """One problem as the message itself; several under `title`."""
        if len(problems) == 1:
            return cls(problems[0], hint=hint)
        return cls(title, problems=problems, hint=hint)


class RegistryError(ConfigError):
    """An unknown or duplicate registry name."""


class NotBuiltError(VjepaEdgeError):
    """A command whose capability is not implemented yet."""


class DataError(VjepaEdgeError):
    """Video data that cannot be used: a missing source, an unreadable CSV, or too many unreadable videos."""


class TrainingError(VjepaEdgeError):
    """A training run that cannot go on: a non-finite loss, a run folder that does not match, a bad resume."""


class CacheError(DataError):
    """A teacher-feature cache that cannot be used: a corrupt or missing shard, or a manifest of another key."""


class VerificationError(VjepaEdgeError):
    """An exported artifact that does not compute what the student computes (out of tolerance, or broken)."""


class CannotRunError(VjepaEdgeError):
    """An artifact that cannot be run where it was asked to (an .mlpackage or a Core ML/Vulkan/QNN program on this
    machine, a device without a transport): `vjepa-edge profile` catches it and gives an estimate instead."""


class DeviceError(VjepaEdgeError):
    """A device that cannot be reached or run on: adb/ssh missing, no device attached, a command on it that failed."""


class DiskFullError(VjepaEdgeError):
    """A write that failed because the disk (or the user's quota) is full."""


def disk_full(error: BaseException) -> bool:
    """`error`, or an error it was raised from, is a full disk or quota: an OSError with ENOSPC / EDQUOT, or a library
    error that wraps one in its message (safetensors reports "No space left on device (os error 28)")."""
    import errno

    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(e)
        if "No space left on device" in text or "Disk quota exceeded" in text:
            return True
        e = e.__cause__ or e.__context__
    return False


def debugging() -> bool:
    """VJEPA_EDGE_DEBUG is set: a bug raises with its traceback instead of becoming one line."""
    import os

    return bool(os.environ.get("VJEPA_EDGE_DEBUG"))
