"""Quantized programs as `torch.export` ExportedPrograms: the `QuantizedModel` of the PT2E and torchao schemes.

The program is exported at the model's deployment input (`input_spec.example_inputs()`, batch 1), the shape the
export targets lower; a batch of clips runs one clip at a time. `save` writes `program.pt2` (`torch.export.save`)
and `quant.json` (scheme, input spec, modules kept in float), each atomically. `load` first checks that every
member `torch.export.load` would read with full pickle loads with `weights_only=True` (tensors and allowlisted
tensor subclasses, such as torchao's quantized weights), so that no pickled code runs.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.export import ExportedProgram

from vjepa_edge.errors import CheckpointError, ConfigError
from vjepa_edge.models.inputs import InputSpec
from vjepa_edge.quant.base import QuantizedModel
from vjepa_edge.runinfo import atomic_open, write_json

if TYPE_CHECKING:
    from vjepa_edge.quant.schemes import Scheme

PROGRAM_FILE = "program.pt2"
META_FILE = "quant.json"
FORMAT = "vjepa-edge quantized program 1"


def export_program(module: nn.Module, spec: InputSpec) -> ExportedProgram:
    """`module` exported at the deployment input of `spec` (batch 1)."""
    return torch.export.export(module, spec.example_inputs())


def check_keep_float(model: nn.Module, keep_float: Sequence[str]) -> None:
    """Every name in `keep_float` must be a module of `model`; the error names the closest ones."""
    import difflib

    names = [n for n, _ in model.named_modules() if n]
    unknown = [n for n in keep_float if n not in names]
    if not unknown:
        return
    problems = []
    for name in unknown:
        close = difflib.get_close_matches(name, names, n=3)
        problems.append(
            f"{name!r} is no module of the model" + (f" (did you mean {', '.join(close)}?)" if close else "")
        )
    raise ConfigError.of(
        problems, title="keep_float names unknown modules", hint="names are as in model.named_modules()"
    )


class ProgramModel(QuantizedModel):
    """A quantized ExportedProgram of one scheme, run with `ep.module()` on CPU."""

    def __init__(
        self, scheme: Scheme, program: ExportedProgram, input_spec: InputSpec, keep_float: Sequence[str] = ()
    ) -> None:
        self.scheme = scheme
        self.program = program
        self.input_spec = input_spec
        self.keep_float = tuple(keep_float)
        self._module: nn.Module | None = None
        self._size: int | None = None

    def __call__(self, x: Tensor) -> Tensor:
        want = self.input_spec.shape(1)[1:]
        if x.dim() != 5 or tuple(x.shape[1:]) != want:
            raise ValueError(f"expected clips [B, {', '.join(map(str, want))}], got shape {list(x.shape)}")
        if self._module is None:
            self._module = self.program.module()
        with torch.no_grad():  # the program has batch 1, the deployment shape: one clip at a time
            return torch.cat([self._module(x[i : i + 1]) for i in range(x.shape[0])])

    def save(self, folder: Path) -> list[Path]:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        program = folder / PROGRAM_FILE
        with atomic_open(program) as f:
            torch.export.save(self.program, f)
        self._size = program.stat().st_size
        meta = write_json(folder / META_FILE, self.meta())
        return [program, meta]

    def meta(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "scheme": self.scheme.name,
            "input_spec": self.input_spec.to_dict(),
            "keep_float": list(self.keep_float),
        }

    @property
    def size_bytes(self) -> int:
        if self._size is None:  # not saved yet: the bytes `save` would write
            buf = io.BytesIO()
            torch.export.save(self.program, buf)
            self._size = len(buf.getvalue())
        return self._size


def load_program(scheme: Scheme, folder: Path) -> ProgramModel:
    """The program `ProgramModel.save` wrote into `folder`, for `scheme` (the backend's ops must be imported)."""
    folder = Path(folder)
    program, meta_path = folder / PROGRAM_FILE, folder / META_FILE
    for p in (program, meta_path):
        if not p.is_file():
            raise CheckpointError(f"{p} does not exist", hint=f"`vjepa-edge quantize ... --out {folder}` writes it")
    meta = _read_meta(meta_path)
    if meta["scheme"] != scheme.name:
        raise ConfigError(
            f"{folder} holds a program of scheme {meta['scheme']!r}, not {scheme.name!r}",
            hint=f"load it with scheme {meta['scheme']!r}",
        )
    check_archive(program)
    try:
        ep = torch.export.load(program)
    except Exception as e:  # a truncated or foreign archive: one clear error, not the serializer's traceback
        raise CheckpointError(f"{program} is not a readable torch.export program: {e}") from None
    size = program.stat().st_size
    model = ProgramModel(scheme, ep, InputSpec.from_dict(meta["input_spec"]), meta["keep_float"])
    model._size = size
    return model


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not readable JSON: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a quantized-program record (format {FORMAT!r})")
    return meta


def check_archive(path: Path) -> None:
    """Refuse a .pt2 archive that would make `torch.export.load` run pickled code.

    `torch.export.load` reads with full pickle the weights and constants stored pickled (`use_pickle`: tensor
    subclasses such as torchao's, script objects) and, as a fallback, any torch.save member that `weights_only=True`
    refuses. Every such member must load here with `weights_only=True`: then it calls only allowlisted constructors
    (torchao allowlists its tensor subclasses), whichever unpickler reads it next.
    """
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            for name in sorted(names):
                if name.endswith(".pt"):
                    _check_weights_only(path, name, z.read(name))
                elif name.endswith("_config.json") and "/data/" in f"/{name}":
                    folder = name.rpartition("/")[0]
                    for fqn, payload in json.loads(z.read(name)).get("config", {}).items():
                        if payload.get("use_pickle"):
                            member = f"{folder}/{payload['path_name']}"
                            data = z.read(member) if member in names else b""
                            _check_weights_only(path, f"{member} ({fqn})", data)
    except (zipfile.BadZipFile, OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path} is not a readable .pt2 archive: {e}") from None


def _check_weights_only(path: Path, member: str, data: bytes) -> None:
    try:
        torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as e:
        raise CheckpointError(
            f"{path}: {member} does not load with weights_only=True ({e}); loading it would run pickled code",
            hint="programs are loaded only when they hold tensors (and allowlisted tensor subclasses)",
        ) from None
