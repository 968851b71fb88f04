"""`vjepa-edge export`: a student (a run folder or any file `load_vjepa` reads) -> a verified artifact of a target.

Everything refusable is refused first: the target (registered; the error names the closest and every valid one),
the scheme that feeds it, the options, what the target needs on this machine (the QNN SDK), the student and the
output path (suffix, writable), and for `--part predictor` the run's predictor (a masked distill run with a
checkpoint; `vjepa_edge.export.parts`). Then the stages, each a small function below: export (torch.export at the
student's InputSpec, batch 1, of the target's `export_form`: for XNNPACK `vjepa_edge.models.deploy`'s), quantize
(int8 targets: the program in RUN/quant/SCHEME/ when quantize wrote one, else `vjepa_edge.quant.run.quantize` with
its defaults), lower (the backend's own partitioner or converter),
serialize (to a temporary path beside the artifact), verify (numerically where this machine runs the artifact,
structurally where it cannot) and publish (rename onto the artifact's path). An artifact out of tolerance is
removed and nothing is written. The report (artifact, size, verification, delegation) is merged into
`export_report.json` beside the artifact, under the target's name (`predictor-TARGET` for the predictor).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from vjepa_edge.config import check_count
from vjepa_edge.errors import ConfigError, VerificationError
from vjepa_edge.export.targets import Target, check_target_scheme, get_target
from vjepa_edge.runinfo import file_mode, write_json
from vjepa_edge.runs import ResolvedModel, resolve_run_or_ckpt

if TYPE_CHECKING:
    from torch.export import ExportedProgram

    from vjepa_edge.export.base import Lowered, TargetImpl
    from vjepa_edge.export.parts import Part
    from vjepa_edge.models.inputs import InputSpec
    from vjepa_edge.quant.base import QuantizedModel
    from vjepa_edge.quant.run import QuantizeOptions

log = logging.getLogger(__name__)

from vjepa_edge.export.artifacts import REPORT  # noqa: E402 - one name for the report file


@dataclass(frozen=True, kw_only=True, slots=True)
class ExportOptions:
    """What `vjepa-edge export` takes besides the student."""

    target: str = "xnnpack-fp32"
    scheme: str | None = None  # one of the target's schemes; None: its default
    verify_clips: int = 8
    quantize: QuantizeOptions | None = None  # for quantize when the run has no program (None: its defaults)
    part: str = "encoder"  # `vjepa_edge.export.parts.PARTS`
    context: str = "first-half"  # the predictor's context choice (`vjepa_edge.export.parts.CONTEXTS`)

    def problems(self) -> list[str]:
        from vjepa_edge.export.parts import PARTS, context_problems

        p: list[str] = []
        check_count("--verify-clips", self.verify_clips, p, maximum=10_000)
        if self.part not in PARTS:
            p.append(f"--part {self.part!r}: one of {', '.join(PARTS)}")
        p += context_problems(self.context)
        return p


@dataclass
class ExportResult:
    path: Path
    report: dict[str, Any]
    files: list[Path] = field(default_factory=list)


# ----------------------------------------------------------------------------- checks before compute


def report_key(target: Target, part: str) -> str:
    """The artifact's name without suffix and its entry in export_report.json: TARGET, or PART-TARGET."""
    return target.name if part == "encoder" else f"{part}-{target.name}"


def default_path(resolved: ResolvedModel, target: Target, part: str = "encoder") -> Path:
    """RUN/export/TARGET.SUFFIX (PART-TARGET.SUFFIX but for the encoder), or runs/export/NAME/... for a bare
    checkpoint."""
    name = f"{report_key(target, part)}{target.suffix}"
    if resolved.run is not None:
        return resolved.run.export / name
    return Path("runs") / "export" / resolved.path.stem.removesuffix(".safetensors") / name


def out_problems(path: Path, target: Target) -> list[str]:
    """Problems of the artifact path: the target's suffix, not a folder (but for a package), a writable folder.
    An existing artifact is replaced."""
    from vjepa_edge.paths import out_dir_problems

    if path.suffix != target.suffix:
        return [f"--out {path}: target {target.name} writes a {target.suffix} file, not {path.suffix or '(none)'!r}"]
    if target.suffix != ".mlpackage" and path.is_dir():  # a package is a folder; other artifacts are files
        return [f"--out {path} is a folder; a file name is expected"]
    if target.suffix == ".mlpackage" and path.exists() and not path.is_dir():
        return [f"--out {path} is a file; a Core ML package is a folder"]
    return out_dir_problems(path.parent, flag=f"--out {path}: folder")


