"""Count unreadable videos during a run and stop it when too many are bad.

The dataset skips a file it cannot read and reports it in the sample's `skipped` list; a few bad files in
a large scrape are normal, but a run where a large share is unreadable (a wrong path, a half-finished
download, an unsupported codec) should stop with a clear message instead of training on what is left.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from vjepa_edge.config import check_number
from vjepa_edge.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

_SHOWN = 5  # files listed in the error message


class BadDataTracker:
    """Collects the distinct unreadable files of a run; raises `DataError` once more than
    `max_bad_fraction` of `total_files` are bad."""

    def __init__(self, total_files: int, max_bad_fraction: float = 0.05) -> None:
        problems = []
        if not isinstance(total_files, int) or total_files < 1:
            problems.append(f"total_files={total_files!r}: need a positive integer")
        check_number("max_bad_fraction", max_bad_fraction, problems, positive=False, maximum=1.0)
        if problems:
            raise ConfigError("invalid bad-data limits", problems=problems, hint="e.g. max_bad_fraction=0.05")
        self.total_files = total_files
        self.max_bad_fraction = float(max_bad_fraction)
        self._bad: dict[str, str] = {}

    @property
    def bad(self) -> dict[str, str]:
        """Unreadable file -> reason, in the order they were found."""
        return dict(self._bad)

    def record(self, skipped: Iterable[tuple[str, str]]) -> None:
        """Take a sample's or batch's `skipped` list of (file, reason); warn once per new bad file."""
        for path, reason in skipped:
            if path in self._bad:
                continue
            self._bad[path] = reason
            logger.warning(
                "skipping unreadable video %s: %s (%d of %d files unreadable so far)",
                path,
                reason,
                len(self._bad),
                self.total_files,
            )
        if len(self._bad) > self.max_bad_fraction * self.total_files:
            raise self._error()

    def _error(self) -> DataError:
        count = len(self._bad)
        listed = "\n".join(f"  {path}: {reason}" for path, reason in list(self._bad.items())[:_SHOWN])
        more = f"\n  ... and {count - _SHOWN} more" if count > _SHOWN else ""
        return DataError(
            f"{count} of {self.total_files} videos ({count / self.total_files:.1%}) are unreadable, more than "
            f"max_bad_fraction={self.max_bad_fraction:g} ({self.max_bad_fraction:.1%}) allows:\n{listed}{more}",
            hint="fix or remove the unreadable files (`vjepa-edge data info SOURCE` lists them all), "
            "or raise max_bad_fraction",
        )

    def summary(self) -> dict[str, Any]:
        """JSON-able counts for the run's report."""
        return {
            "total_files": self.total_files,
            "bad_files": len(self._bad),
            "bad_fraction": len(self._bad) / self.total_files,
            "max_bad_fraction": self.max_bad_fraction,
            "bad": self.bad,
        }
