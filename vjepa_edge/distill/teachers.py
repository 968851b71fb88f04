"""Teacher sources: named teachers a recipe can give instead of a file (`teacher.path = "embedded"`).

A source knows its teacher's architecture without any compute (so a recipe is validated before a teacher is
pretrained), the cached file if there is one, and how to make the file (pretraining it when absent). Sources
are registered as Python entry points in the group `vjepa_edge.teacher_sources`, so the library never imports
the package that provides one (`teacher/` provides `embedded`) until a recipe names it:

    [project.entry-points."vjepa_edge.teacher_sources"]
    embedded = "teacher.embedded:EmbeddedTeacher"

An entry point names a `TeacherProvider` subclass or any callable that returns a provider.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING

from vjepa_edge.errors import RegistryError
from vjepa_edge.registry import Registry

if TYPE_CHECKING:
    from vjepa_edge.models.arch import VJEPAArch

GROUP = "vjepa_edge.teacher_sources"

Factory = Callable[[], "TeacherProvider"]


class TeacherProvider(ABC):
    """A named teacher: `path(progress=...)` gives its file (any file `load_vjepa` reads)."""

    name: str

    @abstractmethod
    def arch(self) -> VJEPAArch:
        """The teacher's architecture, known without pretraining or loading anything."""

    @abstractmethod
    def cached(self) -> Path | None:
        """The teacher's file when it is already there, else None (nothing is computed)."""

    @abstractmethod
    def path(self, *, progress: bool) -> Path:
        """The teacher's file, made first (pretrained, say) when it is not there yet."""

    def describe(self) -> str:
        """One line for listings and messages."""
        return self.name


_registry: Registry[Factory] | None = None


def _sources() -> Registry[Factory]:
    """The registry, filled from the entry points on first use (reading metadata imports no source)."""
    global _registry
    if _registry is None:
        registry: Registry[Factory] = Registry("teacher source")
        for ep in entry_points(group=GROUP):
            if ep.name not in registry:  # the same distribution found twice on sys.path: the first wins
                registry.register(ep.name, _loader(ep))
        _registry = registry
    return _registry


def _loader(ep: EntryPoint) -> Factory:
    def load() -> TeacherProvider:
        return ep.load()()  # imports the providing package now, not before

    return load


def register_teacher_source(name: str, factory: Factory) -> None:
    """Register a source in this process (a plugin without an installed entry point, or a test)."""
    _sources().register(name, factory)


def list_teacher_sources(pattern: str = "*") -> list[str]:
    """The registered source names matching the glob `pattern`."""
    return _sources().names(pattern)


def get_teacher_source(name: str) -> TeacherProvider:
    """The source `name`; an unknown name raises a RegistryError naming the closest registered ones."""
    try:
        factory = _sources().get(name)
    except RegistryError as e:
        raise RegistryError(
            e.message,
            hint=f"{e.hint}; sources are the entry points in the group {GROUP!r} of the installed packages "
            "(`uv sync` installs this project's)",
        ) from None
    provider = factory()
    if not isinstance(provider, TeacherProvider):
        raise RegistryError(
            f"teacher source {name!r} gave a {type(provider).__name__}, not a TeacherProvider",
            hint=f"its entry point in the group {GROUP!r} must name a TeacherProvider subclass or factory",
        )
    return provider


def is_teacher_source(name: str) -> bool:
    """Whether `name` is a registered source (a recipe's `teacher.path` is a source or a file)."""
    return name in _sources()