def _refuse(problems: list[str], *, hint: str) -> None:
    if problems:
        raise ConfigError(problems[0] if len(problems) == 1 else "; ".join(problems), hint=hint)


def _refuse_model(model: nn.Module, target: Target) -> InputSpec:
    from vjepa_edge.models.inputs import InputSpec

    spec = getattr(model, "input_spec", None)
    if not isinstance(spec, InputSpec):
        raise ConfigError(
            f"target {target.name!r} cannot export this student: it has no input_spec (the fixed input shape)",
            hint="export a student of `vjepa-edge list students`",
        )
    return spec


# ----------------------------------------------------------------------------- the stages


def export_stage(model: nn.Module, example: tuple[Tensor, ...]) -> ExportedProgram:
    """The fp32 part exported at its deployment inputs (batch 1)."""
    try:
        return torch.export.export(model, example)
    except Exception as e:  # torch.export raises many kinds; all mean this student does not export
        raise ConfigError(f"torch.export cannot export this student: {type(e).__name__}: {e}") from None


def quantize_stage(
    scheme: str,
    student: str | Path,
    resolved: ResolvedModel,
    spec: InputSpec,
    options: QuantizeOptions | None,
    *,
    progress: bool = False,
) -> QuantizedModel:
    """The program of `scheme`: the one `vjepa-edge quantize` left in the run's quant folder, else a new one."""
    from vjepa_edge.quant.run import REPORT as QUANT_REPORT
    from vjepa_edge.quant.run import QuantizeOptions, default_out, quantize
    from vjepa_edge.quant.schemes import get_scheme

    folder = default_out(resolved) / scheme
    if (folder / QUANT_REPORT).is_file():  # quantize writes its report after the program: a finished folder
        log.info("using the %s program in %s", scheme, folder)
        program = get_scheme(scheme).load().load(folder)
    else:
        log.info("no %s program in %s: quantizing with the scheme's defaults", scheme, folder)
        opts = replace(options, scheme=scheme) if options is not None else QuantizeOptions(scheme=scheme)
        program = quantize(student, opts, progress=progress).program
    made_for = program.input_spec
    if made_for != spec:
        raise ConfigError(
            f"the {scheme} program in {folder} was made for another input ({made_for.shape(1)}, the student takes "
            f"{spec.shape(1)})",
            hint=f"quantize again: `vjepa-edge quantize {student} --scheme {scheme}`",
        )
    return program


def serialize_stage(impl: TargetImpl, lowered: Lowered, path: Path) -> Path:
    """The artifact written to a temporary path beside `path` (same folder: the rename is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        impl.write(lowered, tmp)
        if tmp.is_file():
            os.chmod(tmp, file_mode())
    except BaseException:
        _remove(tmp)
        raise
    return tmp


def verify_stage(
    impl: TargetImpl,
    tmp: Path,
    lowered: Lowered,
    part: Part,
    quantized: QuantizedModel | None,
    clips: Tensor | None,
) -> dict[str, Any]:
    """Structure always; numbers where this machine runs the artifact. Raises VerificationError."""
    from vjepa_edge.export.verify import check, compare, tolerance_dict

    target = impl.target
    result: dict[str, Any] = {"structure": impl.structure(tmp, lowered, part.signature)}
    reason = impl.cannot_run()
    if reason is not None or clips is None:
        result.update(verified=False, skipped=reason or "no verification clips", clips=0)
        log.warning("%s: numerical verification skipped: %s", target.name, result["skipped"])
        return result
    inputs = part.inputs(clips)
    with torch.no_grad():
        fp32 = torch.cat([part.reference(*args) for args in inputs])
        same = fp32 if quantized is None else quantized(clips)  # int8: the encoder alone (parts.part_problems)
    try:
        out = impl.run(tmp, inputs)
    except Exception as e:  # the runtime's own errors: the artifact does not run
        raise VerificationError(f"the {target.name} artifact does not run here: {type(e).__name__}: {e}") from None
    vs_same, vs_fp32 = compare(out, same), compare(out, fp32)
    check(target.precision, vs_same, vs_fp32, what=f"the {target.name} artifact")
    result.update(
        verified=True,
        skipped=None,
        clips=int(clips.shape[0]),
        reference=f"{target.precision} {'student' if part.name == 'encoder' else part.name}"
        + (f" (scheme {quantized.scheme.name} run in torch)" if quantized is not None else ""),
        vs_same_precision=vs_same,
        vs_fp32=vs_fp32,
        tolerance=tolerance_dict(target.precision),
    )
    return result


def publish(tmp: Path, path: Path) -> None:
    """Rename the verified artifact onto `path` (a package folder: an old one is moved aside first)."""
    old = None
    if path.is_dir():
        old = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.old{path.suffix}")
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


# ----------------------------------------------------------------------------- the command


def export(
    student: str | Path, options: ExportOptions, *, out: str | Path | None = None, progress: bool = True
) -> ExportResult:
    """Export the student named by `student` (RUN_OR_CKPT) to `options.target`; see the module docstring."""
    from vjepa_edge.distill.head import head_problems
    from vjepa_edge.export.parts import encoder_part, part_problems, predictor_part
    from vjepa_edge.models.checkpoint import load_vjepa
    from vjepa_edge.paths import ensure
    from vjepa_edge.quant.run import run_settings

    target = get_target(options.target)
    scheme = check_target_scheme(target, options.scheme)
    p = options.problems()
    if p:
        raise ConfigError.of(p, title="invalid export options", hint="see `vjepa-edge export --help`")
    impl = target.load()
    _refuse(part_problems(options.part, target, impl), hint="export the predictor to xnnpack-fp32 or onnx-fp32")
    impl.check()
    resolved = resolve_run_or_ckpt(student)
    if options.part == "predictor":
        _refuse(
            head_problems(resolved.run, what="--part predictor", predictor=True),
            hint='export the predictor of a run distilled with [loss] kind = "masked" (recipes/vit_s.toml)',
        )
    path = Path(out).expanduser() if out is not None else default_path(resolved, target, options.part)
    ensure(out_problems(path, target), hint=f"pass --out FILE{target.suffix}, somewhere this user can write")
    model = load_vjepa(resolved.path).encoder.eval()
    spec = _refuse_model(model, target)
    part = encoder_part(model) if options.part == "encoder" else predictor_part(model, resolved, options.context)

    times: dict[str, float] = {}
    t0 = time.perf_counter()
    program = export_stage(impl.export_form(part.module), part.signature.example)
    times["export"] = time.perf_counter() - t0
    quantized = None
    if scheme is not None:
        t = time.perf_counter()
        quantized = quantize_stage(scheme, student, resolved, spec, options.quantize, progress=progress)
        times["quantize"] = time.perf_counter() - t
    t = time.perf_counter()
    lowered = impl.lower(part.module, program, quantized, part.signature)
    times["lower"] = time.perf_counter() - t
    clips = None
    if impl.cannot_run() is None:
        _, fps, seed = run_settings(resolved.run)
        clips = _clips(spec, fps=fps, seed=seed, count=options.verify_clips)
    t = time.perf_counter()
    tmp = serialize_stage(impl, lowered, path)
    times["serialize"] = time.perf_counter() - t
    try:
        t = time.perf_counter()
        verification = verify_stage(impl, tmp, lowered, part, quantized, clips)
        times["verify"] = time.perf_counter() - t
        size = _size(tmp)
        publish(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
    delegation = impl.delegation(lowered, program)
    shapes = part.signature.shapes
    report = {
        "target": target.name,
        "part": part.name,
        "backend": target.backend,
        "precision": target.precision,
        "scheme": scheme,
        "student": str(resolved.path),
        "input": spec.to_dict(),
        "input_shape": shapes[0] if len(shapes) == 1 else shapes,
        "inputs": dict(zip(part.signature.names, shapes, strict=True)),
        **({"predictor": part.info} if part.info else {}),
        "artifact": str(path),
        "size_bytes": size,
        "verification": verification,
        "delegation": delegation,
        "notes": lowered.notes,
        "seconds": times,
    }
    report_path = write_report(path.parent / REPORT, report, key=report_key(target, part.name))
    return ExportResult(path, report, [path, report_path])


def _clips(spec: InputSpec, *, fps: float, seed: int, count: int) -> Tensor:
    from vjepa_edge.export.verify import held_out_clips

    return held_out_clips(spec.frames, spec.size, fps=fps, seed=seed, count=count)


def write_report(path: Path, report: dict[str, Any], *, key: str | None = None) -> Path:
    """Merge `report` into the folder's export report under `key` (default its target's name: one entry per
    target and part)."""
    reports: dict[str, Any] = {}
    if path.is_file():
        try:
            reports = json.loads(path.read_text())
        except (OSError, ValueError):
            log.warning("%s was unreadable: it is replaced", path)
        if not isinstance(reports, dict):
            reports = {}
    reports[key or report["target"]] = report
    return write_json(path, reports)


__all__ = ["ExportOptions", "ExportResult", "export"]
